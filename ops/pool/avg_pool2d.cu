// CUDA launchers of avg_pool2d and avg_pool2d_backward (definitions in
// avg_pool2d.cc; kernels in avg_pool2d_kernels.cuh). One thread per output
// (forward) or input (backward, a gather) element, channels fastest so warps
// read contiguous channels.
#include "ops/pool/avg_pool2d_kernels.cuh"
#include "ops/pool/pool_checks.h"
#include "ops/pool/pool_cuda.cuh"

namespace cf {
namespace {

using avg_pool_kernels::AvgPoolKernel;
using pool_internal::PoolGeom;

template <bool kBackward>
Status AvgPoolCuda(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(const PoolGeom g, pool_internal::ParsePoolGeom(ctx.attrs));
  return pool_internal::LaunchPoolKernel(ctx, kBackward,
                                         [](auto tag) { return AvgPoolKernel<decltype(tag), kBackward>; }, g);
}

}  // namespace

CF_REGISTER_KERNEL("avg_pool2d", kCUDA, AvgPoolCuda<false>);
CF_REGISTER_KERNEL("avg_pool2d_backward", kCUDA, AvgPoolCuda<true>);

}  // namespace cf
