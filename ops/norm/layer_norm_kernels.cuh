// layer_norm and layer_norm_backward kernels (the math in layer_norm.cc),
// written against runtime/kdev/kdev.h: launched by layer_norm.cu and run on
// the CPU interpreter by tests/ops/norm_interp_test.cc, both with the launch
// geometry below. x is viewed as rows [R, C].
//
// Forward: one warp per row. v1 (LnWarpVecKernel) for C % 4 == 0 and
// C <= 1152 (every model width up to PixArt's 1152): the row lives in
// registers, loaded with 4-wide vector loads, so x is read once and the
// variance is two-pass over registers. v0 (LnWarpGenericKernel), any C: the
// same math reading the row from global memory (L1) three times.
// Backward: LnBwdDxKernel (one warp per row; also saves each row's mean and
// rstd), then LnBwdParamPartialKernel / norm_cuda::SumChunksKernel reduce
// dgamma and dbeta over rows in two stages.
#pragma once

#include <algorithm>
#include <cstdint>

#include "ops/norm/norm_kernels.cuh"
#include "runtime/kdev/kdev.h"

namespace cf {
namespace layer_norm_kernels {

using norm_cuda::Load4;
using norm_cuda::Store4;
using norm_cuda::WarpSum;

constexpr int kRowsPerBlock = 8;  // warps per 256-thread block, one row each
constexpr int kMaxVecs = 9;       // 4-vectors per lane in v1: C <= 32 * 4 * 9 = 1152

// x, y: [R, C] with C % 4 == 0, C <= 128 * kVecs, 4-aligned rows; gamma,
// beta: [C] or null. Block (32, 8): warp kd::threadIdx.y handles one row; lane l
// holds the 4-vectors l, l + 32, ... of the row.
template <typename T, int kVecs>
KD_GLOBAL void LnWarpVecKernel(kd::Ptr<const T> KD_RESTRICT x, kd::Ptr<const T> KD_RESTRICT gamma, kd::Ptr<const T> KD_RESTRICT beta,
                                kd::Ptr<T> KD_RESTRICT y, int64_t R, int C, float eps) {
  const int64_t row = kd::blockIdx.x * int64_t(kRowsPerBlock) + kd::threadIdx.y;
  if (row >= R) return;  // the whole warp
  const int lane = kd::threadIdx.x, nv = C / 4;
  const kd::Ptr<const T> xr = x + row * C;
  float v[kVecs][4];
  float s = 0.f;
KD_UNROLL
  for (int k = 0; k < kVecs; ++k) {
    const int vi = lane + 32 * k;
    if (vi < nv) {
      Load4(xr + 4 * vi, v[k]);
      s += (v[k][0] + v[k][1]) + (v[k][2] + v[k][3]);
    }
  }
  const float mean = WarpSum(s) / static_cast<float>(C);
  float q = 0.f;
KD_UNROLL
  for (int k = 0; k < kVecs; ++k) {
    if (lane + 32 * k < nv) {
KD_UNROLL
      for (int j = 0; j < 4; ++j) {
        const float d = v[k][j] - mean;
        q = fmaf(d, d, q);
      }
    }
  }
  const float rstd = kd::rsqrtf(WarpSum(q) / static_cast<float>(C) + eps);
  const kd::Ptr<T> yr = y + row * C;
KD_UNROLL
  for (int k = 0; k < kVecs; ++k) {
    const int vi = lane + 32 * k;
    if (vi < nv) {
      float o[4];
KD_UNROLL
      for (int j = 0; j < 4; ++j) o[j] = (v[k][j] - mean) * rstd;
      if (gamma) {
        float g[4], b[4];
        Load4(gamma + 4 * vi, g);
        Load4(beta + 4 * vi, b);
KD_UNROLL
        for (int j = 0; j < 4; ++j) o[j] = fmaf(o[j], g[j], b[j]);
      }
      Store4(yr + 4 * vi, o);
    }
  }
}

// Mean and rstd of a row xr [C] by one warp (lane = kd::threadIdx.x), two passes
// reading the row from global memory (L1).
template <typename T>
KD_DEVICE void WarpRowStats(kd::Ptr<const T> xr, int C, float eps, float& mean, float& rstd) {
  const int lane = kd::threadIdx.x;
  float s = 0.f;
  for (int i = lane; i < C; i += 32) s += kd::LoadF(xr, i);
  mean = WarpSum(s) / static_cast<float>(C);
  float q = 0.f;
  for (int i = lane; i < C; i += 32) {
    const float d = kd::LoadF(xr, i) - mean;
    q = fmaf(d, d, q);
  }
  rstd = kd::rsqrtf(WarpSum(q) / static_cast<float>(C) + eps);
}

// x, y: [R, C], any C; gamma, beta: [C] or null. Block (32, 8), a warp per row.
template <typename T>
KD_GLOBAL void LnWarpGenericKernel(kd::Ptr<const T> KD_RESTRICT x, kd::Ptr<const T> KD_RESTRICT gamma, kd::Ptr<const T> KD_RESTRICT beta,
                                    kd::Ptr<T> KD_RESTRICT y, int64_t R, int C, float eps) {
  const int64_t row = kd::blockIdx.x * int64_t(kRowsPerBlock) + kd::threadIdx.y;
  if (row >= R) return;
  const int lane = kd::threadIdx.x;
  const kd::Ptr<const T> xr = x + row * C;
  float mean, rstd;
  WarpRowStats(xr, C, eps, mean, rstd);
  const kd::Ptr<T> yr = y + row * C;
  for (int i = lane; i < C; i += 32) {
    float o = (kd::LoadF(xr, i) - mean) * rstd;
    if (gamma) o = fmaf(o, kd::LoadF(gamma, i), kd::LoadF(beta, i));
    kd::StoreF(yr, i, o);
  }
}

// x, dy, dx: [R, C]; gamma: [C] or null; row_stats: [R] x {mean, rstd} (out).
// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = gamma * dy.
// Block (32, 8), a warp per row.
template <typename T>
KD_GLOBAL void LnBwdDxKernel(kd::Ptr<const T> KD_RESTRICT x, kd::Ptr<const T> KD_RESTRICT dy, kd::Ptr<const T> KD_RESTRICT gamma,
                              kd::Ptr<T> KD_RESTRICT dx, kd::Ptr<float> KD_RESTRICT row_stats, int64_t R, int C, float eps) {
  const int64_t row = kd::blockIdx.x * int64_t(kRowsPerBlock) + kd::threadIdx.y;
  if (row >= R) return;
  const int lane = kd::threadIdx.x;
  const kd::Ptr<const T> xr = x + row * C;
  const kd::Ptr<const T> dyr = dy + row * C;
  float mean, rstd;
  WarpRowStats(xr, C, eps, mean, rstd);
  float sa = 0.f, sb = 0.f;
  for (int i = lane; i < C; i += 32) {
    const float g = kd::LoadF(dyr, i) * (gamma ? kd::LoadF(gamma, i) : 1.f);
    sa += g;
    sb = fmaf(g, (kd::LoadF(xr, i) - mean) * rstd, sb);
  }
  sa = WarpSum(sa) / static_cast<float>(C);
  sb = WarpSum(sb) / static_cast<float>(C);
  const kd::Ptr<T> dxr = dx + row * C;
  for (int i = lane; i < C; i += 32) {
    const float g = kd::LoadF(dyr, i) * (gamma ? kd::LoadF(gamma, i) : 1.f);
    const float xh = (kd::LoadF(xr, i) - mean) * rstd;
    kd::StoreF(dxr, i, rstd * (g - sa - xh * sb));
  }
  if (lane == 0) {
    row_stats[2 * row] = mean;
    row_stats[2 * row + 1] = rstd;
  }
}

// x, dy: [R, C]; row_stats: [R] x {mean, rstd} -> part_g, part_b: [chunks, C],
// sums of dy * xhat and dy over each chunk of `rows` rows.
// Grid (ceil(C / 32), chunks), block (32, 8): the 8 thread-rows split the rows.
template <typename T>
KD_GLOBAL void LnBwdParamPartialKernel(kd::Ptr<const T> KD_RESTRICT x, kd::Ptr<const T> KD_RESTRICT dy,
                                        kd::Ptr<const float> KD_RESTRICT row_stats, int64_t R, int C, int64_t rows,
                                        kd::Ptr<float> KD_RESTRICT part_g, kd::Ptr<float> KD_RESTRICT part_b) {
  const int c = kd::blockIdx.x * 32 + kd::threadIdx.x;
  const int64_t chunk = kd::blockIdx.y;
  const int64_t r0 = chunk * rows, r1 = r0 + rows < R ? r0 + rows : R;
  float a = 0.f, b = 0.f;
  if (c < C) {
KD_UNROLL_N(4)
    for (int64_t r = r0 + kd::threadIdx.y; r < r1; r += 8) {
      const float d = kd::LoadF(dy, r * C + c);
      const float xh = (kd::LoadF(x, r * C + c) - float(row_stats[2 * r])) * float(row_stats[2 * r + 1]);
      a = fmaf(d, xh, a);
      b += d;
    }
  }
  norm_cuda::SumThreadRows(a, b);
  if (kd::threadIdx.y == 0 && c < C) {
    part_g[chunk * C + c] = a;
    part_b[chunk * C + c] = b;
  }
}

// ---- launch geometry (host) ----------------------------------------------------------------

// The forward launch: vecs = 1..kMaxVecs for LnWarpVecKernel<T, vecs> (C % 4
// == 0, C <= 1152, every pointer 4-element aligned), 0 for LnWarpGenericKernel;
// grid ceil(R / 8) of blocks (32, 8). Empty for no rows.
struct LnForwardLaunch {
  int vecs = 0;
  kd::Dim3 grid{0}, block{32, kRowsPerBlock};
  bool empty() const { return grid.x == 0; }
};
inline LnForwardLaunch LnForwardLaunchFor(int64_t rows, int64_t c, bool aligned4) {
  LnForwardLaunch l;
  if (rows <= 0 || c <= 0) return l;
  l.grid = kd::Dim3(static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock));
  if (c % 4 == 0 && c <= 128 * kMaxVecs && aligned4) l.vecs = static_cast<int>((c + 127) / 128);
  return l;
}

// The backward launches: LnBwdDxKernel<<<dx_grid, (32, 8)>>>, then (affine)
// LnBwdParamPartialKernel<<<param_grid, (32, 8)>>> over `chunks` chunks of
// chunk_rows rows (about four blocks per SM, >= 64 rows each) and
// SumChunksKernel<<<SumChunksGrid(1, C), (32, 8)>>>. Workspace: 2·R +
// 2·chunks·C floats (norm_cuda::Carver). chunks <= 65535 (grid.y) or the
// launcher refuses.
struct LnBackwardPlan {
  kd::Dim3 dx_grid{0}, param_grid{0}, block{32, kRowsPerBlock};
  int64_t chunk_rows = 0, chunks = 0;
};
inline LnBackwardPlan LnBackwardPlanFor(int64_t rows, int64_t c, int sms) {
  LnBackwardPlan p;
  if (rows <= 0 || c <= 0) return p;
  const int64_t col_blocks = (c + 31) / 32;
  const int64_t want_chunks = std::max<int64_t>(1, 4 * int64_t(sms) / col_blocks);
  p.chunk_rows = std::max<int64_t>(64, (rows + want_chunks - 1) / want_chunks);
  p.chunks = (rows + p.chunk_rows - 1) / p.chunk_rows;
  p.dx_grid = kd::Dim3(static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock));
  p.param_grid = kd::Dim3(static_cast<unsigned>(col_blocks), static_cast<unsigned>(std::min<int64_t>(p.chunks, 65535)));
  return p;
}

}  // namespace layer_norm_kernels
}  // namespace cf
