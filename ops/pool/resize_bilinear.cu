// CUDA launchers of resize_bilinear and resize_bilinear_backward (definitions
// in resize_bilinear.cc; kernels, a gather for the backward, and the scales in
// resize_bilinear_kernels.cuh).
#include "ops/pool/pool_cuda.cuh"
#include "ops/pool/resize_bilinear_kernels.cuh"

namespace cf {
namespace {

using resize_kernels::ResizeBackwardKernel;
using resize_kernels::ResizeKernel;

// With the kernels' sh, sw from ResizeScalesFor.
template <typename Pick>
Status LaunchResize(KernelContext& ctx, bool backward, Pick pick) {
  const pool_internal::PoolSides s = pool_internal::SidesOf(ctx, backward);
  const resize_kernels::ResizeScales sc =
      resize_kernels::ResizeScalesFor(s.full[1], s.full[2], s.pooled[1], s.pooled[2]);
  return pool_internal::LaunchPoolKernel(ctx, backward, pick, sc.sh, sc.sw);
}

Status ResizeCuda(KernelContext& ctx) {
  return LaunchResize(ctx, false, [](auto tag) { return ResizeKernel<decltype(tag)>; });
}

Status ResizeBackwardCuda(KernelContext& ctx) {
  return LaunchResize(ctx, true, [](auto tag) { return ResizeBackwardKernel<decltype(tag)>; });
}

}  // namespace

CF_REGISTER_KERNEL("resize_bilinear", kCUDA, ResizeCuda);
CF_REGISTER_KERNEL("resize_bilinear_backward", kCUDA, ResizeBackwardCuda);

}  // namespace cf
