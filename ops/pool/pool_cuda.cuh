// The launch shared by the pool family's CUDA kernels: one thread per
// element of the op's output (grid-stride), channels fastest, with the
// geometry of pool_kernels.cuh (which the interpreted tests use too).
#pragma once

#include "ops/cuda_util.cuh"
#include "ops/pool/pool_kernels.cuh"

namespace cf::pool_internal {

// The two sides of a pool-family call: `full` [N, H, W, C] is the input of a
// forward op and the output of a backward op; `pooled` [N, OH, OW, C] the other.
struct PoolSides {
  const Shape& full;
  const Shape& pooled;
};
inline PoolSides SidesOf(const KernelContext& ctx, bool backward) {
  const Shape& in = ctx.inputs[0].shape();
  const Shape& out = ctx.outputs[0].shape();
  return backward ? PoolSides{out, in} : PoolSides{in, out};
}

// Runs kernel(in, out, total, H, W, C, OH, OW, extra...) over the `total`
// elements of output 0, with T the storage type of input 0 and
// kernel = pick(T{}).
template <typename Pick, typename... Extra>
Status LaunchPoolKernel(KernelContext& ctx, bool backward, Pick pick, Extra... extra) {
  const PoolSides s = SidesOf(ctx, backward);
  const int64_t total = ctx.outputs[0].numel();
  const PoolLaunch l = PoolLaunchFor(total);
  if (l.empty()) return absl::OkStatus();
  return DispatchCudaFloat(ctx.inputs[0].dtype(), ctx.op, [&](auto tag) -> Status {
    using T = decltype(tag);
    const auto kernel = pick(tag);
    kernel<<<l.grid, l.block, 0, CudaStreamOf(ctx)>>>(ctx.inputs[0].data<T>(), ctx.outputs[0].data<T>(), total,
                                                     s.full[1], s.full[2], s.full[3], s.pooled[1], s.pooled[2],
                                                     extra...);
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

}  // namespace cf::pool_internal
