// CUDA kernel of sum_to (definition in sum_to.cc): the reduction engine of
// ops/reduce over the broadcast dimensions.
#include "ops/cuda_util.cuh"
#include "ops/elementwise/sum_to_mask.h"
#include "ops/reduce/reduce_sum_cuda.h"

namespace cf {
namespace {

Status SumToCuda(KernelContext& ctx) {
  const uint32_t mask = SumToMask(ctx.inputs[0].shape(), ctx.outputs[0].shape());
  return ReduceSumCuda(ctx.inputs[0], mask, 1.0, ctx.outputs[0], ctx);
}

}  // namespace

CF_REGISTER_KERNEL("sum_to", kCUDA, SumToCuda);

}  // namespace cf
