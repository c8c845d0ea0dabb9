// CUDA kernels of upsample_nearest2x and its backward (definitions in
// upsample_nearest2x.cc).
#include "ops/cuda_util.cuh"
#include "ops/pool/pool_internal.h"

namespace cf {
namespace {

// x: [N, H, W, Cu] -> y: [N, 2H, 2W, Cu] in units U of the channel bytes (a
// pure copy: U is 16, 8, 4 or 2 bytes, whichever divides C * sizeof(T) and
// the alignment). total = N * 2H * 2W * Cu.
template <typename U>
__global__ void UpsampleKernel(const U* __restrict__ x, U* __restrict__ y, int64_t total, int64_t H, int64_t W,
                               int64_t Cu) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const auto [n, oy, ox, c] = pool_internal::NhwcOf(i, 2 * H, 2 * W, Cu);
    y[i] = x[((n * H + oy / 2) * W + ox / 2) * Cu + c];
  }
}

// dy: [N, 2H, 2W, C] -> dx: [N, H, W, C], the sum of each 2x2 block; total = N * H * W * C.
template <typename T>
__global__ void UpsampleBackwardKernel(const T* __restrict__ dy, T* __restrict__ dx, int64_t total, int64_t H,
                                       int64_t W, int64_t C) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const auto [n, iy, ix, c] = pool_internal::NhwcOf(i, H, W, C);
    const int64_t r0 = ((n * 2 * H + 2 * iy) * 2 * W + 2 * ix) * C + c, r1 = r0 + 2 * W * C;
    StoreF(dx, i, (LoadF(dy, r0) + LoadF(dy, r0 + C)) + (LoadF(dy, r1) + LoadF(dy, r1 + C)));
  }
}

template <typename U>
Status LaunchUpsample(KernelContext& ctx, int64_t row_bytes) {
  const Shape& xs = ctx.inputs[0].shape();
  const int64_t cu = row_bytes / int64_t{sizeof(U)}, total = ctx.outputs[0].numel() / xs[3] * cu;
  UpsampleKernel<U><<<GridFor(total), 256, 0, CudaStreamOf(ctx)>>>(
      static_cast<const U*>(ctx.inputs[0].raw()), static_cast<U*>(ctx.outputs[0].raw()), total, xs[1], xs[2], cu);
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

Status UpsampleCuda(KernelContext& ctx) {
  const Tensor& x = ctx.inputs[0];
  CF_RETURN_IF_ERROR(DispatchCudaFloat(x.dtype(), "upsample_nearest2x", [](auto) { return absl::OkStatus(); }));
  if (ctx.outputs[0].numel() == 0) return absl::OkStatus();
  const int64_t row_bytes = x.shape()[3] * DTypeSize(x.dtype());
  const uintptr_t align = reinterpret_cast<uintptr_t>(x.raw()) | reinterpret_cast<uintptr_t>(ctx.outputs[0].raw());
  auto fits = [&](int64_t unit) { return row_bytes % unit == 0 && align % unit == 0; };
  if (fits(16)) return LaunchUpsample<uint4>(ctx, row_bytes);
  if (fits(8)) return LaunchUpsample<uint2>(ctx, row_bytes);
  if (fits(4)) return LaunchUpsample<uint32_t>(ctx, row_bytes);
  return LaunchUpsample<uint16_t>(ctx, row_bytes);
}

Status UpsampleBackwardCuda(KernelContext& ctx) {
  const Shape& xs = ctx.outputs[0].shape();
  const int64_t total = xs.numel();
  if (total == 0) return absl::OkStatus();
  return DispatchCudaFloat(ctx.inputs[0].dtype(), "upsample_nearest2x_backward", [&](auto tag) -> Status {
    using T = decltype(tag);
    UpsampleBackwardKernel<T><<<GridFor(total), 256, 0, CudaStreamOf(ctx)>>>(
        ctx.inputs[0].data<T>(), ctx.outputs[0].data<T>(), total, xs[1], xs[2], xs[3]);
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

}  // namespace

CF_REGISTER_KERNEL("upsample_nearest2x", kCUDA, UpsampleCuda);
CF_REGISTER_KERNEL("upsample_nearest2x_backward", kCUDA, UpsampleBackwardCuda);

}  // namespace cf
