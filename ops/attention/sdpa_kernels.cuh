// CUDA kernels of scaled dot-product attention ("attention", its backward and
// "attention_probs"; contracts in attention.h), written against
// runtime/kdev/kdev.h: compiled by nvcc in the per-(dtype, head dim) TUs
// sdpa_{fwd,bwd}_<dtype>_d<D>.cu and run on the CPU interpreter by
// tests/ops/attention_interp_test.cc, both with the launch geometry below.
//
// Layout: token-major, q row (b, i, h) at ((b * Nq + i) * heads + h) * D; lse
// [B, heads, Nq] f32. Visibility (causal, band, Nkv tail, key mask) is
// SdpaParams' rule (attention_params.h), mirrored for the device in SdpaDev.
//
// Forward, f16/bf16 (SdpaFwdMmaKernel): FlashAttention-2 tiling. A CTA of 4
// warps owns 64 queries (16 per warp), streams 64-key tiles of K and V
// through shared memory with a two-stage cp.async pipeline, computes S = Q K^T
// and O += P V with mma.m16n8k16 (f32 accumulators in registers) and keeps
// the online-softmax max / sum per row in f32 (in log2 units, so exp2f). The
// head dim is not padded to a power of two: QK^T reduces over d in k16 steps
// (40 -> 48, 72 -> 80 with the tail columns zeroed once in shared memory), PV
// produces d in n8 tiles (40 = 5 x 8, 72 = 9 x 8). Key tiles outside the
// query block's causal / band range are never loaded; masks are applied per
// element only on tiles that straddle an edge.
// Forward, f32 (and f16/bf16 views that are not 16-byte aligned):
// SdpaFwdFmaKernel, the same online softmax on CUDA cores, 32 x 32 tiles in
// f32 shared memory.
// Backward, FlashAttention-2's split with no atomics (deterministic):
// SdpaBwdDotKernel D = rowsum(dO * O); a dK / dV kernel per key block loops
// over the query blocks that see it, recomputing P = exp(S * scale - lse),
// and accumulates dV = P^T dO, dK = scale dS^T Q with dS = P (dO V^T - D); a
// dQ kernel per query block loops over the key blocks for dQ = scale dS K.
// Tensor cores for aligned f16/bf16 (SdpaBwdKvMmaKernel, 64 keys per CTA;
// SdpaBwdQMmaKernel, 64 queries; both with two-stage cp.async pipelines),
// CUDA cores otherwise (SdpaBwdKvKernel, SdpaBwdQKernel: 32 x 32 f32 tiles).
// attention_probs (SdpaProbsKernel): one CTA per listed query, two passes
// over the keys (scores and max, then the sum), any head dim.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "ops/attention/attention_mma.cuh"
#include "ops/attention/attention_params.h"
#include "runtime/kdev/kdev.h"

namespace cf::sdpa_kernels {

// The geometry the kernels need, by value (SdpaParams is host-only).
struct SdpaDev {
  int64_t nq = 0, nkv = 0;
  int heads = 0, head_dim = 0;
  float scale = 0;       // the softmax scale
  float scale_log2 = 0;  // scale * log2(e): scores in log2 units for exp2f
  int64_t window = -1;
  bool causal = false;
  bool has_mask = false;
};

inline SdpaDev DevOf(const SdpaParams& p) {
  SdpaDev d;
  d.nq = p.nq;
  d.nkv = p.nkv;
  d.heads = static_cast<int>(p.heads);
  d.head_dim = static_cast<int>(p.head_dim);
  d.scale = static_cast<float>(p.scale);
  d.scale_log2 = static_cast<float>(p.scale * 1.4426950408889634);
  d.window = p.window;
  d.causal = p.causal;
  d.has_mask = p.has_mask;
  return d;
}

// SdpaParams::KeyBegin / KeyEnd on the device: query i sees [KeyLo, KeyHi).
KD_HD int64_t KeyLo(const SdpaDev& p, int64_t i) { return p.window >= 0 && i - p.window > 0 ? i - p.window : 0; }
KD_HD int64_t KeyHi(const SdpaDev& p, int64_t i) {
  int64_t e = p.nkv;
  if (p.causal && i + 1 < e) e = i + 1;
  if (p.window >= 0 && i + p.window + 1 < e) e = i + p.window + 1;
  const int64_t lo = KeyLo(p, i);
  return e > lo ? e : lo;
}
// Key j < Nkv is visible to query i before the key mask.
KD_HD bool InBand(const SdpaDev& p, int64_t i, int64_t j) { return j >= KeyLo(p, i) && j < KeyHi(p, i); }
// The queries that see some key of [j0, j1) are within [QueryLo, QueryHi).
KD_HD int64_t QueryLo(const SdpaDev& p, int64_t j0) {
  int64_t lo = p.causal ? j0 : 0;
  if (p.window >= 0 && j0 - p.window > lo) lo = j0 - p.window;
  return lo < p.nq ? lo : p.nq;
}
KD_HD int64_t QueryHi(const SdpaDev& p, int64_t j1) {
  return p.window >= 0 && j1 + p.window < p.nq ? j1 + p.window : p.nq;
}

KD_DEVICE bool KeyKept(kd::Ptr<const uint8_t> mask, const SdpaDev& p, int64_t b, int64_t j) {
  return !p.has_mask || uint8_t(mask[b * p.nkv + j]) != 0;
}

constexpr float kLn2 = 0.6931471805599453f;

// ---------------------------------------------------------------------------
// Forward, tensor cores (f16 / bf16).

constexpr int kFwdBM = 64;        // queries per CTA (16 per warp)
constexpr int kFwdBN = 64;        // keys per shared-memory tile
constexpr int kFwdThreads = 128;  // 4 warps

template <int D> struct MmaDims {
  static_assert(D % 8 == 0, "the tensor-core kernel needs d % 8 == 0");
  static constexpr int DK = (D + 15) / 16 * 16;  // QK^T reduction length (k16 steps)
  static constexpr int KS = DK / 16;
  static constexpr int NTD = D / 8;  // n8 tiles of the output
  // Row strides in elements: +8 (16 bytes) keeps ldmatrix rows 16-byte
  // aligned and spreads the 8 rows of a matrix over the banks.
  static constexpr int SQ = DK + 8;
  static constexpr int SV = D + 8;
};
constexpr size_t MmaFwdSmemBytes(int D) {
  const size_t dk = size_t(D + 15) / 16 * 16, sq = dk + 8, sv = size_t(D) + 8;
  return (size_t(kFwdBM) * sq + 2 * size_t(kFwdBN) * sq + 2 * size_t(kFwdBN) * sv) * 2;
}

using attention_mma::MmaAcc;
using attention_mma::Pack2;

// Rows [r0, r0 + ROWS) of one head (row r at head + r * row_stride, D
// elements) into dst [ROWS][ld] with 16-byte cp.async; rows >= nrows are
// zero-filled (their source address is row 0, which is not read).
template <class T, int D, int ROWS>
KD_DEVICE void LoadRowsAsync(kd::Ptr<T> dst, int ld, kd::Ptr<const T> head, int64_t row_stride, int64_t r0,
                             int64_t nrows) {
  constexpr int kChunks = D / 8;
  for (int c = kd::threadIdx.x; c < ROWS * kChunks; c += kFwdThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    const bool in = r0 + r < nrows;
    kd::cp_async_zfill<16>(dst + (r * ld + col), head + ((in ? r0 + r : 0) * row_stride + col), in ? 16 : 0);
  }
}

template <class T, int D>
KD_GLOBAL void KD_LAUNCH_BOUNDS(kFwdThreads)
    SdpaFwdMmaKernel(kd::Ptr<const T> q, kd::Ptr<const T> k, kd::Ptr<const T> v, kd::Ptr<const uint8_t> mask,
                     kd::Ptr<T> out, kd::Ptr<float> lse, SdpaDev p) {
  using M = MmaDims<D>;
  constexpr int SQ = M::SQ, SV = M::SV, NTD = M::NTD;
  KD_DYNAMIC_SHARED(T, smem);
  const kd::Ptr<T> qs = smem;                           // [kFwdBM][SQ]
  const kd::Ptr<T> ks = smem + kFwdBM * SQ;             // [2][kFwdBN][SQ]
  const kd::Ptr<T> vs = smem + (kFwdBM + 2 * kFwdBN) * SQ;  // [2][kFwdBN][SV]
  const int tid = kd::threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int h = kd::blockIdx.y;
  const int64_t b = kd::blockIdx.z;
  const int64_t i0 = int64_t(kd::blockIdx.x) * kFwdBM;
  const int64_t i1 = i0 + kFwdBM < p.nq ? i0 + kFwdBM : p.nq;
  const int64_t row_stride = int64_t(p.heads) * D;
  const kd::Ptr<const T> qh = q + (b * p.nq * p.heads + h) * D;
  const kd::Ptr<const T> kh = k + (b * p.nkv * p.heads + h) * D;
  const kd::Ptr<const T> vh = v + (b * p.nkv * p.heads + h) * D;
  const int64_t kb = KeyLo(p, i0), ke = KeyHi(p, i1 - 1);
  const int64_t t_begin = kb / kFwdBN, t_end = ke > kb ? (ke + kFwdBN - 1) / kFwdBN : t_begin;

  if constexpr (M::DK > D) {  // the k16 tail of Q and both K stages reads zeros
    constexpr int kPad = M::DK - D;
    for (int e = tid; e < (kFwdBM + 2 * kFwdBN) * kPad; e += kFwdThreads)
      kd::StoreF(smem, (e / kPad) * SQ + D + e % kPad, 0.f);
  }
  float o[NTD][4];
  KD_UNROLL
  for (int n = 0; n < NTD; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // rows g and g + 8 of the warp's 16

  if (t_begin < t_end) {
    LoadRowsAsync<T, D, kFwdBM>(qs, SQ, qh, row_stride, i0, p.nq);
    LoadRowsAsync<T, D, kFwdBN>(ks, SQ, kh, row_stride, t_begin * kFwdBN, p.nkv);
    LoadRowsAsync<T, D, kFwdBN>(vs, SV, vh, row_stride, t_begin * kFwdBN, p.nkv);
    kd::cp_async_commit();
  }
  for (int64_t t = t_begin; t < t_end; ++t) {
    const int buf = int(t - t_begin) & 1;
    if (t + 1 < t_end) {  // prefetch the next tile into the other stage
      LoadRowsAsync<T, D, kFwdBN>(ks + (buf ^ 1) * kFwdBN * SQ, SQ, kh, row_stride, (t + 1) * kFwdBN, p.nkv);
      LoadRowsAsync<T, D, kFwdBN>(vs + (buf ^ 1) * kFwdBN * SV, SV, vh, row_stride, (t + 1) * kFwdBN, p.nkv);
      kd::cp_async_commit();
      kd::cp_async_wait<1>();
    } else {
      kd::cp_async_wait<0>();
    }
    kd::syncthreads();
    const kd::Ptr<T> kt = ks + buf * kFwdBN * SQ;
    const kd::Ptr<T> vt = vs + buf * kFwdBN * SV;

    // S = Q K^T for the warp's 16 rows and the tile's 64 keys (8 n8 tiles).
    float s[kFwdBN / 8][4];
    KD_UNROLL
    for (int n = 0; n < kFwdBN / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
    KD_UNROLL
    for (int kk = 0; kk < M::KS; ++kk) {
      uint32_t a[4];
      kd::ldmatrix_x4(a, qs + ((warp * 16 + (lane & 15)) * SQ + kk * 16 + (lane >> 4) * 8));
      KD_UNROLL
      for (int np = 0; np < kFwdBN / 16; ++np) {
        // Matrices (keys 0-7, d 0-7), (keys 0-7, d 8-15), (keys 8-15, d 0-7),
        // (keys 8-15, d 8-15): the B fragments of two n8 key tiles.
        uint32_t bf[4];
        kd::ldmatrix_x4(bf, kt + ((np * 16 + (lane >> 4) * 8 + (lane & 7)) * SQ + kk * 16 + ((lane >> 3) & 1) * 8));
        MmaAcc<T>(s[2 * np], a, bf);
        MmaAcc<T>(s[2 * np + 1], a, bf + 2);
      }
    }

    // Scale to log2 units; mask per element only where the tile straddles an edge.
    const int64_t j0 = t * kFwdBN;
    const bool full = !p.has_mask && j0 + kFwdBN <= p.nkv && KeyLo(p, i1 - 1) <= j0 && KeyHi(p, i0) >= j0 + kFwdBN;
    KD_UNROLL
    for (int n = 0; n < kFwdBN / 8; ++n) {
      KD_UNROLL
      for (int e = 0; e < 4; ++e) {
        float x = s[n][e] * p.scale_log2;
        if (!full) {
          const int64_t i = i0 + warp * 16 + (lane >> 2) + 8 * (e >> 1);
          const int64_t j = j0 + n * 8 + 2 * (lane & 3) + (e & 1);
          if (!InBand(p, i, j) || !KeyKept(mask, p, b, j)) x = -INFINITY;
        }
        s[n][e] = x;
      }
    }

    // Online softmax (attention_mma.cuh): s becomes P, unnormalised.
    attention_mma::OnlineSoftmaxStep<kFwdBN, NTD>(s, m, l, o);

    // O += P V: the S accumulators of key tiles 2kk, 2kk + 1 are exactly the
    // A fragment of k-step kk; V [keys][d] row-major gives B with .trans.
    KD_UNROLL
    for (int kk = 0; kk < kFwdBN / 16; ++kk) {
      const uint32_t a[4] = {Pack2<T>(s[2 * kk][0], s[2 * kk][1]), Pack2<T>(s[2 * kk][2], s[2 * kk][3]),
                             Pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                             Pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
      const kd::Ptr<T> vrow = vt + (kk * 16 + (lane & 15)) * SV;
      KD_UNROLL
      for (int dp = 0; dp < NTD / 2; ++dp) {
        uint32_t bf[4];
        kd::ldmatrix_x4_trans(bf, vrow + (dp * 16 + (lane >> 4) * 8));
        MmaAcc<T>(o[2 * dp], a, bf);
        MmaAcc<T>(o[2 * dp + 1], a, bf + 2);
      }
      if constexpr (NTD % 2 == 1) {  // the odd n8 tile (d = 40, 72)
        uint32_t bf[2];
        kd::ldmatrix_x2_trans(bf, vrow + (NTD - 1) * 8);
        MmaAcc<T>(o[NTD - 1], a, bf);
      }
    }
    kd::syncthreads();  // this stage is refilled by the prefetch of the next iteration
  }

  KD_UNROLL
  for (int r = 0; r < 2; ++r) {
    l[r] += kd::shfl_xor_sync(kd::kFullMask, l[r], 1);
    l[r] += kd::shfl_xor_sync(kd::kFullMask, l[r], 2);
  }
  KD_UNROLL
  for (int r = 0; r < 2; ++r) {
    const int64_t i = i0 + warp * 16 + (lane >> 2) + 8 * r;
    if (i >= p.nq) continue;
    const float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;  // no visible key: zero output
    const kd::Ptr<T> orow = out + ((b * p.nq + i) * p.heads + h) * D;
    KD_UNROLL
    for (int n = 0; n < NTD; ++n) {
      const int col = n * 8 + 2 * (lane & 3);
      kd::StoreF(orow, col, o[n][2 * r] * inv);
      kd::StoreF(orow, col + 1, o[n][2 * r + 1] * inv);
    }
    if ((lane & 3) == 0) lse[(b * p.heads + h) * p.nq + i] = l[r] > 0.f ? m[r] * kLn2 + logf(l[r]) : -INFINITY;
  }
}

// ---------------------------------------------------------------------------
// CUDA-core kernels: 32 x 32 tiles in f32 shared memory, rows padded by one
// float (row-wise dot products of a quad hit distinct banks), 128 threads.
// Thread t owns row t / 4 and the columns (t % 4) + 4u of it.

constexpr int kFmaBM = 32, kFmaBN = 32, kFmaThreads = 128;
constexpr int kPs = kFmaBN + 1;  // row stride of the 32 x 32 score tiles

constexpr size_t FmaFwdSmemBytes(int D) { return (3 * size_t(kFmaBM) * (D + 1) + size_t(kFmaBM) * kPs) * 4; }
constexpr size_t BwdKvSmemBytes(int D) { return (4 * size_t(kFmaBM) * (D + 1) + 2 * size_t(kFmaBM) * kPs + 64) * 4; }
constexpr size_t BwdQSmemBytes(int D) { return (4 * size_t(kFmaBM) * (D + 1) + size_t(kFmaBM) * kPs) * 4; }

// Rows [r0, r0 + 32) of one head into dst [32][D + 1] as f32; rows >= nrows are zeros.
template <class T, int D>
KD_DEVICE void LoadRowsF32(kd::Ptr<float> dst, kd::Ptr<const T> head, int64_t row_stride, int64_t r0, int64_t nrows) {
  for (int e = kd::threadIdx.x; e < 32 * D; e += kFmaThreads) {
    const int r = e / D, c = e % D;
    dst[r * (D + 1) + c] = r0 + r < nrows ? kd::LoadF(head, (r0 + r) * row_stride + c) : 0.f;
  }
}

template <int D> KD_DEVICE float DotRows(kd::Ptr<const float> a, kd::Ptr<const float> b) {
  float acc = 0.f;
  KD_UNROLL_N(8)
  for (int c = 0; c < D; ++c) acc = fmaf(float(a[c]), float(b[c]), acc);
  return acc;
}

template <class T, int D>
KD_GLOBAL void KD_LAUNCH_BOUNDS(kFmaThreads)
    SdpaFwdFmaKernel(kd::Ptr<const T> q, kd::Ptr<const T> k, kd::Ptr<const T> v, kd::Ptr<const uint8_t> mask,
                     kd::Ptr<T> out, kd::Ptr<float> lse, SdpaDev p) {
  constexpr int LD = D + 1, CPT = D / 4;
  KD_DYNAMIC_SHARED(float, smem);
  const kd::Ptr<float> qs = smem, ks = smem + 32 * LD, vs = smem + 64 * LD, ps = smem + 96 * LD;
  const int tid = kd::threadIdx.x, row = tid >> 2, part = tid & 3;
  const int h = kd::blockIdx.y;
  const int64_t b = kd::blockIdx.z;
  const int64_t i0 = int64_t(kd::blockIdx.x) * kFmaBM, i = i0 + row;
  const int64_t i1 = i0 + kFmaBM < p.nq ? i0 + kFmaBM : p.nq;
  const int64_t row_stride = int64_t(p.heads) * D;
  const kd::Ptr<const T> kh = k + (b * p.nkv * p.heads + h) * D;
  const kd::Ptr<const T> vh = v + (b * p.nkv * p.heads + h) * D;
  LoadRowsF32<T, D>(qs, q + (b * p.nq * p.heads + h) * D, row_stride, i0, p.nq);
  float o[CPT];
  KD_UNROLL
  for (int c = 0; c < CPT; ++c) o[c] = 0.f;
  float m = -INFINITY, l = 0.f;
  const int64_t kb = KeyLo(p, i0), ke = KeyHi(p, i1 - 1);
  for (int64_t j0 = kb / kFmaBN * kFmaBN; j0 < ke; j0 += kFmaBN) {
    kd::syncthreads();  // the previous tile is consumed
    LoadRowsF32<T, D>(ks, kh, row_stride, j0, p.nkv);
    LoadRowsF32<T, D>(vs, vh, row_stride, j0, p.nkv);
    kd::syncthreads();
    float sv[8], mt = m;
    KD_UNROLL
    for (int u = 0; u < 8; ++u) {
      const int jj = part + 4 * u;
      const int64_t j = j0 + jj;
      float x = DotRows<D>(qs + row * LD, ks + jj * LD) * p.scale_log2;
      if (!InBand(p, i, j) || !KeyKept(mask, p, b, j)) x = -INFINITY;
      sv[u] = x;
      mt = fmaxf(mt, x);
    }
    mt = fmaxf(mt, kd::shfl_xor_sync(kd::kFullMask, mt, 1));
    mt = fmaxf(mt, kd::shfl_xor_sync(kd::kFullMask, mt, 2));
    const float mu = mt == -INFINITY ? 0.f : mt, alpha = exp2f(m - mu);
    m = mt;
    l *= alpha;
    KD_UNROLL
    for (int c = 0; c < CPT; ++c) o[c] *= alpha;
    KD_UNROLL
    for (int u = 0; u < 8; ++u) {
      const float pv = exp2f(sv[u] - mu);
      l += pv;
      ps[row * kPs + part + 4 * u] = pv;
    }
    kd::syncwarp();  // the row's four threads are lanes of one warp
    for (int jj = 0; jj < kFmaBN; ++jj) {
      const float pv = ps[row * kPs + jj];
      KD_UNROLL
      for (int c = 0; c < CPT; ++c) o[c] = fmaf(pv, float(vs[jj * LD + part + 4 * c]), o[c]);
    }
  }
  l += kd::shfl_xor_sync(kd::kFullMask, l, 1);
  l += kd::shfl_xor_sync(kd::kFullMask, l, 2);
  if (i < p.nq) {
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const kd::Ptr<T> orow = out + ((b * p.nq + i) * p.heads + h) * D;
    KD_UNROLL
    for (int c = 0; c < CPT; ++c) kd::StoreF(orow, part + 4 * c, o[c] * inv);
    if (part == 0) lse[(b * p.heads + h) * p.nq + i] = l > 0.f ? m * kLn2 + logf(l) : -INFINITY;
  }
}

// ---------------------------------------------------------------------------
// Backward.

constexpr int kDotRowsPerBlock = 8;  // one warp per (b, i, h) row, 256 threads

// dvec[(b * heads + h) * Nq + i] = sum_c dout[r, c] * out[r, c] for the
// token-major row r = (b * Nq + i) * heads + h.
template <class T>
KD_GLOBAL void KD_LAUNCH_BOUNDS(256) SdpaBwdDotKernel(kd::Ptr<const T> out, kd::Ptr<const T> dout,
                                                      kd::Ptr<float> dvec, int64_t rows, int d, int64_t nq,
                                                      int heads) {
  const int lane = kd::threadIdx.x & 31;
  const int64_t r = int64_t(kd::blockIdx.x) * kDotRowsPerBlock + (kd::threadIdx.x >> 5);
  if (r >= rows) return;  // whole warps
  float acc = 0.f;
  for (int c = lane; c < d; c += 32) acc = fmaf(kd::LoadF(out, r * d + c), kd::LoadF(dout, r * d + c), acc);
  KD_UNROLL
  for (int o = 16; o > 0; o >>= 1) acc += kd::shfl_xor_sync(kd::kFullMask, acc, o);
  if (lane == 0) {
    const int64_t h = r % heads, i = (r / heads) % nq, b = r / (int64_t(heads) * nq);
    dvec[(b * heads + h) * nq + i] = acc;
  }
}

// P and dS of the pair (query i, key j) from f32 rows in shared memory;
// zero where the key is invisible or the row saw nothing (lse = -inf).
template <int D>
KD_DEVICE void PairGrad(const SdpaDev& p, bool visible, float lse_i, float d_i, kd::Ptr<const float> qrow,
                        kd::Ptr<const float> krow, kd::Ptr<const float> dorow, kd::Ptr<const float> vrow, float* pv,
                        float* ds) {
  *pv = 0.f;
  *ds = 0.f;
  if (!visible || lse_i == -INFINITY) return;
  const float pr = expf(DotRows<D>(qrow, krow) * p.scale - lse_i);
  *pv = pr;
  *ds = pr * (DotRows<D>(dorow, vrow) - d_i);
}

template <class T, int D>
KD_GLOBAL void KD_LAUNCH_BOUNDS(kFmaThreads)
    SdpaBwdKvKernel(kd::Ptr<const T> q, kd::Ptr<const T> k, kd::Ptr<const T> v, kd::Ptr<const T> dout,
                    kd::Ptr<const float> lse, kd::Ptr<const float> dvec, kd::Ptr<const uint8_t> mask, kd::Ptr<T> dk,
                    kd::Ptr<T> dv, SdpaDev p) {
  constexpr int LD = D + 1, CPT = D / 4;
  KD_DYNAMIC_SHARED(float, smem);
  const kd::Ptr<float> ks = smem, vs = smem + 32 * LD, qs = smem + 64 * LD, dos = smem + 96 * LD;
  const kd::Ptr<float> ps = smem + 128 * LD, dss = ps + 32 * kPs, lses = dss + 32 * kPs, dls = lses + 32;
  const int tid = kd::threadIdx.x, row = tid >> 2, part = tid & 3;
  const int h = kd::blockIdx.y;
  const int64_t b = kd::blockIdx.z;
  const int64_t j0 = int64_t(kd::blockIdx.x) * kFmaBN;
  const int64_t j1 = j0 + kFmaBN < p.nkv ? j0 + kFmaBN : p.nkv;
  const int64_t row_stride = int64_t(p.heads) * D;
  const kd::Ptr<const T> qh = q + (b * p.nq * p.heads + h) * D;
  const kd::Ptr<const T> doh = dout + (b * p.nq * p.heads + h) * D;
  const int64_t lrow = (b * p.heads + h) * p.nq;
  LoadRowsF32<T, D>(ks, k + (b * p.nkv * p.heads + h) * D, row_stride, j0, p.nkv);
  LoadRowsF32<T, D>(vs, v + (b * p.nkv * p.heads + h) * D, row_stride, j0, p.nkv);
  bool kept[8];  // the keys part + 4u this thread scores
  KD_UNROLL
  for (int u = 0; u < 8; ++u) kept[u] = j0 + part + 4 * u < p.nkv && KeyKept(mask, p, b, j0 + part + 4 * u);
  float dka[CPT], dva[CPT];
  KD_UNROLL
  for (int c = 0; c < CPT; ++c) dka[c] = dva[c] = 0.f;
  const int64_t qlo = QueryLo(p, j0), qhi = QueryHi(p, j1);
  for (int64_t ib = qlo / kFmaBM * kFmaBM; ib < qhi; ib += kFmaBM) {
    kd::syncthreads();  // the previous query block is consumed
    LoadRowsF32<T, D>(qs, qh, row_stride, ib, p.nq);
    LoadRowsF32<T, D>(dos, doh, row_stride, ib, p.nq);
    if (tid < kFmaBM) {
      const bool in = ib + tid < p.nq;
      lses[tid] = in ? float(lse[lrow + ib + tid]) : -INFINITY;
      dls[tid] = in ? float(dvec[lrow + ib + tid]) : 0.f;
    }
    kd::syncthreads();
    // Pairs (query ib + row, key j0 + part + 4u).
    const float li = lses[row], di = dls[row];
    KD_UNROLL
    for (int u = 0; u < 8; ++u) {
      const int jj = part + 4 * u;
      float pv, ds;
      PairGrad<D>(p, kept[u] && InBand(p, ib + row, j0 + jj), li, di, qs + row * LD, ks + jj * LD, dos + row * LD,
                  vs + jj * LD, &pv, &ds);
      ps[row * kPs + jj] = pv;
      dss[row * kPs + jj] = ds;
    }
    kd::syncthreads();
    // Key row, columns part + 4c: dV += P^T dO, dK += dS^T Q.
    for (int ii = 0; ii < kFmaBM; ++ii) {
      const float pv = ps[ii * kPs + row], ds = dss[ii * kPs + row];
      KD_UNROLL
      for (int c = 0; c < CPT; ++c) {
        dva[c] = fmaf(pv, float(dos[ii * LD + part + 4 * c]), dva[c]);
        dka[c] = fmaf(ds, float(qs[ii * LD + part + 4 * c]), dka[c]);
      }
    }
  }
  const int64_t j = j0 + row;
  if (j < p.nkv) {
    const int64_t base = ((b * p.nkv + j) * p.heads + h) * D;
    KD_UNROLL
    for (int c = 0; c < CPT; ++c) {
      kd::StoreF(dk, base + part + 4 * c, dka[c] * p.scale);
      kd::StoreF(dv, base + part + 4 * c, dva[c]);
    }
  }
}

template <class T, int D>
KD_GLOBAL void KD_LAUNCH_BOUNDS(kFmaThreads)
    SdpaBwdQKernel(kd::Ptr<const T> q, kd::Ptr<const T> k, kd::Ptr<const T> v, kd::Ptr<const T> dout,
                   kd::Ptr<const float> lse, kd::Ptr<const float> dvec, kd::Ptr<const uint8_t> mask, kd::Ptr<T> dq,
                   SdpaDev p) {
  constexpr int LD = D + 1, CPT = D / 4;
  KD_DYNAMIC_SHARED(float, smem);
  const kd::Ptr<float> qs = smem, dos = smem + 32 * LD, ks = smem + 64 * LD, vs = smem + 96 * LD;
  const kd::Ptr<float> dss = smem + 128 * LD;
  const int tid = kd::threadIdx.x, row = tid >> 2, part = tid & 3;
  const int h = kd::blockIdx.y;
  const int64_t b = kd::blockIdx.z;
  const int64_t i0 = int64_t(kd::blockIdx.x) * kFmaBM, i = i0 + row;
  const int64_t i1 = i0 + kFmaBM < p.nq ? i0 + kFmaBM : p.nq;
  const int64_t row_stride = int64_t(p.heads) * D;
  const kd::Ptr<const T> kh = k + (b * p.nkv * p.heads + h) * D;
  const kd::Ptr<const T> vh = v + (b * p.nkv * p.heads + h) * D;
  LoadRowsF32<T, D>(qs, q + (b * p.nq * p.heads + h) * D, row_stride, i0, p.nq);
  LoadRowsF32<T, D>(dos, dout + (b * p.nq * p.heads + h) * D, row_stride, i0, p.nq);
  const int64_t lrow = (b * p.heads + h) * p.nq;
  const float li = i < p.nq ? float(lse[lrow + i]) : -INFINITY;
  const float di = i < p.nq ? float(dvec[lrow + i]) : 0.f;
  float dqa[CPT];
  KD_UNROLL
  for (int c = 0; c < CPT; ++c) dqa[c] = 0.f;
  const int64_t kb = KeyLo(p, i0), ke = KeyHi(p, i1 - 1);
  for (int64_t j0 = kb / kFmaBN * kFmaBN; j0 < ke; j0 += kFmaBN) {
    kd::syncthreads();
    LoadRowsF32<T, D>(ks, kh, row_stride, j0, p.nkv);
    LoadRowsF32<T, D>(vs, vh, row_stride, j0, p.nkv);
    kd::syncthreads();
    KD_UNROLL
    for (int u = 0; u < 8; ++u) {
      const int jj = part + 4 * u;
      const int64_t j = j0 + jj;
      float pv, ds;
      PairGrad<D>(p, InBand(p, i, j) && KeyKept(mask, p, b, j), li, di, qs + row * LD, ks + jj * LD,
                  dos + row * LD, vs + jj * LD, &pv, &ds);
      dss[row * kPs + jj] = ds;
    }
    kd::syncwarp();  // the row's four threads are lanes of one warp
    for (int jj = 0; jj < kFmaBN; ++jj) {
      const float ds = dss[row * kPs + jj];
      KD_UNROLL
      for (int c = 0; c < CPT; ++c) dqa[c] = fmaf(ds, float(ks[jj * LD + part + 4 * c]), dqa[c]);
    }
  }
  if (i < p.nq) {
    const int64_t base = ((b * p.nq + i) * p.heads + h) * D;
    KD_UNROLL
    for (int c = 0; c < CPT; ++c) kd::StoreF(dq, base + part + 4 * c, dqa[c] * p.scale);
  }
}

// ---------------------------------------------------------------------------
// Backward on tensor cores (f16 / bf16, 16-byte aligned q, k, v, dout): the
// same FlashAttention-2 split as the CUDA-core kernels above, with the
// forward's fragment plumbing. Both kernels zero the k16 tail of every tile
// that feeds a reduction over d (Q, K, V, dO), and round P and dS to the
// storage type for the second product, as FlashAttention does.

template <int D> constexpr size_t MmaBwdQSmemBytes() {
  return size_t(MmaDims<D>::SQ) * (2 * kFwdBM + 4 * kFwdBN) * 2;
}
// Queries per inner tile of the dK / dV kernel: 32 from d = 128 on keeps the
// dK and dV accumulators plus two score tiles in registers.
template <int D> constexpr int MmaBwdKvBM() { return D <= 80 ? 64 : 32; }
template <int D> constexpr size_t MmaBwdKvSmemBytes() {
  return size_t(MmaDims<D>::SQ) * (2 * kFwdBN + 4 * MmaBwdKvBM<D>()) * 2 + 4 * size_t(MmaBwdKvBM<D>()) * 4;
}

// Zeroes columns [D, DK) of `rows` rows of stride SQ starting at base.
template <class T, int D> KD_DEVICE void ZeroKTail(kd::Ptr<T> base, int rows) {
  using M = MmaDims<D>;
  if constexpr (M::DK > D) {
    constexpr int kPad = M::DK - D;
    for (int e = kd::threadIdx.x; e < rows * kPad; e += kFwdThreads) kd::StoreF(base, (e / kPad) * M::SQ + D + e % kPad, 0.f);
  }
}

// acc[NB / 8][4] = A B^T over d for the warp's 16 rows of a (stride SQ) and
// NB rows of b (stride SQ): the QK^T of the forward, for any pair of tiles.
template <class T, int D, int NB>
KD_DEVICE void MmaRowsDot(float (*acc)[4], kd::Ptr<T> a, kd::Ptr<T> b, int lane) {
  using M = MmaDims<D>;
  KD_UNROLL
  for (int n = 0; n < NB / 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
  KD_UNROLL
  for (int kk = 0; kk < M::KS; ++kk) {
    uint32_t af[4];
    kd::ldmatrix_x4(af, a + ((lane & 15) * M::SQ + kk * 16 + (lane >> 4) * 8));
    KD_UNROLL
    for (int np = 0; np < NB / 16; ++np) {
      uint32_t bf[4];
      kd::ldmatrix_x4(bf, b + ((np * 16 + (lane >> 4) * 8 + (lane & 7)) * M::SQ + kk * 16 + ((lane >> 3) & 1) * 8));
      MmaAcc<T>(acc[2 * np], af, bf);
      MmaAcc<T>(acc[2 * np + 1], af, bf + 2);
    }
  }
}

// o[NTD][4] += P B for the warp's P [16][NK] (accumulator layout, rounded to
// T) and B [NK][D] row-major at b (stride SQ): the PV of the forward.
template <class T, int D, int NK>
KD_DEVICE void MmaAccumPB(float (*o)[4], float (*pm)[4], kd::Ptr<T> b, int lane) {
  using M = MmaDims<D>;
  KD_UNROLL
  for (int kk = 0; kk < NK / 16; ++kk) {
    const uint32_t a[4] = {Pack2<T>(pm[2 * kk][0], pm[2 * kk][1]), Pack2<T>(pm[2 * kk][2], pm[2 * kk][3]),
                           Pack2<T>(pm[2 * kk + 1][0], pm[2 * kk + 1][1]),
                           Pack2<T>(pm[2 * kk + 1][2], pm[2 * kk + 1][3])};
    const kd::Ptr<T> brow = b + (kk * 16 + (lane & 15)) * M::SQ;
    KD_UNROLL
    for (int dp = 0; dp < M::NTD / 2; ++dp) {
      uint32_t bf[4];
      kd::ldmatrix_x4_trans(bf, brow + (dp * 16 + (lane >> 4) * 8));
      MmaAcc<T>(o[2 * dp], a, bf);
      MmaAcc<T>(o[2 * dp + 1], a, bf + 2);
    }
    if constexpr (M::NTD % 2 == 1) {
      uint32_t bf[2];
      kd::ldmatrix_x2_trans(bf, brow + (M::NTD - 1) * 8);
      MmaAcc<T>(o[M::NTD - 1], a, bf);
    }
  }
}

// dQ for 64 queries per CTA (16 per warp): key tiles of 64 stream through a
// two-stage cp.async pipeline; S = Q K^T and dP = dO V^T on tensor cores,
// dS = P (dP - D), dQ += dS K.
template <class T, int D>
KD_GLOBAL void KD_LAUNCH_BOUNDS(kFwdThreads)
    SdpaBwdQMmaKernel(kd::Ptr<const T> q, kd::Ptr<const T> k, kd::Ptr<const T> v, kd::Ptr<const T> dout,
                      kd::Ptr<const float> lse, kd::Ptr<const float> dvec, kd::Ptr<const uint8_t> mask, kd::Ptr<T> dq,
                      SdpaDev p) {
  using M = MmaDims<D>;
  constexpr int SQ = M::SQ, NTD = M::NTD;
  KD_DYNAMIC_SHARED(T, smem);
  const kd::Ptr<T> qs = smem, dos = smem + kFwdBM * SQ;          // [64][SQ] each
  const kd::Ptr<T> ks = smem + 2 * kFwdBM * SQ;                  // [2][64][SQ]
  const kd::Ptr<T> vs = smem + (2 * kFwdBM + 2 * kFwdBN) * SQ;   // [2][64][SQ]
  const int tid = kd::threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int h = kd::blockIdx.y;
  const int64_t b = kd::blockIdx.z;
  const int64_t i0 = int64_t(kd::blockIdx.x) * kFwdBM;
  const int64_t i1 = i0 + kFwdBM < p.nq ? i0 + kFwdBM : p.nq;
  const int64_t row_stride = int64_t(p.heads) * D;
  const int64_t qoff = (b * p.nq * p.heads + h) * D, koff = (b * p.nkv * p.heads + h) * D;
  const int64_t kb = KeyLo(p, i0), ke = KeyHi(p, i1 - 1);
  const int64_t t_begin = kb / kFwdBN, t_end = ke > kb ? (ke + kFwdBN - 1) / kFwdBN : t_begin;
  ZeroKTail<T, D>(smem, 2 * kFwdBM + 4 * kFwdBN);
  // Per-row lse (log2 units) and D of rows g and g + 8; -inf: the row saw nothing.
  float lse2[2], dr[2];
  KD_UNROLL
  for (int r = 0; r < 2; ++r) {
    const int64_t i = i0 + warp * 16 + (lane >> 2) + 8 * r;
    const int64_t li = (b * p.heads + h) * p.nq + i;
    lse2[r] = i < p.nq ? float(lse[li]) * 1.4426950408889634f : -INFINITY;
    dr[r] = i < p.nq ? float(dvec[li]) : 0.f;
  }
  float acc[NTD][4];
  KD_UNROLL
  for (int n = 0; n < NTD; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
  if (t_begin < t_end) {
    LoadRowsAsync<T, D, kFwdBM>(qs, SQ, q + qoff, row_stride, i0, p.nq);
    LoadRowsAsync<T, D, kFwdBM>(dos, SQ, dout + qoff, row_stride, i0, p.nq);
    LoadRowsAsync<T, D, kFwdBN>(ks, SQ, k + koff, row_stride, t_begin * kFwdBN, p.nkv);
    LoadRowsAsync<T, D, kFwdBN>(vs, SQ, v + koff, row_stride, t_begin * kFwdBN, p.nkv);
    kd::cp_async_commit();
  }
  for (int64_t t = t_begin; t < t_end; ++t) {
    const int buf = int(t - t_begin) & 1;
    if (t + 1 < t_end) {
      LoadRowsAsync<T, D, kFwdBN>(ks + (buf ^ 1) * kFwdBN * SQ, SQ, k + koff, row_stride, (t + 1) * kFwdBN, p.nkv);
      LoadRowsAsync<T, D, kFwdBN>(vs + (buf ^ 1) * kFwdBN * SQ, SQ, v + koff, row_stride, (t + 1) * kFwdBN, p.nkv);
      kd::cp_async_commit();
      kd::cp_async_wait<1>();
    } else {
      kd::cp_async_wait<0>();
    }
    kd::syncthreads();
    const kd::Ptr<T> kt = ks + buf * kFwdBN * SQ, vt = vs + buf * kFwdBN * SQ;
    float s[kFwdBN / 8][4], dp[kFwdBN / 8][4];
    MmaRowsDot<T, D, kFwdBN>(s, qs + warp * 16 * SQ, kt, lane);
    MmaRowsDot<T, D, kFwdBN>(dp, dos + warp * 16 * SQ, vt, lane);
    const int64_t j0 = t * kFwdBN;
    KD_UNROLL
    for (int n = 0; n < kFwdBN / 8; ++n) {
      KD_UNROLL
      for (int e = 0; e < 4; ++e) {
        const int r = e >> 1;
        const int64_t i = i0 + warp * 16 + (lane >> 2) + 8 * r;
        const int64_t j = j0 + n * 8 + 2 * (lane & 3) + (e & 1);
        const bool vis = lse2[r] != -INFINITY && InBand(p, i, j) && KeyKept(mask, p, b, j);
        const float pr = vis ? exp2f(s[n][e] * p.scale_log2 - lse2[r]) : 0.f;
        s[n][e] = pr * (dp[n][e] - dr[r]);  // dS
      }
    }
    MmaAccumPB<T, D, kFwdBN>(acc, s, kt, lane);
    kd::syncthreads();  // this stage is refilled by the next prefetch
  }
  KD_UNROLL
  for (int r = 0; r < 2; ++r) {
    const int64_t i = i0 + warp * 16 + (lane >> 2) + 8 * r;
    if (i >= p.nq) continue;
    const kd::Ptr<T> row = dq + ((b * p.nq + i) * p.heads + h) * D;
    KD_UNROLL
    for (int n = 0; n < NTD; ++n) {
      const int col = n * 8 + 2 * (lane & 3);
      kd::StoreF(row, col, acc[n][2 * r] * p.scale);
      kd::StoreF(row, col + 1, acc[n][2 * r + 1] * p.scale);
    }
  }
}

// dK, dV for 64 keys per CTA (16 per warp), looping over the query tiles
// that see them (two-stage cp.async pipeline of Q, dO, lse, D): S^T = K Q^T,
// dP^T = V dO^T, P^T = exp(S^T scale - lse), dS^T = P^T (dP^T - D), then
// dV += P^T dO and dK += dS^T Q.
template <class T, int D>
KD_GLOBAL void KD_LAUNCH_BOUNDS(kFwdThreads)
    SdpaBwdKvMmaKernel(kd::Ptr<const T> q, kd::Ptr<const T> k, kd::Ptr<const T> v, kd::Ptr<const T> dout,
                       kd::Ptr<const float> lse, kd::Ptr<const float> dvec, kd::Ptr<const uint8_t> mask,
                       kd::Ptr<T> dk, kd::Ptr<T> dv, SdpaDev p) {
  using M = MmaDims<D>;
  constexpr int SQ = M::SQ, NTD = M::NTD, BM = MmaBwdKvBM<D>();
  KD_DYNAMIC_SHARED(T, smem);
  const kd::Ptr<T> ks = smem, vs = smem + kFwdBN * SQ;          // [64][SQ] each
  const kd::Ptr<T> qs = smem + 2 * kFwdBN * SQ;                 // [2][BM][SQ]
  const kd::Ptr<T> dos = smem + (2 * kFwdBN + 2 * BM) * SQ;     // [2][BM][SQ]
  const kd::Ptr<float> stats = kd::ptr_cast<float>(smem + (2 * kFwdBN + 4 * BM) * SQ);  // [2][lse | D][BM]
  const int tid = kd::threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int h = kd::blockIdx.y;
  const int64_t b = kd::blockIdx.z;
  const int64_t j0 = int64_t(kd::blockIdx.x) * kFwdBN;
  const int64_t j1 = j0 + kFwdBN < p.nkv ? j0 + kFwdBN : p.nkv;
  const int64_t row_stride = int64_t(p.heads) * D;
  const int64_t qoff = (b * p.nq * p.heads + h) * D, koff = (b * p.nkv * p.heads + h) * D;
  const int64_t lrow = (b * p.heads + h) * p.nq;
  const int64_t qlo = QueryLo(p, j0), qhi = QueryHi(p, j1);
  const int64_t t_begin = qlo / BM, t_end = qhi > qlo ? (qhi + BM - 1) / BM : t_begin;
  ZeroKTail<T, D>(smem, 2 * kFwdBN + 4 * BM);
  bool kept[2];  // keys of rows g and g + 8
  KD_UNROLL
  for (int r = 0; r < 2; ++r) {
    const int64_t j = j0 + warp * 16 + (lane >> 2) + 8 * r;
    kept[r] = j < p.nkv && KeyKept(mask, p, b, j);
  }
  // Q, dO rows and lse / D of query tile t into stage st (rows >= Nq: zeros, lse 0, masked below).
  auto stage = [&](int st, int64_t t) {
    LoadRowsAsync<T, D, BM>(qs + st * BM * SQ, SQ, q + qoff, row_stride, t * BM, p.nq);
    LoadRowsAsync<T, D, BM>(dos + st * BM * SQ, SQ, dout + qoff, row_stride, t * BM, p.nq);
    if (tid < 2 * BM) {
      const int r = tid % BM;
      const bool in = t * BM + r < p.nq;
      const kd::Ptr<const float> src = (tid < BM ? lse : dvec) + (lrow + (in ? t * BM + r : 0));
      kd::cp_async_zfill<4>(stats + (st * 2 * BM + tid), src, in ? 4 : 0);
    }
    kd::cp_async_commit();
  };
  float dka[NTD][4], dva[NTD][4];
  KD_UNROLL
  for (int n = 0; n < NTD; ++n)
    KD_UNROLL
    for (int e = 0; e < 4; ++e) dka[n][e] = dva[n][e] = 0.f;
  if (t_begin < t_end) {
    LoadRowsAsync<T, D, kFwdBN>(ks, SQ, k + koff, row_stride, j0, p.nkv);
    LoadRowsAsync<T, D, kFwdBN>(vs, SQ, v + koff, row_stride, j0, p.nkv);
    stage(0, t_begin);
  }
  for (int64_t t = t_begin; t < t_end; ++t) {
    const int buf = int(t - t_begin) & 1;
    if (t + 1 < t_end) {
      stage(buf ^ 1, t + 1);
      kd::cp_async_wait<1>();
    } else {
      kd::cp_async_wait<0>();
    }
    kd::syncthreads();
    const kd::Ptr<T> qt = qs + buf * BM * SQ, dot = dos + buf * BM * SQ;
    const kd::Ptr<float> lt = stats + buf * 2 * BM, dt = lt + BM;
    float s[BM / 8][4], dp[BM / 8][4];
    MmaRowsDot<T, D, BM>(s, ks + warp * 16 * SQ, qt, lane);   // S^T: rows keys, columns queries
    MmaRowsDot<T, D, BM>(dp, vs + warp * 16 * SQ, dot, lane);  // dP^T
    const int64_t ib = t * BM;
    KD_UNROLL
    for (int n = 0; n < BM / 8; ++n) {
      KD_UNROLL
      for (int e = 0; e < 4; ++e) {
        const int r = e >> 1, c = n * 8 + 2 * (lane & 3) + (e & 1);
        const int64_t j = j0 + warp * 16 + (lane >> 2) + 8 * r, i = ib + c;
        const float li = lt[c];
        const bool vis = kept[r] && i < p.nq && li != -INFINITY && InBand(p, i, j);
        const float pr = vis ? exp2f(s[n][e] * p.scale_log2 - li * 1.4426950408889634f) : 0.f;
        s[n][e] = pr;
        dp[n][e] = pr * (dp[n][e] - float(dt[c]));  // dS^T
      }
    }
    MmaAccumPB<T, D, BM>(dva, s, dot, lane);
    MmaAccumPB<T, D, BM>(dka, dp, qt, lane);
    kd::syncthreads();  // this stage is refilled by the next prefetch
  }
  KD_UNROLL
  for (int r = 0; r < 2; ++r) {
    const int64_t j = j0 + warp * 16 + (lane >> 2) + 8 * r;
    if (j >= p.nkv) continue;
    const int64_t base = ((b * p.nkv + j) * p.heads + h) * D;
    KD_UNROLL
    for (int n = 0; n < NTD; ++n) {
      const int col = n * 8 + 2 * (lane & 3);
      kd::StoreF(dk, base + col, dka[n][2 * r] * p.scale);
      kd::StoreF(dk, base + col + 1, dka[n][2 * r + 1] * p.scale);
      kd::StoreF(dv, base + col, dva[n][2 * r]);
      kd::StoreF(dv, base + col + 1, dva[n][2 * r + 1]);
    }
  }
}

// ---------------------------------------------------------------------------
// attention_probs: probs [B, heads, Q, Nkv] f32, the softmax row of query
// queries[x] of head y, batch z; any head dim (q row in dynamic shared memory).

constexpr int kProbsThreads = 128;

KD_DEVICE float BlockReduce128(float v, kd::Ptr<float> red, bool is_max) {
  KD_UNROLL
  for (int o = 16; o > 0; o >>= 1) {
    const float w = kd::shfl_xor_sync(kd::kFullMask, v, o);
    v = is_max ? fmaxf(v, w) : v + w;
  }
  if ((kd::threadIdx.x & 31) == 0) red[kd::threadIdx.x >> 5] = v;
  kd::syncthreads();
  const float r0 = red[0], r1 = red[1], r2 = red[2], r3 = red[3];
  return is_max ? fmaxf(fmaxf(r0, r1), fmaxf(r2, r3)) : (r0 + r1) + (r2 + r3);
}

template <class T>
KD_GLOBAL void KD_LAUNCH_BOUNDS(kProbsThreads)
    SdpaProbsKernel(kd::Ptr<const T> q, kd::Ptr<const T> k, kd::Ptr<const uint8_t> mask,
                    kd::Ptr<const int64_t> queries, kd::Ptr<float> probs, SdpaDev p, int nqueries) {
  KD_DYNAMIC_SHARED(float, smem);
  const kd::Ptr<float> qs = smem, red = smem + p.head_dim;  // red: [4] max, [4] sum
  const int tid = kd::threadIdx.x, d = p.head_dim;
  const int64_t qn = kd::blockIdx.x, h = kd::blockIdx.y, b = kd::blockIdx.z;
  const int64_t i = queries[qn];
  for (int c = tid; c < d; c += kProbsThreads) qs[c] = kd::LoadF(q, ((b * p.nq + i) * p.heads + h) * d + c);
  kd::syncthreads();
  const kd::Ptr<float> prow = probs + ((b * p.heads + h) * nqueries + qn) * p.nkv;
  // Pass 1: scaled scores (kept in the output row) and their max.
  float mx = -INFINITY;
  for (int64_t j = tid; j < p.nkv; j += kProbsThreads) {
    float s = -INFINITY;
    if (InBand(p, i, j) && KeyKept(mask, p, b, j)) {
      const int64_t kbase = ((b * p.nkv + j) * p.heads + h) * d;
      float acc = 0.f;
      for (int c = 0; c < d; ++c) acc = fmaf(float(qs[c]), kd::LoadF(k, kbase + c), acc);
      s = acc * p.scale;
    }
    prow[j] = s;
    mx = fmaxf(mx, s);
  }
  mx = BlockReduce128(mx, red, true);
  // Pass 2: the denominator; then normalise (zeros when no key is visible).
  float sum = 0.f;
  for (int64_t j = tid; j < p.nkv; j += kProbsThreads) {
    const float s = prow[j];
    if (s != -INFINITY) sum += expf(s - mx);
  }
  sum = BlockReduce128(sum, red + 4, false);
  const float inv = sum > 0.f ? 1.f / sum : 0.f;
  for (int64_t j = tid; j < p.nkv; j += kProbsThreads) {
    const float s = prow[j];
    prow[j] = s == -INFINITY ? 0.f : expf(s - mx) * inv;
  }
}

// ---------------------------------------------------------------------------
// Launch geometry (host; shared by the launchers and the interpreted test).

struct SdpaLaunch {
  kd::Dim3 grid, block;
  size_t smem = 0;  // dynamic shared bytes; above 48 KiB the launcher opts in
};

constexpr int kSdpaHeadDims[] = {40, 64, 72, 80, 128, 160};
inline bool SdpaHeadDimSupported(int64_t d) {
  for (int x : kSdpaHeadDims)
    if (d == x) return true;
  return false;
}
inline Status SdpaCheckHeadDim(absl::string_view op, int64_t d) {
  CF_CHECK_ARG(SdpaHeadDimSupported(d), op, ": attention on CUDA supports head dims 40, 64, 72, 80, 128, 160; got ",
               d);
  return absl::OkStatus();
}

// Calls f(std::integral_constant<int, D>{}) for the instantiated head dims.
template <class F> Status WithHeadDim(int64_t d, F&& f) {
  switch (d) {
    case 40: return f(std::integral_constant<int, 40>{});
    case 64: return f(std::integral_constant<int, 64>{});
    case 72: return f(std::integral_constant<int, 72>{});
    case 80: return f(std::integral_constant<int, 80>{});
    case 128: return f(std::integral_constant<int, 128>{});
    case 160: return f(std::integral_constant<int, 160>{});
    default: return SdpaCheckHeadDim("attention", d);
  }
}

constexpr size_t kSdpaMaxSmem = 227 * 1024;  // sm_90's opt-in limit per block

inline StatusOr<SdpaLaunch> SdpaTiledPlan(absl::string_view what, const SdpaParams& p, int64_t rows, int tile,
                                          int threads, size_t smem) {
  const int64_t blocks = (rows + tile - 1) / tile;
  CF_CHECK_ARG(p.heads <= 65535 && p.batch <= 65535, what, ": heads ", p.heads, " and batch ", p.batch,
               " must be <= 65535 (CUDA grid y / z limits)");
  CF_CHECK_ARG(blocks <= 0x7fffffff, what, ": ", rows, " tokens exceed the CUDA grid x limit");
  CF_CHECK_ARG(smem <= kSdpaMaxSmem, what, ": needs ", smem, " bytes of shared memory per block");
  SdpaLaunch l;
  l.grid = kd::Dim3(unsigned(blocks < 1 ? 1 : blocks), unsigned(p.heads), unsigned(p.batch));
  l.block = kd::Dim3(unsigned(threads));
  l.smem = smem;
  return l;
}

// Forward: the tensor-core kernel for f16/bf16 whose q, k, v are 16-byte
// aligned (cp.async), else the CUDA-core one.
inline bool SdpaUseMma(DType dtype, bool aligned16) { return dtype != DType::f32 && aligned16; }
inline StatusOr<SdpaLaunch> SdpaFwdPlanFor(const SdpaParams& p, bool mma) {
  CF_RETURN_IF_ERROR(SdpaCheckHeadDim("attention", p.head_dim));
  const int d = int(p.head_dim);
  return mma ? SdpaTiledPlan("attention", p, p.nq, kFwdBM, kFwdThreads, MmaFwdSmemBytes(d))
             : SdpaTiledPlan("attention", p, p.nq, kFmaBM, kFmaThreads, FmaFwdSmemBytes(d));
}

struct SdpaBwdPlan {
  SdpaLaunch dot, kv, dq;
  int64_t dot_rows = 0;  // B * Nq * heads
  bool mma = false;      // the tensor-core dK / dV and dQ kernels
};
// The smem bytes of the tensor-core backward kernels of head dim d.
inline size_t MmaBwdSmem(int d, bool kv) {
  size_t bytes = 0;
  (void)WithHeadDim(d, [&](auto dc) {
    constexpr int D = decltype(dc)::value;
    bytes = kv ? MmaBwdKvSmemBytes<D>() : MmaBwdQSmemBytes<D>();
    return absl::OkStatus();
  });
  return bytes;
}
// Backward: tensor cores for f16/bf16 whose q, k, v, dout are 16-byte
// aligned (SdpaUseMma), else CUDA cores.
inline StatusOr<SdpaBwdPlan> SdpaBwdPlanFor(const SdpaParams& p, bool mma) {
  CF_RETURN_IF_ERROR(SdpaCheckHeadDim("attention_backward", p.head_dim));
  const int d = int(p.head_dim);
  SdpaBwdPlan b;
  b.mma = mma;
  b.dot_rows = p.batch * p.nq * p.heads;
  const int64_t dot_blocks = (b.dot_rows + kDotRowsPerBlock - 1) / kDotRowsPerBlock;
  CF_CHECK_ARG(dot_blocks <= 0x7fffffff, "attention_backward: ", b.dot_rows, " rows exceed the CUDA grid x limit");
  b.dot.grid = kd::Dim3(unsigned(dot_blocks < 1 ? 1 : dot_blocks));
  b.dot.block = kd::Dim3(32 * kDotRowsPerBlock);
  if (mma) {
    CF_ASSIGN_OR_RETURN(b.kv, SdpaTiledPlan("attention_backward", p, p.nkv, kFwdBN, kFwdThreads, MmaBwdSmem(d, true)));
    CF_ASSIGN_OR_RETURN(b.dq, SdpaTiledPlan("attention_backward", p, p.nq, kFwdBM, kFwdThreads, MmaBwdSmem(d, false)));
  } else {
    CF_ASSIGN_OR_RETURN(b.kv, SdpaTiledPlan("attention_backward", p, p.nkv, kFmaBN, kFmaThreads, BwdKvSmemBytes(d)));
    CF_ASSIGN_OR_RETURN(b.dq, SdpaTiledPlan("attention_backward", p, p.nq, kFmaBM, kFmaThreads, BwdQSmemBytes(d)));
  }
  return b;
}

inline StatusOr<SdpaLaunch> SdpaProbsPlanFor(const SdpaParams& p, int64_t nqueries) {
  CF_CHECK_ARG(p.heads <= 65535 && p.batch <= 65535, "attention_probs: heads ", p.heads, " and batch ", p.batch,
               " must be <= 65535 (CUDA grid y / z limits)");
  CF_CHECK_ARG(nqueries <= 0x7fffffff, "attention_probs: too many queries (", nqueries, ")");
  const size_t smem = (size_t(p.head_dim) + 8) * 4;
  CF_CHECK_ARG(smem <= kSdpaMaxSmem, "attention_probs: head dim ", p.head_dim, " is too large for the CUDA kernel");
  SdpaLaunch l;
  l.grid = kd::Dim3(unsigned(nqueries < 1 ? 1 : nqueries), unsigned(p.heads), unsigned(p.batch));
  l.block = kd::Dim3(kProbsThreads);
  l.smem = smem;
  return l;
}

}  // namespace cf::sdpa_kernels

// ---------------------------------------------------------------------------
// The launchers (nvcc only), defined in the TUs that instantiate them
// (sdpa_{fwd,bwd}_<dtype>_d<D>.cu define CF_SDPA_DEFINE_LAUNCHERS first).
#if defined(CF_SDPA_DEFINE_LAUNCHERS) && !KD_INTERP
#include "ops/attention/sdpa_cuda.h"
#include "ops/cuda_util.cuh"

namespace cf {
namespace sdpa_kernels {

// Raises the kernel's dynamic shared-memory limit past 48 KiB. A kernel
// instantiation always asks for the same size, so repeating the call from
// several host threads cannot race to a smaller limit.
template <class Kernel> Status OptInSmem(Kernel kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return absl::OkStatus();
  CF_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  return absl::OkStatus();
}
inline bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }
inline const uint8_t* MaskOrNull(const SdpaParams& p, const uint8_t* m) { return p.has_mask ? m : nullptr; }

}  // namespace sdpa_kernels

template <class T, int D> Status SdpaForwardCuda(const SdpaParams& p, const SdpaFwdArgs& a, cudaStream_t stream) {
  using namespace sdpa_kernels;
  if (p.batch == 0 || p.nq == 0) return absl::OkStatus();
  const bool mma = SdpaUseMma(DTypeOf<T>::value, Aligned16(a.q) && Aligned16(a.k) && Aligned16(a.v));
  CF_ASSIGN_OR_RETURN(SdpaLaunch l, SdpaFwdPlanFor(p, mma));
  const SdpaDev dev = DevOf(p);
  const T* q = static_cast<const T*>(a.q);
  const T* k = static_cast<const T*>(a.k);
  const T* v = static_cast<const T*>(a.v);
  T* out = static_cast<T*>(a.out);
  if constexpr (!std::is_same_v<T, float>) {
    if (mma) {
      CF_RETURN_IF_ERROR(OptInSmem(SdpaFwdMmaKernel<T, D>, l.smem));
      SdpaFwdMmaKernel<T, D><<<l.grid, l.block, l.smem, stream>>>(q, k, v, MaskOrNull(p, a.mask), out, a.lse, dev);
      CF_CUDA_CHECK_LAUNCH();
      return absl::OkStatus();
    }
  }
  CF_RETURN_IF_ERROR(OptInSmem(SdpaFwdFmaKernel<T, D>, l.smem));
  SdpaFwdFmaKernel<T, D><<<l.grid, l.block, l.smem, stream>>>(q, k, v, MaskOrNull(p, a.mask), out, a.lse, dev);
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

template <class T, int D> Status SdpaBackwardCuda(const SdpaParams& p, const SdpaBwdArgs& a, cudaStream_t stream) {
  using namespace sdpa_kernels;
  if (p.batch == 0) return absl::OkStatus();
  const bool mma =
      SdpaUseMma(DTypeOf<T>::value, Aligned16(a.q) && Aligned16(a.k) && Aligned16(a.v) && Aligned16(a.dout));
  CF_ASSIGN_OR_RETURN(SdpaBwdPlan bp, SdpaBwdPlanFor(p, mma));
  const SdpaDev dev = DevOf(p);
  const T* q = static_cast<const T*>(a.q);
  const T* k = static_cast<const T*>(a.k);
  const T* v = static_cast<const T*>(a.v);
  const T* dout = static_cast<const T*>(a.dout);
  const uint8_t* mask = MaskOrNull(p, a.mask);
  T* dq = static_cast<T*>(a.dq);
  T* dk = static_cast<T*>(a.dk);
  T* dv = static_cast<T*>(a.dv);
  if (bp.dot_rows > 0) {
    SdpaBwdDotKernel<T><<<bp.dot.grid, bp.dot.block, 0, stream>>>(static_cast<const T*>(a.out), dout, a.dvec,
                                                                    bp.dot_rows, D, p.nq, dev.heads);
    CF_CUDA_CHECK_LAUNCH();
  }
  // With Nq = 0 the dK / dV kernel writes zeros, and with Nkv = 0 the dQ one.
  auto kv_kernel = SdpaBwdKvKernel<T, D>;
  auto q_kernel = SdpaBwdQKernel<T, D>;
  if constexpr (!std::is_same_v<T, float>) {
    if (mma) {
      kv_kernel = SdpaBwdKvMmaKernel<T, D>;
      q_kernel = SdpaBwdQMmaKernel<T, D>;
    }
  }
  if (p.nkv > 0) {
    CF_RETURN_IF_ERROR(OptInSmem(kv_kernel, bp.kv.smem));
    kv_kernel<<<bp.kv.grid, bp.kv.block, bp.kv.smem, stream>>>(q, k, v, dout, a.lse, a.dvec, mask, dk, dv, dev);
    CF_CUDA_CHECK_LAUNCH();
  }
  if (p.nq > 0) {
    CF_RETURN_IF_ERROR(OptInSmem(q_kernel, bp.dq.smem));
    q_kernel<<<bp.dq.grid, bp.dq.block, bp.dq.smem, stream>>>(q, k, v, dout, a.lse, a.dvec, mask, dq, dev);
    CF_CUDA_CHECK_LAUNCH();
  }
  return absl::OkStatus();
}

}  // namespace cf
#endif  // CF_SDPA_DEFINE_LAUNCHERS
