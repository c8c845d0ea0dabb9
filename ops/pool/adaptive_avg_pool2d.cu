// CUDA kernels of adaptive_avg_pool2d and its backward (definitions in
// adaptive_avg_pool2d.cc). One thread per output (forward) or input
// (backward, a gather over the bins containing it) element, channels fastest.
#include "ops/pool/pool_cuda.cuh"
#include "ops/pool/pool_internal.h"

namespace cf {
namespace {

using pool_internal::AdaptiveEnd;
using pool_internal::AdaptiveStart;

// x: [N, H, W, C] -> y: [N, OH, OW, C]; total = N * OH * OW * C.
template <typename T>
__global__ void AdaptiveKernel(const T* __restrict__ x, T* __restrict__ y, int64_t total, int64_t H, int64_t W,
                               int64_t C, int64_t OH, int64_t OW) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const auto [n, oy, ox, c] = pool_internal::NhwcOf(i, OH, OW, C);
    const int64_t y0 = AdaptiveStart(oy, H, OH), y1 = AdaptiveEnd(oy, H, OH);
    const int64_t x0 = AdaptiveStart(ox, W, OW), x1 = AdaptiveEnd(ox, W, OW);
    float acc = 0.f;
    for (int64_t iy = y0; iy < y1; ++iy)
      for (int64_t ix = x0; ix < x1; ++ix) acc += LoadF(x, ((n * H + iy) * W + ix) * C + c);
    StoreF(y, i, acc / static_cast<float>((y1 - y0) * (x1 - x0)));
  }
}

// dy: [N, OH, OW, C] -> dx: [N, H, W, C]; total = N * H * W * C.
template <typename T>
__global__ void AdaptiveBackwardKernel(const T* __restrict__ dy, T* __restrict__ dx, int64_t total, int64_t H,
                                       int64_t W, int64_t C, int64_t OH, int64_t OW) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const auto [n, iy, ix, c] = pool_internal::NhwcOf(i, H, W, C);
    int64_t oy0, oy1, ox0, ox1;
    pool_internal::AdaptiveBinsOf(iy, H, OH, &oy0, &oy1);
    pool_internal::AdaptiveBinsOf(ix, W, OW, &ox0, &ox1);
    float acc = 0.f;
    for (int64_t oy = oy0; oy <= oy1; ++oy) {
      const int64_t bh = AdaptiveEnd(oy, H, OH) - AdaptiveStart(oy, H, OH);
      for (int64_t ox = ox0; ox <= ox1; ++ox) {
        const int64_t bw = AdaptiveEnd(ox, W, OW) - AdaptiveStart(ox, W, OW);
        acc += LoadF(dy, ((n * OH + oy) * OW + ox) * C + c) / static_cast<float>(bh * bw);
      }
    }
    StoreF(dx, i, acc);
  }
}

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
