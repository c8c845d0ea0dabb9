// Test-only ops for the graph tests (executor, autodiff, CUDA executor): the
// OpDef boilerplate of an op whose output has input 0's type, so that each
// test file registers its ops in a line or two and stays independent of the
// op families.
#pragma once

#include <string>

#include "ops/op.h"

namespace cf::testing {

// An OpDef named `name` with exactly `num_inputs` inputs, one output of input
// 0's shape and dtype, and a zero Cost; no VJP, not in-place, not a view
// (callers set those). Register it with CF_REGISTER_OP and its kernels with
// CF_REGISTER_KERNEL.
OpDef SameTypeTestOp(std::string name, int num_inputs);

}  // namespace cf::testing
