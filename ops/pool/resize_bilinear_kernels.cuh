// resize_bilinear kernels (definitions in resize_bilinear.cc), written
// against runtime/kdev/kdev.h: launched by resize_bilinear.cu and run on the
// CPU interpreter by tests/ops/pool_interp_test.cc, both with the geometry of
// pool_kernels.cuh and the scales of ResizeScalesFor (ResizeIntoKernel, which
// writes a channel slice, by ops/convblock/convblock_pyramid.cu and
// tests/ops/convblock_interp_test.cc). Taps are computed per
// element with the shared BilinearTapOf (f32, like the CPU kernel for
// f32/f16/bf16). The backward is a gather: each input element scans the
// superset of output rows/columns from BilinearRangeOf and keeps the taps that
// read it, so no atomics are needed and the result is deterministic.
#pragma once

#include <cstdint>

#include "ops/pool/pool_internal.h"
#include "ops/pool/pool_kernels.cuh"
#include "runtime/kdev/kdev.h"

namespace cf::resize_kernels {

// Output element i of x: [N, H, W, C] resized to [N, OH, OW, C], written at
// y[(i / C) * y_stride + i % C] (y_stride = C: dense).
template <typename TX, typename TY>
KD_DEVICE void ResizeElements(kd::Ptr<const TX> KD_RESTRICT x, kd::Ptr<TY> KD_RESTRICT y, int64_t total, int64_t H,
                              int64_t W, int64_t C, int64_t OH, int64_t OW, float sh, float sw, int64_t y_stride) {
  using pool_internal::BilinearTap;
  using pool_internal::BilinearTapOf;
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < total;
       i += int64_t(kd::gridDim.x) * kd::blockDim.x) {
    const auto [n, oy, ox, c] = pool_internal::NhwcOf(i, OH, OW, C);
    const BilinearTap<float> a = BilinearTapOf(oy, H, sh), b = BilinearTapOf(ox, W, sw);
    const kd::Ptr<const TX> r0 = x + (n * H + a.i0) * W * C + c;
    const kd::Ptr<const TX> r1 = x + (n * H + a.i1) * W * C + c;
    const float top = b.l0 * kd::LoadF(r0, b.i0 * C) + b.l1 * kd::LoadF(r0, b.i1 * C);
    const float bottom = b.l0 * kd::LoadF(r1, b.i0 * C) + b.l1 * kd::LoadF(r1, b.i1 * C);
    kd::StoreF(y, (i / C) * y_stride + c, a.l0 * top + a.l1 * bottom);
  }
}

// x: [N, H, W, C] -> y: [N, OH, OW, C]; total = N * OH * OW * C;
// sh = H / OH, sw = W / OW.
template <typename T>
KD_GLOBAL void ResizeKernel(kd::Ptr<const T> KD_RESTRICT x, kd::Ptr<T> KD_RESTRICT y, int64_t total, int64_t H,
                            int64_t W, int64_t C, int64_t OH, int64_t OW, float sh, float sw) {
  ResizeElements<T, T>(x, y, total, H, W, C, OH, OW, sh, sw, C);
}

// The same into a channel slice: y's pixels are y_stride >= C elements apart
// (y points at the slice's first channel), e.g. one stage of the ConvBlock
// pyramid's concatenation (ops/convblock/convblock_pyramid.cu); x and y may
// have different storage types (an f32 map into an f16 slice).
template <typename TX, typename TY>
KD_GLOBAL void ResizeIntoKernel(kd::Ptr<const TX> KD_RESTRICT x, kd::Ptr<TY> KD_RESTRICT y, int64_t total, int64_t H,
                                int64_t W, int64_t C, int64_t OH, int64_t OW, float sh, float sw, int64_t y_stride) {
  ResizeElements<TX, TY>(x, y, total, H, W, C, OH, OW, sh, sw, y_stride);
}

// Weight with which output index o's taps read input index i (0 when none;
// both taps when they coincide at the last index).
KD_DEVICE float TapWeight(const pool_internal::BilinearTap<float>& t, int64_t i, bool* hit) {
  float w = 0.f;
  if (t.i0 == i) w += t.l0, *hit = true;
  if (t.i1 == i) w += t.l1, *hit = true;
  return w;
}

// dy: [N, OH, OW, C] -> dx: [N, H, W, C]; total = N * H * W * C.
template <typename T>
KD_GLOBAL void ResizeBackwardKernel(kd::Ptr<const T> KD_RESTRICT dy, kd::Ptr<T> KD_RESTRICT dx, int64_t total,
                                    int64_t H, int64_t W, int64_t C, int64_t OH, int64_t OW, float sh, float sw) {
  using pool_internal::BilinearTapOf;
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < total;
       i += int64_t(kd::gridDim.x) * kd::blockDim.x) {
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
        if (hx) acc += wy * wx * kd::LoadF(dy, ((n * OH + oy) * OW + ox) * C + c);
      }
    }
    kd::StoreF(dx, i, acc);
  }
}

// ---- launch geometry (host) ----------------------------------------------------------------

// The kernels' sh, sw: the per-axis scales from the full-resolution side
// [H, W] to the resized one [OH, OW] (f32, as the kernels compute the taps).
struct ResizeScales {
  float sh, sw;
};
inline ResizeScales ResizeScalesFor(int64_t H, int64_t W, int64_t OH, int64_t OW) {
  return {pool_internal::BilinearScale<float>(H, OH), pool_internal::BilinearScale<float>(W, OW)};
}

}  // namespace cf::resize_kernels
