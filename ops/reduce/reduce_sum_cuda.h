// The CUDA reduction engine behind sum, mean and sum_to (reduce_sum.cu).
#pragma once

#include "ops/op.h"

namespace cf {

// out = scale * (sum of x over the dimensions whose bit is set in `mask`), on
// ctx's stream; f32 accumulation. May use ctx.workspace for partial sums.
Status ReduceSumCuda(const Tensor& x, uint32_t mask, double scale, Tensor& out, KernelContext& ctx);

}  // namespace cf
