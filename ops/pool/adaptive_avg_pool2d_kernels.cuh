// adaptive_avg_pool2d kernels (definitions in adaptive_avg_pool2d.cc),
// written against runtime/kdev/kdev.h: launched by adaptive_avg_pool2d.cu and
// run on the CPU interpreter by tests/ops/pool_interp_test.cc, both with the
// geometry of pool_kernels.cuh (one thread per output (forward) or input
// (backward, a gather over the bins containing it) element, channels fastest).
#pragma once

#include <cstdint>

#include "ops/pool/pool_internal.h"
#include "ops/pool/pool_kernels.cuh"
#include "runtime/kdev/kdev.h"

namespace cf::adaptive_pool_kernels {

// x: [N, H, W, C] -> y: [N, OH, OW, C]; total = N * OH * OW * C.
template <typename T>
KD_GLOBAL void AdaptiveKernel(kd::Ptr<const T> KD_RESTRICT x, kd::Ptr<T> KD_RESTRICT y, int64_t total, int64_t H,
                              int64_t W, int64_t C, int64_t OH, int64_t OW) {
  using pool_internal::AdaptiveEnd;
  using pool_internal::AdaptiveStart;
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < total;
       i += int64_t(kd::gridDim.x) * kd::blockDim.x) {
    const auto [n, oy, ox, c] = pool_internal::NhwcOf(i, OH, OW, C);
    const int64_t y0 = AdaptiveStart(oy, H, OH), y1 = AdaptiveEnd(oy, H, OH);
    const int64_t x0 = AdaptiveStart(ox, W, OW), x1 = AdaptiveEnd(ox, W, OW);
    float acc = 0.f;
    for (int64_t iy = y0; iy < y1; ++iy)
      for (int64_t ix = x0; ix < x1; ++ix) acc += kd::LoadF(x, ((n * H + iy) * W + ix) * C + c);
    kd::StoreF(y, i, acc / static_cast<float>((y1 - y0) * (x1 - x0)));
  }
}

// dy: [N, OH, OW, C] -> dx: [N, H, W, C]; total = N * H * W * C.
template <typename T>
KD_GLOBAL void AdaptiveBackwardKernel(kd::Ptr<const T> KD_RESTRICT dy, kd::Ptr<T> KD_RESTRICT dx, int64_t total,
                                      int64_t H, int64_t W, int64_t C, int64_t OH, int64_t OW) {
  using pool_internal::AdaptiveEnd;
  using pool_internal::AdaptiveStart;
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < total;
       i += int64_t(kd::gridDim.x) * kd::blockDim.x) {
    const auto [n, iy, ix, c] = pool_internal::NhwcOf(i, H, W, C);
    int64_t oy0, oy1, ox0, ox1;
    pool_internal::AdaptiveBinsOf(iy, H, OH, &oy0, &oy1);
    pool_internal::AdaptiveBinsOf(ix, W, OW, &ox0, &ox1);
    float acc = 0.f;
    for (int64_t oy = oy0; oy <= oy1; ++oy) {
      const int64_t bh = AdaptiveEnd(oy, H, OH) - AdaptiveStart(oy, H, OH);
      for (int64_t ox = ox0; ox <= ox1; ++ox) {
        const int64_t bw = AdaptiveEnd(ox, W, OW) - AdaptiveStart(ox, W, OW);
        acc += kd::LoadF(dy, ((n * OH + oy) * OW + ox) * C + c) / static_cast<float>(bh * bw);
      }
    }
    kd::StoreF(dx, i, acc);
  }
}

}  // namespace cf::adaptive_pool_kernels
