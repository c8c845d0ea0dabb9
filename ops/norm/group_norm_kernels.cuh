// group_norm and group_norm_backward kernels (definitions and the math in
// group_norm.cc), written against runtime/kdev/kdev.h: launched by
// group_norm.cu and run on the CPU interpreter by
// tests/ops/norm_interp_test.cc, both with the launch geometry below. x is
// viewed as [N, P, C] (P spatial positions).
//
// Statistics are a two-stage reduction with a grid that fills the GPU even at
// batch 2: the spatial rows of each sample are split into chunks, one block
// per (chunk, n) reads whole rows of C channels (coalesced), each thread keeps
// shifted sums for the channels it owns, and the block writes per-group
// moments {count, mean, M2} of its chunk; a second kernel merges the chunks'
// moments per (n, g) with Chan's formula, which stays accurate for large
// groups (e.g. 128x128 positions x 10 channels) in f32.
//
// Forward:  GnStatsPartialKernel -> GnStatsFinalKernel -> GnNormalizeKernel
//           (which applies silu after the affine for activation "silu").
// Backward: the same two statistics kernels (recomputed, see group_norm.cc),
//           GnBwdPartialKernel (per chunk, per channel: sum dy, sum dy*xhat)
//           -> norm_cuda::SumChunksKernel (sum over chunks) -> GnBwdGroupKernel
//           (per (n, g) coefficients, dgamma, dbeta) -> GnBwdDxKernel.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "ops/activation/activation_math.h"
#include "ops/grid_for.h"
#include "ops/norm/moments.h"
#include "ops/norm/norm_internal.h"
#include "ops/norm/norm_kernels.cuh"
#include "runtime/kdev/kdev.h"

namespace cf {
namespace group_norm_kernels {

using norm_cuda::Load4;
using norm_cuda::Store4;
using norm_internal::GnDims;

constexpr int kBlockThreads = 512;
constexpr int64_t kSmemBytes = 48 * 1024;  // default dynamic shared memory limit

// Rows of a chunk of nr rows handled by thread-row j of ty.
KD_HD int64_t RowsOfThreadRow(int64_t nr, int j, int ty) { return nr > j ? (nr - j + ty - 1) / ty : 0; }

// x: [N, P, C] of T. partial: [N, chunks, G] x {count, mean, M2}.
// Grid (chunks, N), block (tx, ty), dynamic shared memory 2 * ty * C floats.
template <typename T, int kCpt>
KD_GLOBAL void KD_LAUNCH_BOUNDS(kBlockThreads)
    GnStatsPartialKernel(kd::Ptr<const T> KD_RESTRICT x, int64_t P, int C, int G, int Cg, int64_t rows,
                         kd::Ptr<float> KD_RESTRICT partial) {
  KD_DYNAMIC_SHARED(float, smem);
  const int tx = kd::threadIdx.x, ty = kd::threadIdx.y, TX = kd::blockDim.x, TY = kd::blockDim.y;
  const int64_t chunk = kd::blockIdx.x, chunks = kd::gridDim.x;
  const int64_t n = kd::blockIdx.y;
  const int64_t r0 = chunk * rows, r1 = r0 + rows < P ? r0 + rows : P, nr = r1 - r0;
  const kd::Ptr<const T> xn = x + n * P * C;

  // Sums of (x - shift) and its square, shift = the chunk's first row, so the
  // sums stay small (no cancellation when |mean| >> std).
  float shift[kCpt], s1[kCpt], s2[kCpt];
  KD_UNROLL
  for (int k = 0; k < kCpt; ++k) {
    const int c = tx + k * TX;
    shift[k] = c < C ? kd::LoadF(xn, r0 * C + c) : 0.f;
    s1[k] = s2[k] = 0.f;
  }
  KD_UNROLL_N(4)
  for (int64_t r = r0 + ty; r < r1; r += TY) {
    KD_UNROLL
    for (int k = 0; k < kCpt; ++k) {
      const int c = tx + k * TX;
      if (c < C) {
        const float v = kd::LoadF(xn, r * C + c) - shift[k];
        s1[k] += v;
        s2[k] = fmaf(v, v, s2[k]);
      }
    }
  }
  const kd::Ptr<float> sm_mean = smem;
  const kd::Ptr<float> sm_m2 = smem + TY * C;
  const int64_t cnt = RowsOfThreadRow(nr, ty, TY);
  const float inv = cnt > 0 ? 1.f / static_cast<float>(cnt) : 0.f;
  KD_UNROLL
  for (int k = 0; k < kCpt; ++k) {
    const int c = tx + k * TX;
    if (c < C) {
      sm_mean[ty * C + c] = shift[k] + s1[k] * inv;
      sm_m2[ty * C + c] = fmaxf(s2[k] - s1[k] * s1[k] * inv, 0.f);
    }
  }
  kd::syncthreads();
  // Merge the thread-rows per channel into slot 0.
  if (ty == 0 && TY > 1) {
    KD_UNROLL
    for (int k = 0; k < kCpt; ++k) {
      const int c = tx + k * TX;
      if (c >= C) continue;
      Moments<float> acc{static_cast<float>(cnt), float(sm_mean[c]), float(sm_m2[c])};
      for (int j = 1; j < TY; ++j)
        acc = CombineMoments(acc, Moments<float>{static_cast<float>(RowsOfThreadRow(nr, j, TY)),
                                                 float(sm_mean[j * C + c]), float(sm_m2[j * C + c])});
      sm_mean[c] = acc.mean;
      sm_m2[c] = acc.m2;
    }
  }
  kd::syncthreads();
  // Channels of a group have equal counts (nr): mean of means, and M2 is the
  // channels' M2 plus nr * the squared deviations of their means.
  for (int g = ty * TX + tx; g < G; g += TX * TY) {
    float gm = 0.f;
    for (int c = g * Cg; c < (g + 1) * Cg; ++c) gm += sm_mean[c];
    gm /= static_cast<float>(Cg);
    float m2 = 0.f, dev = 0.f;
    for (int c = g * Cg; c < (g + 1) * Cg; ++c) {
      m2 += sm_m2[c];
      const float dm = sm_mean[c] - gm;
      dev = fmaf(dm, dm, dev);
    }
    const kd::Ptr<float> out = partial + ((n * chunks + chunk) * G + g) * 3;
    out[0] = static_cast<float>(nr * Cg);
    out[1] = gm;
    out[2] = m2 + static_cast<float>(nr) * dev;
  }
}

// partial: [N, chunks, G] x {count, mean, M2} -> stats: [N * G] x {mean, rstd}.
// One warp per (n, g): lanes merge strided chunks, then merge across lanes.
KD_GLOBAL void GnStatsFinalKernel(kd::Ptr<const float> KD_RESTRICT partial, int64_t chunks, int NG, int G, float eps,
                                  kd::Ptr<float> KD_RESTRICT stats) {
  const int w = static_cast<int>((kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x) / 32);
  const int lane = kd::threadIdx.x % 32;
  if (w >= NG) return;  // whole warps leave together
  const int64_t n = w / G, g = w % G;
  Moments<float> acc{0.f, 0.f, 0.f};
  for (int64_t k = lane; k < chunks; k += 32) {
    const kd::Ptr<const float> p = partial + ((n * chunks + k) * G + g) * 3;
    acc = CombineMoments(acc, Moments<float>{float(p[0]), float(p[1]), float(p[2])});
  }
  for (int o = 16; o > 0; o >>= 1) {
    const Moments<float> other{kd::shfl_xor_sync(kd::kFullMask, acc.count, o),
                               kd::shfl_xor_sync(kd::kFullMask, acc.mean, o),
                               kd::shfl_xor_sync(kd::kFullMask, acc.m2, o)};
    acc = CombineMoments(acc, other);
  }
  if (lane == 0) {
    stats[2 * w] = acc.mean;
    stats[2 * w + 1] = kd::rsqrtf(acc.m2 / acc.count + eps);
  }
}

// x, y: [N, P, C]; stats: [N, G] x {mean, rstd} (8-byte aligned); gamma,
// beta: [C] or null. kVec channels per thread (4 needs C % 4 == 0 and
// aligned pointers); total = N * P * C / kVec, PC = P * C. silu: y = silu(z)
// instead of z (the affine result).
template <typename T, int kVec>
KD_GLOBAL void GnNormalizeKernel(kd::Ptr<const T> KD_RESTRICT x, kd::Ptr<const float> KD_RESTRICT stats,
                                 kd::Ptr<const T> KD_RESTRICT gamma, kd::Ptr<const T> KD_RESTRICT beta,
                                 kd::Ptr<T> KD_RESTRICT y, int64_t total, int64_t PC, int C, int G, int Cg, bool silu) {
  const kd::Ptr<const kd::float2> st2 = kd::ptr_cast<const kd::float2>(stats);
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < total;
       i += int64_t(kd::gridDim.x) * kd::blockDim.x) {
    const int64_t e = i * kVec;
    const int64_t n = e / PC;
    const int c0 = static_cast<int>(e % C);
    float v[kVec];
    if constexpr (kVec == 4) Load4(x + e, v);
    else v[0] = kd::LoadF(x, e);
    KD_UNROLL
    for (int j = 0; j < kVec; ++j) {
      const int c = c0 + j;
      const kd::float2 st = st2[n * G + c / Cg];
      float o = (v[j] - st.x) * st.y;
      if (gamma != nullptr) o = fmaf(o, kd::LoadF(gamma, c), kd::LoadF(beta, c));
      if (silu) o = act::Forward<act::Kind::kSilu>(o, 0.f);
      v[j] = o;
    }
    if constexpr (kVec == 4) Store4(y + e, v);
    else kd::StoreF(y, e, v[0]);
  }
}

// x, dy: [N, P, C]; stats: [N, G] x {mean, rstd}. Per (chunk, n) and channel:
// part_dy = sum dy, part_dyxh = sum dy * xhat over the chunk's rows, [N, chunks, C].
// Grid (chunks, N), block (tx, ty), dynamic shared memory 2 * ty * C floats.
template <typename T, int kCpt>
KD_GLOBAL void KD_LAUNCH_BOUNDS(kBlockThreads)
    GnBwdPartialKernel(kd::Ptr<const T> KD_RESTRICT x, kd::Ptr<const T> KD_RESTRICT dy,
                       kd::Ptr<const float> KD_RESTRICT stats, int64_t P, int C, int G, int Cg, int64_t rows,
                       kd::Ptr<float> KD_RESTRICT part_dy, kd::Ptr<float> KD_RESTRICT part_dyxh) {
  KD_DYNAMIC_SHARED(float, smem);
  const int tx = kd::threadIdx.x, ty = kd::threadIdx.y, TX = kd::blockDim.x, TY = kd::blockDim.y;
  const int64_t chunk = kd::blockIdx.x, chunks = kd::gridDim.x;
  const int64_t n = kd::blockIdx.y;
  const int64_t r0 = chunk * rows, r1 = r0 + rows < P ? r0 + rows : P;
  const kd::Ptr<const T> xn = x + n * P * C;
  const kd::Ptr<const T> dyn = dy + n * P * C;
  float mean[kCpt], rstd[kCpt], a[kCpt], b[kCpt];
  KD_UNROLL
  for (int k = 0; k < kCpt; ++k) {
    const int c = tx + k * TX;
    const int g = c < C ? c / Cg : 0;
    mean[k] = stats[2 * (n * G + g)];
    rstd[k] = stats[2 * (n * G + g) + 1];
    a[k] = b[k] = 0.f;
  }
  KD_UNROLL_N(4)
  for (int64_t r = r0 + ty; r < r1; r += TY) {
    KD_UNROLL
    for (int k = 0; k < kCpt; ++k) {
      const int c = tx + k * TX;
      if (c < C) {
        const float gv = kd::LoadF(dyn, r * C + c);
        const float xh = (kd::LoadF(xn, r * C + c) - mean[k]) * rstd[k];
        a[k] += gv;
        b[k] = fmaf(gv, xh, b[k]);
      }
    }
  }
  const kd::Ptr<float> sa = smem;
  const kd::Ptr<float> sb = smem + TY * C;
  KD_UNROLL
  for (int k = 0; k < kCpt; ++k) {
    const int c = tx + k * TX;
    if (c < C) {
      sa[ty * C + c] = a[k];
      sb[ty * C + c] = b[k];
    }
  }
  kd::syncthreads();
  if (ty == 0) {
    KD_UNROLL
    for (int k = 0; k < kCpt; ++k) {
      const int c = tx + k * TX;
      if (c >= C) continue;
      float ta = 0.f, tb = 0.f;
      for (int j = 0; j < TY; ++j) {
        ta += sa[j * C + c];
        tb += sb[j * C + c];
      }
      part_dy[(n * chunks + chunk) * C + c] = ta;
      part_dyxh[(n * chunks + chunk) * C + c] = tb;
    }
  }
}

// s_dy, s_dyxh: [N, C]; gamma: [C] or null. Thread i < N*G writes
// coef[i] = {A, B} (group sums of gamma * S, divided by M = P * Cg); thread
// i < C writes dgamma[i] = sum_n s_dyxh, dbeta[i] = sum_n s_dy (with gamma).
template <typename T>
KD_GLOBAL void GnBwdGroupKernel(kd::Ptr<const float> KD_RESTRICT s_dy, kd::Ptr<const float> KD_RESTRICT s_dyxh,
                                kd::Ptr<const T> KD_RESTRICT gamma, int N, int C, int G, int Cg, float inv_m,
                                kd::Ptr<float> KD_RESTRICT coef, kd::Ptr<T> KD_RESTRICT dgamma,
                                kd::Ptr<T> KD_RESTRICT dbeta) {
  const int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x;
  if (i < int64_t(N) * G) {
    const int64_t n = i / G, g = i % G;
    float sa = 0.f, sb = 0.f;
    for (int64_t c = g * Cg; c < (g + 1) * Cg; ++c) {
      const float gm = gamma != nullptr ? kd::LoadF(gamma, c) : 1.f;
      sa = fmaf(gm, s_dy[n * C + c], sa);
      sb = fmaf(gm, s_dyxh[n * C + c], sb);
    }
    coef[2 * i] = sa * inv_m;
    coef[2 * i + 1] = sb * inv_m;
  }
  if (gamma != nullptr && i < C) {
    float sg = 0.f, sbeta = 0.f;
    for (int n = 0; n < N; ++n) {
      sg += s_dyxh[int64_t(n) * C + i];
      sbeta += s_dy[int64_t(n) * C + i];
    }
    kd::StoreF(dgamma, i, sg);
    kd::StoreF(dbeta, i, sbeta);
  }
}

// dx = rstd * (gamma * dy - A - xhat * B), xhat = (x - mean) * rstd.
// x, dy, dx: [N, P, C]; stats, coef: [N, G] x 2 (8-byte aligned); gamma: [C] or null.
template <typename T, int kVec>
KD_GLOBAL void GnBwdDxKernel(kd::Ptr<const T> KD_RESTRICT x, kd::Ptr<const T> KD_RESTRICT dy,
                             kd::Ptr<const float> KD_RESTRICT stats, kd::Ptr<const float> KD_RESTRICT coef,
                             kd::Ptr<const T> KD_RESTRICT gamma, kd::Ptr<T> KD_RESTRICT dx, int64_t total, int64_t PC,
                             int C, int G, int Cg) {
  const kd::Ptr<const kd::float2> st2 = kd::ptr_cast<const kd::float2>(stats);
  const kd::Ptr<const kd::float2> cf2 = kd::ptr_cast<const kd::float2>(coef);
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < total;
       i += int64_t(kd::gridDim.x) * kd::blockDim.x) {
    const int64_t e = i * kVec;
    const int64_t n = e / PC;
    const int c0 = static_cast<int>(e % C);
    float xv[kVec], gv[kVec];
    if constexpr (kVec == 4) {
      Load4(x + e, xv);
      Load4(dy + e, gv);
    } else {
      xv[0] = kd::LoadF(x, e);
      gv[0] = kd::LoadF(dy, e);
    }
    KD_UNROLL
    for (int j = 0; j < kVec; ++j) {
      const int c = c0 + j;
      const int64_t ng = n * G + c / Cg;
      const kd::float2 st = st2[ng], cf = cf2[ng];
      const float gm = gamma != nullptr ? kd::LoadF(gamma, c) : 1.f;
      const float xh = (xv[j] - st.x) * st.y;
      xv[j] = st.y * (gm * gv[j] - cf.x - xh * cf.y);
    }
    if constexpr (kVec == 4) Store4(dx + e, xv);
    else kd::StoreF(dx, e, xv[0]);
  }
}

// ---- launch geometry (host) ----------------------------------------------------------------

// The chunked kernels (GnStatsPartialKernel, GnBwdPartialKernel) over `sms`
// multiprocessors: grid (chunks, N), block (tx, ty), smem bytes of dynamic
// shared memory. Thread (tx_i, ty_i) owns channels tx_i + k * tx (k < cpt)
// and rows ty_i, ty_i + ty, ... of its chunk of `rows` spatial rows; about
// four blocks per SM in all, each thread-row getting at least
// min_rows_per_thread_row rows. Needs P >= 1, 2 * C floats <= kSmemBytes
// and N <= 65535 (the launcher refuses otherwise).
struct GnPlan {
  int cpt = 1, tx = 32, ty = 1;
  int64_t rows = 0, chunks = 0;
  size_t smem = 0;
  kd::Dim3 grid{0}, block{32};
};
inline GnPlan GnPlanFor(const GnDims& d, int64_t min_rows_per_thread_row, int sms) {
  GnPlan p;
  p.cpt = 1;
  while (p.cpt < 16 && (d.C + p.cpt - 1) / p.cpt > 256) p.cpt *= 2;
  p.tx = static_cast<int>(((d.C + p.cpt - 1) / p.cpt + 31) / 32 * 32);
  p.ty = std::max(1, kBlockThreads / p.tx);
  p.ty = static_cast<int>(std::min<int64_t>(p.ty, kSmemBytes / (2 * d.C * int64_t{sizeof(float)})));
  const int64_t want_chunks = std::max<int64_t>(1, 4 * int64_t(sms) / d.N);
  p.rows = std::max<int64_t>((d.P + want_chunks - 1) / want_chunks,
                             std::max<int64_t>(min_rows_per_thread_row, 1) * p.ty);
  p.chunks = (d.P + p.rows - 1) / p.rows;
  p.smem = 2 * size_t(p.ty) * size_t(d.C) * sizeof(float);
  p.grid = kd::Dim3(static_cast<unsigned>(p.chunks), static_cast<unsigned>(d.N));
  p.block = kd::Dim3(static_cast<unsigned>(p.tx), static_cast<unsigned>(p.ty));
  return p;
}

// GnStatsFinalKernel over ng = N * G warps: <<<FinalGrid(ng), 256>>>.
inline unsigned GnFinalGrid(int64_t ng) { return static_cast<unsigned>((ng * 32 + 255) / 256); }

// GnNormalizeKernel / GnBwdDxKernel: kVec = vec (4 when C % 4 == 0 and every
// pointer is 4-element aligned, else 1) over total = numel / vec work items,
// <<<grid, 256>>>.
struct GnEltLaunch {
  int vec = 1;
  int64_t total = 0;
  unsigned grid = 1, block = 256;
};
inline GnEltLaunch GnEltLaunchFor(const GnDims& d, bool aligned4) {
  GnEltLaunch l;
  const int64_t numel = d.N * d.P * d.C;
  l.vec = d.C % 4 == 0 && aligned4 ? 4 : 1;
  l.total = numel / l.vec;
  l.grid = GridFor(l.total);
  return l;
}

// GnBwdGroupKernel: <<<GnGroupGrid(d), 256>>>, a thread per (n, g) and per channel.
inline unsigned GnGroupGrid(const GnDims& d) {
  return static_cast<unsigned>((std::max(d.N * d.G, d.C) + 255) / 256);
}

}  // namespace group_norm_kernels
}  // namespace cf
