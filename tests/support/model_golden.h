// Shared by the model fidelity tests (tests/nn/*_test.cc against the golden
// files that tools/make_*_golden.py write under tests/data/): where the data
// is, parameter counts, the NHWC -> NCHW view of an output, and the error
// measure the tests bound.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "runtime/tensor.h"

namespace cf::testing {

// tests/data/<sub> of the source tree (the test needs the CF_SOURCE_DIR
// compile definition, tests/CMakeLists.txt).
std::string TestDataDir(const std::string& sub);

// Elements of every parameter of `g`.
int64_t ParameterCount(const Graph& g);

// A [B, H, W, C] tensor's values in [B, C, H, W] order (PyTorch's layout, as
// the golden files hold images and feature maps); other ranks unchanged.
std::vector<double> NhwcToNchw(const Tensor& t);

// max |got - want| / max |want|; infinite when got has a NaN, the sizes
// differ or there is nothing to compare.
double RelativeError(const std::vector<double>& got, const std::vector<double>& want);

}  // namespace cf::testing
