// adaln_modulate and adaln_modulate_backward kernels (definitions and the
// math in adaln_modulate.cc), written against runtime/kdev/kdev.h: launched
// by adaln_modulate.cu and run on the CPU interpreter by
// tests/ops/norm_interp_test.cc, both with the launch geometry below.
// x: [B, T, C]; shift, scale: [B, C] (or [B, 1, C]).
//
// Forward: AdaLnKernel, grid-stride, 4-wide when C % 4 == 0 and every pointer
// is 4-element aligned. Backward: AdaLnBwdPartialKernel (dx, and per chunk of
// tokens the sums of dy and dy * x per channel) -> norm_cuda::SumChunksKernel.
#pragma once

#include <algorithm>
#include <cstdint>

#include "ops/grid_for.h"
#include "ops/norm/norm_kernels.cuh"
#include "runtime/kdev/kdev.h"

namespace cf {
namespace adaln_kernels {

using norm_cuda::Load4;
using norm_cuda::Store4;

// y = x * (1 + scale[b]) + shift[b]; total = B*T*C / kVec, TC = T * C.
// kVec = 4 needs C % 4 == 0 and aligned pointers. y may be x (in place), so
// x and y are not KD_RESTRICT.
template <typename T, int kVec>
KD_GLOBAL void AdaLnKernel(kd::Ptr<const T> x, kd::Ptr<const T> KD_RESTRICT shift, kd::Ptr<const T> KD_RESTRICT scale,
                           kd::Ptr<T> y, int64_t total, int64_t TC, int C) {
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < total;
       i += int64_t(kd::gridDim.x) * kd::blockDim.x) {
    const int64_t e = i * kVec;
    const int64_t bc = (e / TC) * C + e % C;  // index of (b, c0) in shift / scale
    float v[kVec];
    if constexpr (kVec == 4) {
      float sh[4], sc[4];
      Load4(x + e, v);
      Load4(shift + bc, sh);
      Load4(scale + bc, sc);
      KD_UNROLL
      for (int j = 0; j < 4; ++j) v[j] = fmaf(v[j], 1.f + sc[j], sh[j]);
      Store4(y + e, v);
    } else {
      kd::StoreF(y, e, fmaf(kd::LoadF(x, e), 1.f + kd::LoadF(scale, bc), kd::LoadF(shift, bc)));
    }
  }
}

// x, dy, dx: [B, T, C]; scale: [B, C]. Writes dx = dy * (1 + scale) and the
// partial sums over a chunk of `rows` tokens: part_shift = sum dy,
// part_scale = sum dy * x, [B, chunks, C].
// Grid (ceil(C / 32), chunks, B), block (32, 8): the 8 thread-rows split the tokens.
template <typename T>
KD_GLOBAL void AdaLnBwdPartialKernel(kd::Ptr<const T> KD_RESTRICT x, kd::Ptr<const T> KD_RESTRICT scale,
                                     kd::Ptr<const T> KD_RESTRICT dy, kd::Ptr<T> KD_RESTRICT dx, int64_t Tn, int C,
                                     int64_t rows, kd::Ptr<float> KD_RESTRICT part_shift,
                                     kd::Ptr<float> KD_RESTRICT part_scale) {
  const int c = kd::blockIdx.x * 32 + kd::threadIdx.x;
  const int64_t chunk = kd::blockIdx.y, chunks = kd::gridDim.y, b = kd::blockIdx.z;
  const int64_t r0 = chunk * rows, r1 = r0 + rows < Tn ? r0 + rows : Tn;
  float a = 0.f, s = 0.f;
  if (c < C) {
    const float s1 = 1.f + kd::LoadF(scale, b * C + c);
    KD_UNROLL_N(4)
    for (int64_t r = r0 + kd::threadIdx.y; r < r1; r += 8) {
      const int64_t e = (b * Tn + r) * C + c;
      const float g = kd::LoadF(dy, e);
      kd::StoreF(dx, e, g * s1);
      a += g;
      s = fmaf(g, kd::LoadF(x, e), s);
    }
  }
  norm_cuda::SumThreadRows(a, s);
  if (kd::threadIdx.y == 0 && c < C) {
    part_shift[(b * chunks + chunk) * C + c] = a;
    part_scale[(b * chunks + chunk) * C + c] = s;
  }
}

// ---- launch geometry (host) ----------------------------------------------------------------

// AdaLnKernel<T, vec><<<grid, 256>>> over total = numel / vec work items;
// vec = 4 when C % 4 == 0 and every pointer is 4-element aligned, else 1.
struct AdaLnLaunch {
  int vec = 1;
  int64_t total = 0;
  unsigned grid = 1, block = 256;
};
inline AdaLnLaunch AdaLnLaunchFor(int64_t numel, int64_t c, bool aligned4) {
  AdaLnLaunch l;
  l.vec = c % 4 == 0 && aligned4 ? 4 : 1;
  l.total = numel / l.vec;
  l.grid = GridFor(l.total);
  return l;
}

// The backward: AdaLnBwdPartialKernel<<<grid, (32, 8)>>> over chunks of
// `rows` tokens (about four blocks per SM in all, >= 32 tokens each), then
// SumChunksKernel<<<SumChunksGrid(B, C), (32, 8)>>>. Workspace: 2 · B ·
// chunks · C floats. B <= 65535 and chunks <= 65535 (grid.z, grid.y) or the
// launcher refuses. Needs B, T, C >= 1.
struct AdaLnBwdPlan {
  int64_t rows = 0, chunks = 0;
  kd::Dim3 grid{0}, block{32, 8};
};
inline AdaLnBwdPlan AdaLnBwdPlanFor(int64_t bn, int64_t tn, int64_t c, int sms) {
  AdaLnBwdPlan p;
  const int64_t col_blocks = (c + 31) / 32;
  const int64_t want_chunks = std::max<int64_t>(1, 4 * int64_t(sms) / (col_blocks * bn));
  p.rows = std::max<int64_t>(32, (tn + want_chunks - 1) / want_chunks);
  p.chunks = (tn + p.rows - 1) / p.rows;
  p.grid = kd::Dim3(static_cast<unsigned>(col_blocks), static_cast<unsigned>(std::min<int64_t>(p.chunks, 65535)),
                    static_cast<unsigned>(std::min<int64_t>(bn, 65535)));
  return p;
}

}  // namespace adaln_kernels
}  // namespace cf
