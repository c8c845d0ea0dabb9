// CUDA launchers of upsample_nearest2x and its backward (definitions in
// upsample_nearest2x.cc; kernels and launch geometry in
// upsample_nearest2x_kernels.cuh).
#include "ops/cuda_util.cuh"
#include "ops/pool/upsample_nearest2x_kernels.cuh"

namespace cf {
namespace {

using namespace upsample_kernels;

template <typename U>
Status LaunchUpsample(KernelContext& ctx, int64_t row_bytes) {
  const Shape& xs = ctx.inputs[0].shape();
  const int64_t cu = row_bytes / int64_t{sizeof(U)}, total = ctx.outputs[0].numel() / xs[3] * cu;
  const UpsampleLaunch l = UpsampleLaunchFor(total);
  if (l.empty()) return absl::OkStatus();
  UpsampleKernel<U><<<l.grid, l.block, 0, CudaStreamOf(ctx)>>>(
      static_cast<const U*>(ctx.inputs[0].raw()), static_cast<U*>(ctx.outputs[0].raw()), total, xs[1], xs[2], cu);
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

Status UpsampleCuda(KernelContext& ctx) {
  const Tensor& x = ctx.inputs[0];
  CF_RETURN_IF_ERROR(DispatchCudaFloat(x.dtype(), "upsample_nearest2x", [](auto) { return absl::OkStatus(); }));
  if (ctx.outputs[0].numel() == 0) return absl::OkStatus();
  const int64_t row_bytes = x.shape()[3] * DTypeSize(x.dtype());
  switch (UpsampleUnitBytes(row_bytes, reinterpret_cast<uintptr_t>(x.raw()),
                            reinterpret_cast<uintptr_t>(ctx.outputs[0].raw()))) {
    case 16: return LaunchUpsample<uint4>(ctx, row_bytes);
    case 8: return LaunchUpsample<uint2>(ctx, row_bytes);
    case 4: return LaunchUpsample<uint32_t>(ctx, row_bytes);
    default: return LaunchUpsample<uint16_t>(ctx, row_bytes);
  }
}

Status UpsampleBackwardCuda(KernelContext& ctx) {
  const Shape& xs = ctx.outputs[0].shape();
  const int64_t total = xs.numel();
  if (total == 0) return absl::OkStatus();
  return DispatchCudaFloat(ctx.inputs[0].dtype(), "upsample_nearest2x_backward", [&](auto tag) -> Status {
    using T = decltype(tag);
    const UpsampleLaunch l = UpsampleLaunchFor(total);
    UpsampleBackwardKernel<T><<<l.grid, l.block, 0, CudaStreamOf(ctx)>>>(
        ctx.inputs[0].data<T>(), ctx.outputs[0].data<T>(), total, xs[1], xs[2], xs[3]);
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

}  // namespace

CF_REGISTER_KERNEL("upsample_nearest2x", kCUDA, UpsampleCuda);
CF_REGISTER_KERNEL("upsample_nearest2x_backward", kCUDA, UpsampleBackwardCuda);

}  // namespace cf
