// CUDA launchers of adaptive_avg_pool2d and its backward (definitions in
// adaptive_avg_pool2d.cc; kernels in adaptive_avg_pool2d_kernels.cuh). One
// thread per output (forward) or input (backward, a gather over the bins
// containing it) element, channels fastest.
#include "ops/pool/adaptive_avg_pool2d_kernels.cuh"
#include "ops/pool/pool_cuda.cuh"

namespace cf {
namespace {

using adaptive_pool_kernels::AdaptiveBackwardKernel;
using adaptive_pool_kernels::AdaptiveKernel;

Status AdaptiveCuda(KernelContext& ctx) {
  return pool_internal::LaunchPoolKernel(ctx, false, [](auto tag) { return AdaptiveKernel<decltype(tag)>; });
}

Status AdaptiveBackwardCuda(KernelContext& ctx) {
  return pool_internal::LaunchPoolKernel(ctx, true, [](auto tag) { return AdaptiveBackwardKernel<decltype(tag)>; });
}

}  // namespace

CF_REGISTER_KERNEL("adaptive_avg_pool2d", kCUDA, AdaptiveCuda);
CF_REGISTER_KERNEL("adaptive_avg_pool2d_backward", kCUDA, AdaptiveBackwardCuda);

}  // namespace cf
