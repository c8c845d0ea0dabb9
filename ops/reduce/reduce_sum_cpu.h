// The CPU reduction engine behind sum, mean and sum_to.
#pragma once

#include "ops/op.h"

namespace cf {

// out = scale * (sum of x over the dimensions whose bit is set in `mask`).
// `out` holds the kept dimensions in order (any shape with that many
// elements); accumulation in f32 (f64 for f64 storage).
Status ReduceSumCpu(const Tensor& x, uint32_t mask, double scale, Tensor& out);

}  // namespace cf
