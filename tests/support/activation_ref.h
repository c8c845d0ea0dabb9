// Float64 references of the activations, written from their definitions
// (PyTorch's formulas), shared by the activation tests and the matmul tests
// of fused activation epilogues.
#pragma once

#include <cmath>

namespace cf::testing {

inline double SigmoidRef(double x) { return 1 / (1 + std::exp(-x)); }
inline double SiluRef(double x) { return x * SigmoidRef(x); }
// GELU with the exact erf.
inline double GeluErfRef(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }
// GELU with the tanh approximation (approximate="tanh", "gelu_tanh").
inline double GeluTanhRef(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}

}  // namespace cf::testing
