// CUDA kernels of resize_bilinear and resize_bilinear_backward (definitions
// in resize_bilinear.cc). Taps are computed per element with the shared
// BilinearTapOf (f32, like the CPU kernel for f32/f16/bf16). The backward is a
// gather: each input element scans the superset of output rows/columns from
// BilinearRangeOf and keeps the taps that read it, so no atomics are needed
// and the result is deterministic.
#include "ops/pool/pool_cuda.cuh"
#include "ops/pool/pool_internal.h"

namespace cf {
namespace {

using pool_internal::BilinearTap;
using pool_internal::BilinearTapOf;

// x: [N, H, W, C] -> y: [N, OH, OW, C]; total = N * OH * OW * C;
// sh = H / OH, sw = W / OW.
template <typename T>
__global__ void ResizeKernel(const T* __restrict__ x, T* __restrict__ y, int64_t total, int64_t H, int64_t W,
                             int64_t C, int64_t OH, int64_t OW, float sh, float sw) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const auto [n, oy, ox, c] = pool_internal::NhwcOf(i, OH, OW, C);
    const BilinearTap<float> a = BilinearTapOf(oy, H, sh), b = BilinearTapOf(ox, W, sw);
    const T* r0 = x + (n * H + a.i0) * W * C + c;
    const T* r1 = x + (n * H + a.i1) * W * C + c;
    const float top = b.l0 * LoadF(r0, b.i0 * C) + b.l1 * LoadF(r0, b.i1 * C);
    const float bottom = b.l0 * LoadF(r1, b.i0 * C) + b.l1 * LoadF(r1, b.i1 * C);
    StoreF(y, i, a.l0 * top + a.l1 * bottom);
  }
}

// Weight with which output index o's taps read input index i (0 when none;
// both taps when they coincide at the last index).
__device__ __forceinline__ float TapWeight(const BilinearTap<float>& t, int64_t i, bool* hit) {
  float w = 0.f;
  if (t.i0 == i) w += t.l0, *hit = true;
  if (t.i1 == i) w += t.l1, *hit = true;
  return w;
}

// dy: [N, OH, OW, C] -> dx: [N, H, W, C]; total = N * H * W * C.
template <typename T>
__global__ void ResizeBackwardKernel(const T* __restrict__ dy, T* __restrict__ dx, int64_t total, int64_t H, int64_t W,
                                     int64_t C, int64_t OH, int64_t OW, float sh, float sw) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const auto [n, iy, ix, c] = pool_internal::NhwcOf(i, H, W, C);
    int64_t oy0, oy1, ox0, ox1;
    pool_internal::BilinearRangeOf(iy, OH, sh, &oy0, &oy1);
    pool_internal::BilinearRangeOf(ix, OW, sw, &ox0, &ox1);
    float acc = 0.f;
    for (int64_t oy = oy0; oy <= oy1; ++oy) {
      bool hy = false;
      const float wy = TapWeight(BilinearTapOf(oy, H, sh), iy, &hy);
      if (!hy) continue;
      for (int64_t ox = ox0; ox <= ox1; ++ox) {
        bool hx = false;
        const float wx = TapWeight(BilinearTapOf(ox, W, sw), ix, &hx);
        if (hx) acc += wy * wx * LoadF(dy, ((n * OH + oy) * OW + ox) * C + c);
      }
    }
    StoreF(dx, i, acc);
  }
}

// With the kernels' sh, sw: the per-axis scales from the full-resolution
// side to the resized one.
template <typename Pick>
Status LaunchResize(KernelContext& ctx, bool backward, Pick pick) {
  const pool_internal::PoolSides s = pool_internal::SidesOf(ctx, backward);
  const float sh = pool_internal::BilinearScale<float>(s.full[1], s.pooled[1]);
  const float sw = pool_internal::BilinearScale<float>(s.full[2], s.pooled[2]);
  return pool_internal::LaunchPoolKernel(ctx, backward, pick, sh, sw);
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
