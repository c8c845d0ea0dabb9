// avg_pool2d kernels (definitions in avg_pool2d.cc), written against
// runtime/kdev/kdev.h: launched by avg_pool2d.cu and run on the CPU
// interpreter by tests/ops/pool_interp_test.cc, both with the geometry of
// pool_kernels.cuh (one thread per element of the output, channels fastest).
#pragma once

#include <cstdint>

#include "ops/pool/pool_internal.h"
#include "ops/pool/pool_kernels.cuh"
#include "runtime/kdev/kdev.h"

namespace cf::avg_pool_kernels {

// Forward, src = x: [N, H, W, C] -> dst = y: [N, OH, OW, C]; backward,
// src = dy: [N, OH, OW, C] -> dst = dx: [N, H, W, C] (a gather over the
// windows containing each input). total = numel(dst).
template <typename T, bool kBackward>
KD_GLOBAL void AvgPoolKernel(kd::Ptr<const T> KD_RESTRICT src, kd::Ptr<T> KD_RESTRICT dst, int64_t total, int64_t H,
                             int64_t W, int64_t C, int64_t OH, int64_t OW, pool_internal::PoolGeom g) {
  const float div = static_cast<float>(g.kh * g.kw);
  const int64_t SH = kBackward ? OH : H, SW = kBackward ? OW : W;  // src's spatial size
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < total;
       i += int64_t(kd::gridDim.x) * kd::blockDim.x) {
    const pool_internal::NhwcIndex d = pool_internal::NhwcOf(i, kBackward ? H : OH, kBackward ? W : OW, C);
    int64_t r0, r1, q0, q1;
    pool_internal::AvgPoolSources<kBackward>(d.y, g.kh, g.sh, g.ph, SH, &r0, &r1);
    pool_internal::AvgPoolSources<kBackward>(d.x, g.kw, g.sw, g.pw, SW, &q0, &q1);
    float acc = 0.f;
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t q = q0; q < q1; ++q) acc += kd::LoadF(src, ((d.n * SH + r) * SW + q) * C + d.c);
    kd::StoreF(dst, i, acc / div);
  }
}

}  // namespace cf::avg_pool_kernels
