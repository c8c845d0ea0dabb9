// CUDA kernels of "neighborhood_attention" and its backward (contracts:
// attention.h; window rule: NaParams::WindowStart), written against
// runtime/kdev/kdev.h: compiled by nvcc in neighborhood_cuda_<dtype>.cu and
// run on the CPU interpreter by tests/ops/neighborhood_interp_test.cc, both
// with the launch geometry below (NaFwdPlanFor, NaBwdPlanFor).
//
// Layout: q, k, v, out [B, H, W, heads*d], token t = (b*H + y)*W + x, head h
// at channels [h*d, (h+1)*d); lse (and the backward's D) [B, H, W, heads] f32.
//
// Tiling. The positions congruent to (r_h, r_w) mod the dilation form a grid
// (a "dilation group") on which every window is K_h x K_w consecutive cells,
// NATTEN's clamp(a - K/2, 0, L - K) (GridStart). A CTA owns an 8 x 8 tile of
// one group's grid, one head, one batch (blockIdx = (group, tile), head,
// batch). Its halo -- the union of its queries' windows, itself clamped at
// the borders, at most (8 + K_h - 1) x (8 + K_w - 1) cells -- is staged in
// shared memory as f32 rows of d channels (stride d | 1, odd, so the 8
// neighbouring keys a warp reads at once fall in different banks). When the
// halo does not fit in kSmemBudget it is streamed in chunks of halo rows;
// the online softmax makes the chunks independent, so the cost is only one
// extra barrier pair per chunk. Global loads are 16 bytes wide (4 f32 or 8
// f16/bf16) when the channel count, head dim and base pointers allow.
//
// Threads: 4 per query (kG), each owning channels c = lane4 + 4t (t < CPT,
// a compile-time bound: CPT * 4 >= d), so q, the output accumulator and the
// running max / sum live in registers; a score is the 4 lanes' partial dot
// products summed with two xor shuffles. Scores are in log2 units (q is
// pre-scaled by scale * log2 e) for exp2f; the accumulator is rescaled only
// when the running max grows. f32 accumulation for every storage type. This
// is the forward of f32 and of f16/bf16 views that are misaligned or have
// d % 8 != 0 (NaFwdKernel).
//
// Forward on tensor cores (NaFwdMmaKernel: f16/bf16, d % 8 == 0, d <= 160,
// 16-byte aligned): the same query tile, 4 warps x 16 queries; the halo's
// cells stream through shared memory in 64-cell tiles (two cp.async
// stages); S = Q K^T and O += P V are mma.m16n8k16 with f32 accumulators,
// each score masked to its query's window (FlashAttention-2's online
// softmax). The masked halo costs ~2.4x the window's multiply-adds at
// K = 13 (400 halo cells for 169 window keys), on tensor cores.
//
// Backward (no atomics, deterministic): NaBwdDotKernel D = <dO, O> - dlse
// per (token, head); NaBwdQKernel dQ = scale * sum_j dS_j k_j over each
// query's own window with the forward's tiling (K and V halo), dS = P (dP -
// D), P = exp(s - lse) recomputed from the saved lse, dP = dO . v;
// NaBwdKvKernel dK = scale * sum_i dS_i q_i and dV = sum_i P_i dO_i over the
// inverse neighbourhood of each key: a tile of keys stages the halo of
// queries that can reach it (q, dO, lse, D), and each key enumerates the
// candidate queries within K - 1 cells per axis and keeps those whose window
// (GridStart) contains it. For f16/bf16 under the tensor-core forward's
// conditions, dQ (NaBwdQMmaKernel) and dK / dV (NaBwdKvMmaKernel) run on
// tensor cores instead: the same tiles, the K / V or query halo streamed in
// 64-cell tiles, scores masked per pair (no atomics either).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "ops/attention/attention_mma.cuh"
#include "ops/attention/attention_params.h"
#include "runtime/kdev/kdev.h"

namespace cf::na_kernels {

constexpr int kG = 4;                        // threads per query (or key) row
constexpr int kTH = 8, kTW = 8;              // tile of the dilation group's grid
constexpr int kThreads = kTH * kTW * kG;     // 256
constexpr int kDotWarps = 8;                 // rows (one per warp) per block of NaBwdDotKernel
constexpr size_t kSmemBudget = 100 * 1024;   // per CTA: two CTAs fit in an SM's 228 KiB
constexpr size_t kMaxSmem = 227 * 1024;      // sm_90's opt-in limit per block
constexpr int kMaxHeadDim = 256;             // CPT <= 64
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// The geometry the kernels need, by value (NaParams is host-only).
struct NaDev {
  int64_t batch = 0;
  int height = 0, width = 0, heads = 0, head_dim = 0, channels = 0;
  int kh = 0, kw = 0, dh = 1, dw = 1;
  int tiles_h = 0, tiles_w = 0;  // tiles per axis on the largest group's grid
  int halo_w = 0;                // halo columns reserved per staged row
  int chunk_rows = 0;            // halo rows staged per chunk
  int ds = 0;                    // shared row stride of one cell, floats
  int vec = 1;                   // elements per global load (1, or 16 bytes' worth)
  float scale = 0;               // the softmax scale
  float scale_log2 = 0;          // scale * log2(e)
};

// NATTEN's window start on a group's grid of length len (>= k): the same
// rule as NaParams::WindowStart in grid coordinates.
KD_HD int GridStart(int a, int len, int k) {
  const int s = a - k / 2;
  return s < 0 ? 0 : (s > len - k ? len - k : s);
}
// The grid length of residue r on an axis of n cells with dilation d.
KD_HD int GridLen(int n, int r, int d) { return (n - r + d - 1) / d; }

// One CTA's tile: dilation group (gr, gc) with grid lengths (lh, lw), tile
// origin (a0, b0) and its cells' extent [a0, a1) x [b0, b1) on that grid.
struct NaTile {
  int gr, gc, lh, lw, a0, b0, a1, b1;
  bool empty;
};
KD_DEVICE NaTile TileOf(const NaDev& p, unsigned bx) {
  NaTile t;
  const int tj = int(bx % unsigned(p.tiles_w));
  bx /= unsigned(p.tiles_w);
  const int ti = int(bx % unsigned(p.tiles_h));
  bx /= unsigned(p.tiles_h);
  t.gc = int(bx % unsigned(p.dw));
  t.gr = int(bx / unsigned(p.dw));
  t.lh = GridLen(p.height, t.gr, p.dh);
  t.lw = GridLen(p.width, t.gc, p.dw);
  t.a0 = ti * kTH;
  t.b0 = tj * kTW;
  t.a1 = t.a0 + kTH < t.lh ? t.a0 + kTH : t.lh;
  t.b1 = t.b0 + kTW < t.lw ? t.b0 + kTW : t.lw;
  t.empty = t.a0 >= t.lh || t.b0 >= t.lw;  // groups with shorter grids have fewer tiles
  return t;
}

// The element offset of grid cell (a, b) of group (gr, gc), batch bi, head h.
KD_DEVICE int64_t CellOffset(const NaDev& p, const NaTile& t, int64_t bi, int h, int a, int b) {
  const int64_t y = t.gr + int64_t(a) * p.dh, x = t.gc + int64_t(b) * p.dw;
  return ((bi * p.height + y) * p.width + x) * p.channels + int64_t(h) * p.head_dim;
}
KD_DEVICE int64_t CellRow(const NaDev& p, const NaTile& t, int64_t bi, int h, int a, int b) {  // lse / D index
  const int64_t y = t.gr + int64_t(a) * p.dh, x = t.gc + int64_t(b) * p.dw;
  return ((bi * p.height + y) * p.width + x) * p.heads + h;
}

// Sum over the kG lanes of one query's thread group (they run the same
// control flow; other groups of the warp may be elsewhere).
KD_DEVICE float GroupSum(float v, unsigned mask) {
  v += kd::shfl_xor_sync(mask, v, 1, kG);
  v += kd::shfl_xor_sync(mask, v, 2, kG);
  return v;
}
KD_DEVICE unsigned GroupMask() { return 0xFu << (kd::lane_id() & ~unsigned(kG - 1)); }

// 16 bytes of T at p (16-byte aligned) as floats: 4 f32 or 8 f16/bf16.
template <class T> constexpr int kVec = int(16 / sizeof(T));
KD_DEVICE void LoadVec(kd::Ptr<const float> p, float v[4]) {
  const kd::float4 a = kd::ptr_cast<const kd::float4>(p)[0];
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
}
KD_DEVICE void LoadVec(kd::Ptr<const kd::half> p, float v[8]) {
  alignas(16) kd::half2 h[4];
  const kd::uint4 u = kd::ptr_cast<const kd::uint4>(p)[0];
  std::memcpy(static_cast<void*>(h), &u, sizeof(u));
  KD_UNROLL
  for (int i = 0; i < 4; ++i) {
    const kd::float2 f = kd::half22float2(h[i]);
    v[2 * i] = f.x, v[2 * i + 1] = f.y;
  }
}
KD_DEVICE void LoadVec(kd::Ptr<const kd::bfloat16> p, float v[8]) {
  alignas(16) kd::bfloat162 h[4];
  const kd::uint4 u = kd::ptr_cast<const kd::uint4>(p)[0];
  std::memcpy(static_cast<void*>(h), &u, sizeof(u));
  KD_UNROLL
  for (int i = 0; i < 4; ++i) {
    const kd::float2 f = kd::bfloat1622float2(h[i]);
    v[2 * i] = f.x, v[2 * i + 1] = f.y;
  }
}

// Stages halo rows [r0, r1) x columns [c0, c1) (grid coordinates of tile t's
// group) of the head rows of x and y into xs, ys (row-major cells of stride
// p.halo_w, p.ds floats each, f32).
template <class T>
KD_DEVICE void StageCells(const NaDev& p, const NaTile& t, int64_t bi, int h, int r0, int r1, int c0, int c1,
                          kd::Ptr<const T> x, kd::Ptr<const T> y, kd::Ptr<float> xs, kd::Ptr<float> ys) {
  const int ncols = c1 - c0, cells = (r1 - r0) * ncols, d = p.head_dim;
  if (p.vec > 1) {
    constexpr int V = kVec<T>;
    const int per = d / V, items = cells * per;
    for (int e = kd::threadIdx.x; e < items; e += kThreads) {
      const int cell = e / per, ch = (e % per) * V, r = cell / ncols, c = cell % ncols;
      const int64_t g = CellOffset(p, t, bi, h, r0 + r, c0 + c) + ch;
      const int s = (r * p.halo_w + c) * p.ds + ch;
      float a[V], b[V];
      LoadVec(x + g, a);
      LoadVec(y + g, b);
      KD_UNROLL
      for (int i = 0; i < V; ++i) {
        xs[s + i] = a[i];
        ys[s + i] = b[i];
      }
    }
  } else {
    const int items = cells * d;
    for (int e = kd::threadIdx.x; e < items; e += kThreads) {
      const int cell = e / d, ch = e % d, r = cell / ncols, c = cell % ncols;
      const int64_t g = CellOffset(p, t, bi, h, r0 + r, c0 + c) + ch;
      const int s = (r * p.halo_w + c) * p.ds + ch;
      xs[s] = kd::LoadF(x, g);
      ys[s] = kd::LoadF(y, g);
    }
  }
}

// The forward and dQ halo of a query tile: grid rows [r0, r1), cols [c0, c1).
struct NaHalo {
  int r0, r1, c0, c1;
};
KD_DEVICE NaHalo QueryTileHalo(const NaDev& p, const NaTile& t) {
  NaHalo o;
  o.r0 = GridStart(t.a0, t.lh, p.kh);
  o.r1 = GridStart(t.a1 - 1, t.lh, p.kh) + p.kh;
  o.c0 = GridStart(t.b0, t.lw, p.kw);
  o.c1 = GridStart(t.b1 - 1, t.lw, p.kw) + p.kw;
  return o;
}

// ---------------------------------------------------------------------------
// Forward: out, lse.

template <class T, int CPT>
KD_GLOBAL void KD_LAUNCH_BOUNDS(kThreads)
    NaFwdKernel(kd::Ptr<const T> q, kd::Ptr<const T> k, kd::Ptr<const T> v, kd::Ptr<T> out, kd::Ptr<float> lse,
                NaDev p) {
  KD_DYNAMIC_SHARED(float, smem);
  const NaTile t = TileOf(p, kd::blockIdx.x);
  if (t.empty) return;  // uniform over the CTA, before any barrier
  const int h = int(kd::blockIdx.y);
  const int64_t bi = kd::blockIdx.z;
  const int tid = int(kd::threadIdx.x), l = tid % kG, qi = tid / kG;
  const int a = t.a0 + qi / kTW, b = t.b0 + qi % kTW;
  const bool active = a < t.a1 && b < t.b1;
  const NaHalo hl = QueryTileHalo(p, t);
  const int d = p.head_dim;
  const kd::Ptr<float> ks = smem, vs = smem + p.chunk_rows * p.halo_w * p.ds;
  // The query's window: grid rows [wr, wr + kh), halo-relative columns from wc.
  const int wr = active ? GridStart(a, t.lh, p.kh) : 0;
  const int wc = active ? GridStart(b, t.lw, p.kw) - hl.c0 : 0;
  const int64_t base = active ? CellOffset(p, t, bi, h, a, b) : 0;
  const unsigned mask = GroupMask();

  float qr[CPT], acc[CPT];
  KD_UNROLL
  for (int i = 0; i < CPT; ++i) {
    const int c = l + kG * i;
    qr[i] = active && c < d ? kd::LoadF(q, base + c) * p.scale_log2 : 0.f;
    acc[i] = 0.f;
  }
  float m = -INFINITY, sum = 0.f;
  for (int r0 = hl.r0; r0 < hl.r1; r0 += p.chunk_rows) {
    const int r1 = r0 + p.chunk_rows < hl.r1 ? r0 + p.chunk_rows : hl.r1;
    kd::syncthreads();  // the previous chunk is consumed
    StageCells<T>(p, t, bi, h, r0, r1, hl.c0, hl.c1, k, v, ks, vs);
    kd::syncthreads();
    if (!active) continue;
    const int y0 = wr > r0 ? wr : r0, y1 = wr + p.kh < r1 ? wr + p.kh : r1;
    for (int y = y0; y < y1; ++y) {
      const int row = ((y - r0) * p.halo_w + wc) * p.ds;
      for (int x = 0; x < p.kw; ++x) {
        const int cell = row + x * p.ds;
        float s = 0.f;
        KD_UNROLL
        for (int i = 0; i < CPT; ++i) {
          const int c = l + kG * i;
          if (c < d) s = fmaf(qr[i], float(ks[cell + c]), s);
        }
        s = GroupSum(s, mask);
        if (s > m) {  // rescale only when the running max grows
          const float corr = exp2f(m - s);
          sum *= corr;
          KD_UNROLL
          for (int i = 0; i < CPT; ++i) acc[i] *= corr;
          m = s;
        }
        const float e = exp2f(s - m);
        sum += e;
        KD_UNROLL
        for (int i = 0; i < CPT; ++i) {
          const int c = l + kG * i;
          if (c < d) acc[i] = fmaf(e, float(vs[cell + c]), acc[i]);
        }
      }
    }
  }
  if (!active) return;
  const float inv = 1.f / sum;  // sum >= 1: every window has K_h * K_w keys
  KD_UNROLL
  for (int i = 0; i < CPT; ++i) {
    const int c = l + kG * i;
    if (c < d) kd::StoreF(out, base + c, acc[i] * inv);
  }
  if (l == 0) lse[CellRow(p, t, bi, h, a, b)] = (m + log2f(sum)) * kLn2;
}

// ---------------------------------------------------------------------------
// Forward on tensor cores (f16 / bf16, d % 8 == 0, 16-byte aligned views).
//
// The same 8 x 8 query tile; 4 warps of 16 queries (two tile rows each). The
// halo's cells, enumerated row-major, stream through shared memory in tiles
// of 64 cells (two cp.async stages, in the storage type, rows padded to DK
// + 8 elements so ldmatrix rows stay 16-byte aligned and spread over the
// banks); per tile S = Q K^T and O += P V are mma.m16n8k16 with f32
// accumulators, each score masked to its query's window, and the online
// softmax (log2 units) is kept per row in registers as in FlashAttention-2.
// A warp skips a cell tile that no window of its two tile rows reaches.
// DK, the k16-padded head-dim bucket, is a template parameter; columns
// [d, DK) of Q, K and V are zero in shared memory.

constexpr int kMmaThreads = 128;  // 4 warps x 16 queries = the 8 x 8 tile
constexpr int kMmaBN = 64;        // halo cells per shared-memory tile

constexpr size_t NaMmaSmemBytes(int dk) { return size_t(kTH * kTW + 4 * kMmaBN) * size_t(dk + 8) * 2; }


// Cells [j0, j0 + 64) of the halo (row-major, ncols wide, origin (hr0, hc0))
// of head rows x into dst [64][SQ] with 16-byte cp.async; cells past `cells`
// are zero-filled (their source is the head's first row, not read).
template <class T, int SQ>
KD_DEVICE void NaLoadCellsAsync(const NaDev& p, const NaTile& t, int64_t bi, int h, int hr0, int hc0, int ncols,
                                int cells, int j0, kd::Ptr<const T> x, kd::Ptr<T> dst) {
  const int chunks = p.head_dim / 8;
  for (int e = int(kd::threadIdx.x); e < kMmaBN * chunks; e += kMmaThreads) {
    const int c = e / chunks, ch = (e % chunks) * 8, j = j0 + c;
    const bool in = j < cells;
    const int64_t g = in ? CellOffset(p, t, bi, h, hr0 + j / ncols, hc0 + j % ncols) : CellOffset(p, t, bi, h, 0, 0);
    kd::cp_async_zfill<16>(dst + (c * SQ + ch), x + (g + ch), in ? 16 : 0);
  }
}

template <class T, int DK>
KD_GLOBAL void KD_LAUNCH_BOUNDS(kMmaThreads)
    NaFwdMmaKernel(kd::Ptr<const T> q, kd::Ptr<const T> k, kd::Ptr<const T> v, kd::Ptr<T> out, kd::Ptr<float> lse,
                   NaDev p) {
  constexpr int SQ = DK + 8, KS = DK / 16, NT = DK / 8;
  static_assert(DK % 16 == 0, "DK is a multiple of 16");
  KD_DYNAMIC_SHARED(T, smem);
  const kd::Ptr<T> qs = smem;                                  // [64][SQ]
  const kd::Ptr<T> ks = smem + kTH * kTW * SQ;                 // [2][kMmaBN][SQ]
  const kd::Ptr<T> vs = smem + (kTH * kTW + 2 * kMmaBN) * SQ;  // [2][kMmaBN][SQ]
  const NaTile t = TileOf(p, kd::blockIdx.x);
  if (t.empty) return;
  const int h = int(kd::blockIdx.y);
  const int64_t bi = kd::blockIdx.z;
  const int tid = int(kd::threadIdx.x), lane = tid & 31, warp = tid >> 5, g = lane >> 2, tq = lane & 3;
  const int d = p.head_dim;
  const NaHalo hl = QueryTileHalo(p, t);
  const int ncols = hl.c1 - hl.c0, cells = (hl.r1 - hl.r0) * ncols;
  const int ntiles = (cells + kMmaBN - 1) / kMmaBN;

  // Zero columns [d, DK) of Q and of both K / V stages once; cp.async never
  // writes them.
  if (DK > d) {
    const int pad = DK - d;
    for (int e = tid; e < (kTH * kTW + 4 * kMmaBN) * pad; e += kMmaThreads)
      kd::StoreF(smem, (e / pad) * SQ + d + e % pad, 0.f);
  }
  // Q rows: query qi = tile cell (qi / 8, qi % 8); cells outside the grid
  // are zero rows.
  for (int e = tid; e < kTH * kTW * (d / 8); e += kMmaThreads) {
    const int qi = e / (d / 8), ch = (e % (d / 8)) * 8, a = t.a0 + qi / kTW, b = t.b0 + qi % kTW;
    const bool in = a < t.a1 && b < t.b1;
    const int64_t gq = in ? CellOffset(p, t, bi, h, a, b) : CellOffset(p, t, bi, h, 0, 0);
    kd::cp_async_zfill<16>(qs + (qi * SQ + ch), q + (gq + ch), in ? 16 : 0);
  }
  NaLoadCellsAsync<T, SQ>(p, t, bi, h, hl.r0, hl.c0, ncols, cells, 0, k, ks);
  NaLoadCellsAsync<T, SQ>(p, t, bi, h, hl.r0, hl.c0, ncols, cells, 0, v, vs);
  kd::cp_async_commit();

  // This lane's two query rows (g and g + 8 of the warp's 16): tile row
  // 2 warp + r, column g. Cells outside the grid take the window of the
  // nearest valid cell (computed, never stored).
  int wr[2], wc[2];
  bool act[2];
  KD_UNROLL
  for (int r = 0; r < 2; ++r) {
    const int a = t.a0 + 2 * warp + r, b = t.b0 + g;
    act[r] = a < t.a1 && b < t.b1;
    wr[r] = GridStart(a < t.a1 ? a : t.a1 - 1, t.lh, p.kh) - hl.r0;
    wc[r] = GridStart(b < t.b1 ? b : t.b1 - 1, t.lw, p.kw) - hl.c0;
  }
  // The halo rows any window of the warp's two tile rows reaches (warp-uniform).
  const int ra = t.a0 + 2 * warp < t.a1 ? t.a0 + 2 * warp : t.a1 - 1;
  const int rb = t.a0 + 2 * warp + 1 < t.a1 ? t.a0 + 2 * warp + 1 : t.a1 - 1;
  const int warp_r0 = GridStart(ra, t.lh, p.kh) - hl.r0, warp_r1 = GridStart(rb, t.lh, p.kh) - hl.r0 + p.kh;

  float o[NT][4];
  KD_UNROLL
  for (int n = 0; n < NT; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

  for (int tile = 0; tile < ntiles; ++tile) {
    const int buf = tile & 1;
    if (tile + 1 < ntiles) {  // prefetch the next cell tile into the other stage
      NaLoadCellsAsync<T, SQ>(p, t, bi, h, hl.r0, hl.c0, ncols, cells, (tile + 1) * kMmaBN, k,
                              ks + (buf ^ 1) * kMmaBN * SQ);
      NaLoadCellsAsync<T, SQ>(p, t, bi, h, hl.r0, hl.c0, ncols, cells, (tile + 1) * kMmaBN, v,
                              vs + (buf ^ 1) * kMmaBN * SQ);
      kd::cp_async_commit();
      kd::cp_async_wait<1>();
    } else {
      kd::cp_async_wait<0>();
    }
    kd::syncthreads();
    const int j0 = tile * kMmaBN;
    const int last = (j0 + kMmaBN < cells ? j0 + kMmaBN : cells) - 1;
    if (j0 / ncols < warp_r1 && last / ncols >= warp_r0) {
      const kd::Ptr<T> kt = ks + buf * kMmaBN * SQ, vt = vs + buf * kMmaBN * SQ;
      // S = Q K^T: 16 queries x 64 cells (8 n8 tiles).
      float s[kMmaBN / 8][4];
      KD_UNROLL
      for (int n = 0; n < kMmaBN / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
      KD_UNROLL
      for (int kk = 0; kk < KS; ++kk) {
        uint32_t a[4];
        kd::ldmatrix_x4(a, qs + ((warp * 16 + (lane & 15)) * SQ + kk * 16 + (lane >> 4) * 8));
        KD_UNROLL
        for (int np = 0; np < kMmaBN / 16; ++np) {
          // Matrices: cells 0-7 x ch 0-7, cells 0-7 x ch 8-15, cells 8-15 x
          // ch 0-7, cells 8-15 x ch 8-15 -- B of two n8 cell tiles.
          uint32_t bf[4];
          kd::ldmatrix_x4(bf, kt + ((np * 16 + (lane >> 4) * 8 + (lane & 7)) * SQ + kk * 16 + ((lane >> 3) & 1) * 8));
          attention_mma::MmaAcc<T>(s[2 * np], a, bf);
          attention_mma::MmaAcc<T>(s[2 * np + 1], a, bf + 2);
        }
      }
      // Scale to log2 units and mask each score to its query's window.
      KD_UNROLL
      for (int n = 0; n < kMmaBN / 8; ++n) {
        KD_UNROLL
        for (int e2 = 0; e2 < 2; ++e2) {
          const int j = j0 + n * 8 + 2 * tq + e2, cr = j / ncols, cc = j % ncols;
          KD_UNROLL
          for (int r = 0; r < 2; ++r) {
            const bool vis = j < cells && cr >= wr[r] && cr < wr[r] + p.kh && cc >= wc[r] && cc < wc[r] + p.kw;
            s[n][2 * r + e2] = vis ? s[n][2 * r + e2] * p.scale_log2 : -INFINITY;
          }
        }
      }
      // Online softmax (attention_mma.cuh): s becomes P, unnormalised.
      attention_mma::OnlineSoftmaxStep<kMmaBN, NT>(s, m, l, o);
      // O += P V: the accumulators of n8 tiles 2kk, 2kk + 1 are the A
      // fragment of k-step kk; V [cells][SQ] row-major gives B via .trans.
      KD_UNROLL
      for (int kk = 0; kk < kMmaBN / 16; ++kk) {
        const uint32_t a[4] = {attention_mma::Pack2<T>(s[2 * kk][0], s[2 * kk][1]), attention_mma::Pack2<T>(s[2 * kk][2], s[2 * kk][3]),
                               attention_mma::Pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                               attention_mma::Pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
        const kd::Ptr<T> vrow = vt + (kk * 16 + (lane & 15)) * SQ;
        KD_UNROLL
        for (int np = 0; np < NT / 2; ++np) {
          uint32_t bf[4];
          kd::ldmatrix_x4_trans(bf, vrow + (np * 16 + (lane >> 4) * 8));
          attention_mma::MmaAcc<T>(o[2 * np], a, bf);
          attention_mma::MmaAcc<T>(o[2 * np + 1], a, bf + 2);
        }
      }
    }
    kd::syncthreads();  // this stage is refilled by the next iteration's prefetch
  }

  KD_UNROLL
  for (int r = 0; r < 2; ++r) {
    l[r] += kd::shfl_xor_sync(kd::kFullMask, l[r], 1);
    l[r] += kd::shfl_xor_sync(kd::kFullMask, l[r], 2);
  }
  KD_UNROLL
  for (int r = 0; r < 2; ++r) {
    if (!act[r]) continue;
    const int a = t.a0 + 2 * warp + r, b = t.b0 + g;
    const int64_t base = CellOffset(p, t, bi, h, a, b);
    const float inv = 1.f / l[r];  // l >= 1: every window has K_h * K_w keys
    KD_UNROLL
    for (int n = 0; n < NT; ++n) {
      const int c = n * 8 + 2 * tq;
      if (c < d) kd::StoreF(out, base + c, o[n][2 * r] * inv);
      if (c + 1 < d) kd::StoreF(out, base + c + 1, o[n][2 * r + 1] * inv);
    }
    if (tq == 0) lse[CellRow(p, t, bi, h, a, b)] = (m[r] + log2f(l[r])) * kLn2;
  }
}

// ---------------------------------------------------------------------------
// Backward.

// D[r] = <dout_r, out_r> - dlse[r] for the rows r = token * heads + h (one
// warp per row); dlse may be null.
template <class T>
KD_GLOBAL void KD_LAUNCH_BOUNDS(32 * kDotWarps)
    NaBwdDotKernel(kd::Ptr<const T> out, kd::Ptr<const T> dout, kd::Ptr<const float> dlse, kd::Ptr<float> dvec,
                   int64_t rows, int heads, int d) {
  const int64_t r = int64_t(kd::blockIdx.x) * kDotWarps + kd::threadIdx.x / 32;
  if (r >= rows) return;  // uniform per warp
  const int lane = int(kd::threadIdx.x % 32);
  const int64_t base = (r / heads) * int64_t(heads) * d + (r % heads) * int64_t(d);
  float s = 0.f;
  for (int c = lane; c < d; c += 32) s = fmaf(kd::LoadF(dout, base + c), kd::LoadF(out, base + c), s);
  KD_UNROLL
  for (int o = 16; o > 0; o >>= 1) s += kd::shfl_xor_sync(kd::kFullMask, s, o);
  if (lane == 0) dvec[r] = s - (dlse != nullptr ? float(dlse[r]) : 0.f);
}

// dQ over each query's window: the forward's tiling and K / V halo.
template <class T, int CPT>
KD_GLOBAL void KD_LAUNCH_BOUNDS(kThreads)
    NaBwdQKernel(kd::Ptr<const T> q, kd::Ptr<const T> k, kd::Ptr<const T> v, kd::Ptr<const T> dout,
                 kd::Ptr<const float> lse, kd::Ptr<const float> dvec, kd::Ptr<T> dq, NaDev p) {
  KD_DYNAMIC_SHARED(float, smem);
  const NaTile t = TileOf(p, kd::blockIdx.x);
  if (t.empty) return;
  const int h = int(kd::blockIdx.y);
  const int64_t bi = kd::blockIdx.z;
  const int tid = int(kd::threadIdx.x), l = tid % kG, qi = tid / kG;
  const int a = t.a0 + qi / kTW, b = t.b0 + qi % kTW;
  const bool active = a < t.a1 && b < t.b1;
  const NaHalo hl = QueryTileHalo(p, t);
  const int d = p.head_dim;
  const kd::Ptr<float> ks = smem, vs = smem + p.chunk_rows * p.halo_w * p.ds;
  const int wr = active ? GridStart(a, t.lh, p.kh) : 0;
  const int wc = active ? GridStart(b, t.lw, p.kw) - hl.c0 : 0;
  const int64_t base = active ? CellOffset(p, t, bi, h, a, b) : 0;
  const int64_t row = active ? CellRow(p, t, bi, h, a, b) : 0;
  const float lse2 = active ? float(lse[row]) * kLog2e : 0.f, dd = active ? float(dvec[row]) : 0.f;
  const unsigned mask = GroupMask();

  float qr[CPT], gr[CPT], acc[CPT];
  KD_UNROLL
  for (int i = 0; i < CPT; ++i) {
    const int c = l + kG * i;
    qr[i] = active && c < d ? kd::LoadF(q, base + c) * p.scale_log2 : 0.f;
    gr[i] = active && c < d ? kd::LoadF(dout, base + c) : 0.f;
    acc[i] = 0.f;
  }
  for (int r0 = hl.r0; r0 < hl.r1; r0 += p.chunk_rows) {
    const int r1 = r0 + p.chunk_rows < hl.r1 ? r0 + p.chunk_rows : hl.r1;
    kd::syncthreads();
    StageCells<T>(p, t, bi, h, r0, r1, hl.c0, hl.c1, k, v, ks, vs);
    kd::syncthreads();
    if (!active) continue;
    const int y0 = wr > r0 ? wr : r0, y1 = wr + p.kh < r1 ? wr + p.kh : r1;
    for (int y = y0; y < y1; ++y) {
      const int rowc = ((y - r0) * p.halo_w + wc) * p.ds;
      for (int x = 0; x < p.kw; ++x) {
        const int cell = rowc + x * p.ds;
        float s = 0.f, dp = 0.f;
        KD_UNROLL
        for (int i = 0; i < CPT; ++i) {
          const int c = l + kG * i;
          if (c < d) {
            s = fmaf(qr[i], float(ks[cell + c]), s);
            dp = fmaf(gr[i], float(vs[cell + c]), dp);
          }
        }
        s = GroupSum(s, mask);
        dp = GroupSum(dp, mask);
        const float ds = exp2f(s - lse2) * (dp - dd);
        KD_UNROLL
        for (int i = 0; i < CPT; ++i) {
          const int c = l + kG * i;
          if (c < d) acc[i] = fmaf(ds, float(ks[cell + c]), acc[i]);
        }
      }
    }
  }
  if (!active) return;
  KD_UNROLL
  for (int i = 0; i < CPT; ++i) {
    const int c = l + kG * i;
    if (c < d) kd::StoreF(dq, base + c, acc[i] * p.scale);
  }
}

// dQ on tensor cores (f16/bf16, the forward's conditions): the forward's
// tiling and cell stream; per cell tile S = Q K^T and dP = dO V^T, then
// P = exp2(S - lse), dS = P (dP - D) masked to the windows, and dQ += dS K,
// all mma.m16n8k16 with f32 accumulators (dS rounded to the storage type
// for the last product, as P is in the forward).
constexpr size_t NaBwdQMmaSmemBytes(int dk) { return size_t(2 * kTH * kTW + 4 * kMmaBN) * size_t(dk + 8) * 2; }

// 16 rows (from a, row stride SQ) times 64 cells (from b): the 8 n8
// accumulator tiles of A B^T over KS k16 steps, for one warp.
template <class T, int SQ, int KS>
KD_DEVICE void NaMmaRowsTimesCells(kd::Ptr<T> a, kd::Ptr<T> b, int lane, float s[kMmaBN / 8][4]) {
  KD_UNROLL
  for (int n = 0; n < kMmaBN / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
  KD_UNROLL
  for (int kk = 0; kk < KS; ++kk) {
    uint32_t af[4];
    kd::ldmatrix_x4(af, a + ((lane & 15) * SQ + kk * 16 + (lane >> 4) * 8));
    KD_UNROLL
    for (int np = 0; np < kMmaBN / 16; ++np) {
      uint32_t bf[4];
      kd::ldmatrix_x4(bf, b + ((np * 16 + (lane >> 4) * 8 + (lane & 7)) * SQ + kk * 16 + ((lane >> 3) & 1) * 8));
      attention_mma::MmaAcc<T>(s[2 * np], af, bf);
      attention_mma::MmaAcc<T>(s[2 * np + 1], af, bf + 2);
    }
  }
}
// acc[NT] += P (16 x 64, the accumulators of NaMmaRowsTimesCells) times
// the cells' rows c [64][SQ] (B via ldmatrix .trans).
template <class T, int SQ, int NT>
KD_DEVICE void NaMmaAccumulateCells(const float p[kMmaBN / 8][4], kd::Ptr<T> c, int lane, float acc[NT][4]) {
  KD_UNROLL
  for (int kk = 0; kk < kMmaBN / 16; ++kk) {
    const uint32_t a[4] = {attention_mma::Pack2<T>(p[2 * kk][0], p[2 * kk][1]), attention_mma::Pack2<T>(p[2 * kk][2], p[2 * kk][3]),
                           attention_mma::Pack2<T>(p[2 * kk + 1][0], p[2 * kk + 1][1]),
                           attention_mma::Pack2<T>(p[2 * kk + 1][2], p[2 * kk + 1][3])};
    const kd::Ptr<T> row = c + (kk * 16 + (lane & 15)) * SQ;
    KD_UNROLL
    for (int np = 0; np < NT / 2; ++np) {
      uint32_t bf[4];
      kd::ldmatrix_x4_trans(bf, row + (np * 16 + (lane >> 4) * 8));
      attention_mma::MmaAcc<T>(acc[2 * np], a, bf);
      attention_mma::MmaAcc<T>(acc[2 * np + 1], a, bf + 2);
    }
  }
}

template <class T, int DK>
KD_GLOBAL void KD_LAUNCH_BOUNDS(kMmaThreads)
    NaBwdQMmaKernel(kd::Ptr<const T> q, kd::Ptr<const T> k, kd::Ptr<const T> v, kd::Ptr<const T> dout,
                    kd::Ptr<const float> lse, kd::Ptr<const float> dvec, kd::Ptr<T> dq, NaDev p) {
  constexpr int SQ = DK + 8, KS = DK / 16, NT = DK / 8, QT = kTH * kTW;
  KD_DYNAMIC_SHARED(T, smem);
  const kd::Ptr<T> qs = smem, gs = smem + QT * SQ;        // [64][SQ] each: q, dO
  const kd::Ptr<T> ks = smem + 2 * QT * SQ;               // [2][kMmaBN][SQ]
  const kd::Ptr<T> vs = smem + (2 * QT + 2 * kMmaBN) * SQ;  // [2][kMmaBN][SQ]
  const NaTile t = TileOf(p, kd::blockIdx.x);
  if (t.empty) return;
  const int h = int(kd::blockIdx.y);
  const int64_t bi = kd::blockIdx.z;
  const int tid = int(kd::threadIdx.x), lane = tid & 31, warp = tid >> 5, g = lane >> 2, tq = lane & 3;
  const int d = p.head_dim;
  const NaHalo hl = QueryTileHalo(p, t);
  const int ncols = hl.c1 - hl.c0, cells = (hl.r1 - hl.r0) * ncols;
  const int ntiles = (cells + kMmaBN - 1) / kMmaBN;

  if (DK > d) {  // columns [d, DK) of q, dO and both K / V stages read zeros
    const int pad = DK - d;
    for (int e = tid; e < (2 * QT + 4 * kMmaBN) * pad; e += kMmaThreads)
      kd::StoreF(smem, (e / pad) * SQ + d + e % pad, 0.f);
  }
  for (int e = tid; e < QT * (d / 8); e += kMmaThreads) {
    const int qi = e / (d / 8), ch = (e % (d / 8)) * 8, a = t.a0 + qi / kTW, b = t.b0 + qi % kTW;
    const bool in = a < t.a1 && b < t.b1;
    const int64_t gq = in ? CellOffset(p, t, bi, h, a, b) : CellOffset(p, t, bi, h, 0, 0);
    kd::cp_async_zfill<16>(qs + (qi * SQ + ch), q + (gq + ch), in ? 16 : 0);
    kd::cp_async_zfill<16>(gs + (qi * SQ + ch), dout + (gq + ch), in ? 16 : 0);
  }
  NaLoadCellsAsync<T, SQ>(p, t, bi, h, hl.r0, hl.c0, ncols, cells, 0, k, ks);
  NaLoadCellsAsync<T, SQ>(p, t, bi, h, hl.r0, hl.c0, ncols, cells, 0, v, vs);
  kd::cp_async_commit();

  int wr[2], wc[2];
  bool act[2];
  float lse2[2], dd[2];
  KD_UNROLL
  for (int r = 0; r < 2; ++r) {
    const int a = t.a0 + 2 * warp + r, b = t.b0 + g;
    act[r] = a < t.a1 && b < t.b1;
    const int ac = a < t.a1 ? a : t.a1 - 1, bc = b < t.b1 ? b : t.b1 - 1;  // a valid cell's row
    wr[r] = GridStart(ac, t.lh, p.kh) - hl.r0;
    wc[r] = GridStart(bc, t.lw, p.kw) - hl.c0;
    const int64_t row = CellRow(p, t, bi, h, ac, bc);
    lse2[r] = float(lse[row]) * kLog2e;
    dd[r] = float(dvec[row]);
  }
  const int ra = t.a0 + 2 * warp < t.a1 ? t.a0 + 2 * warp : t.a1 - 1;
  const int rb = t.a0 + 2 * warp + 1 < t.a1 ? t.a0 + 2 * warp + 1 : t.a1 - 1;
  const int warp_r0 = GridStart(ra, t.lh, p.kh) - hl.r0, warp_r1 = GridStart(rb, t.lh, p.kh) - hl.r0 + p.kh;

  float acc[NT][4];
  KD_UNROLL
  for (int n = 0; n < NT; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;

  for (int tile = 0; tile < ntiles; ++tile) {
    const int buf = tile & 1;
    if (tile + 1 < ntiles) {
      NaLoadCellsAsync<T, SQ>(p, t, bi, h, hl.r0, hl.c0, ncols, cells, (tile + 1) * kMmaBN, k,
                              ks + (buf ^ 1) * kMmaBN * SQ);
      NaLoadCellsAsync<T, SQ>(p, t, bi, h, hl.r0, hl.c0, ncols, cells, (tile + 1) * kMmaBN, v,
                              vs + (buf ^ 1) * kMmaBN * SQ);
      kd::cp_async_commit();
      kd::cp_async_wait<1>();
    } else {
      kd::cp_async_wait<0>();
    }
    kd::syncthreads();
    const int j0 = tile * kMmaBN;
    const int last = (j0 + kMmaBN < cells ? j0 + kMmaBN : cells) - 1;
    if (j0 / ncols < warp_r1 && last / ncols >= warp_r0) {
      const kd::Ptr<T> kt = ks + buf * kMmaBN * SQ, vt = vs + buf * kMmaBN * SQ;
      float s[kMmaBN / 8][4], dp[kMmaBN / 8][4];
      NaMmaRowsTimesCells<T, SQ, KS>(qs + warp * 16 * SQ, kt, lane, s);
      NaMmaRowsTimesCells<T, SQ, KS>(gs + warp * 16 * SQ, vt, lane, dp);
      KD_UNROLL
      for (int n = 0; n < kMmaBN / 8; ++n) {
        KD_UNROLL
        for (int e2 = 0; e2 < 2; ++e2) {
          const int j = j0 + n * 8 + 2 * tq + e2, cr = j / ncols, cc = j % ncols;
          KD_UNROLL
          for (int r = 0; r < 2; ++r) {
            const bool vis = j < cells && cr >= wr[r] && cr < wr[r] + p.kh && cc >= wc[r] && cc < wc[r] + p.kw;
            const int e = 2 * r + e2;
            const float pr = vis ? exp2f(s[n][e] * p.scale_log2 - lse2[r]) : 0.f;
            s[n][e] = pr * (dp[n][e] - dd[r]);  // dS
          }
        }
      }
      NaMmaAccumulateCells<T, SQ, NT>(s, kt, lane, acc);
    }
    kd::syncthreads();
  }

  KD_UNROLL
  for (int r = 0; r < 2; ++r) {
    if (!act[r]) continue;
    const int64_t base = CellOffset(p, t, bi, h, t.a0 + 2 * warp + r, t.b0 + g);
    KD_UNROLL
    for (int n = 0; n < NT; ++n) {
      const int c = n * 8 + 2 * tq;
      if (c < d) kd::StoreF(dq, base + c, acc[n][2 * r] * p.scale);
      if (c + 1 < d) kd::StoreF(dq, base + c + 1, acc[n][2 * r + 1] * p.scale);
    }
  }
}

// The queries of a grid axis (length len, kernel k) whose window meets the
// key cells [a0, a1): [lo, hi). Windows are monotone in the query, and a
// query's window contains the query itself, so the candidates lie within
// k - 1 cells of the keys.
struct NaRange {
  int lo, hi;
};
KD_HD NaRange InverseRange(int a0, int a1, int len, int k) {
  const int c0 = a0 - k + 1 > 0 ? a0 - k + 1 : 0, c1 = a1 - 1 + k < len ? a1 - 1 + k : len;
  NaRange r{c1, c0};
  for (int i = c0; i < c1; ++i) {
    const int s = GridStart(i, len, k);
    if (s + k > a0 && s < a1) {
      r.lo = i < r.lo ? i : r.lo;
      r.hi = i + 1;
    }
  }
  return r;
}

// dK, dV over each key's inverse neighbourhood: a tile of keys stages the
// queries that can reach it, chunked by query rows; per staged cell q (ds
// floats), dO (ds floats), lse * log2 e and D.
template <class T, int CPT>
KD_GLOBAL void KD_LAUNCH_BOUNDS(kThreads)
    NaBwdKvKernel(kd::Ptr<const T> q, kd::Ptr<const T> k, kd::Ptr<const T> v, kd::Ptr<const T> dout,
                  kd::Ptr<const float> lse, kd::Ptr<const float> dvec, kd::Ptr<T> dk, kd::Ptr<T> dv, NaDev p) {
  KD_DYNAMIC_SHARED(float, smem);
  const NaTile t = TileOf(p, kd::blockIdx.x);
  if (t.empty) return;
  const int h = int(kd::blockIdx.y);
  const int64_t bi = kd::blockIdx.z;
  const int tid = int(kd::threadIdx.x), l = tid % kG, ki = tid / kG;
  const int a = t.a0 + ki / kTW, b = t.b0 + ki % kTW;
  const bool active = a < t.a1 && b < t.b1;
  const NaRange rr = InverseRange(t.a0, t.a1, t.lh, p.kh), rc = InverseRange(t.b0, t.b1, t.lw, p.kw);
  const int d = p.head_dim, cells = p.chunk_rows * p.halo_w;
  const kd::Ptr<float> qs = smem, gs = smem + cells * p.ds, ls = smem + 2 * cells * p.ds, dsv = ls + cells;
  const int64_t base = active ? CellOffset(p, t, bi, h, a, b) : 0;
  const unsigned mask = GroupMask();
  // The key's candidate query columns (halo-relative) [x0, x1).
  const int x0 = (b - p.kw + 1 > rc.lo ? b - p.kw + 1 : rc.lo) - rc.lo;
  const int x1 = (b + p.kw < rc.hi ? b + p.kw : rc.hi) - rc.lo;

  float kr[CPT], vr[CPT], gk[CPT], gv[CPT];
  KD_UNROLL
  for (int i = 0; i < CPT; ++i) {
    const int c = l + kG * i;
    kr[i] = active && c < d ? kd::LoadF(k, base + c) * p.scale_log2 : 0.f;
    vr[i] = active && c < d ? kd::LoadF(v, base + c) : 0.f;
    gk[i] = gv[i] = 0.f;
  }
  for (int r0 = rr.lo; r0 < rr.hi; r0 += p.chunk_rows) {
    const int r1 = r0 + p.chunk_rows < rr.hi ? r0 + p.chunk_rows : rr.hi;
    kd::syncthreads();
    StageCells<T>(p, t, bi, h, r0, r1, rc.lo, rc.hi, q, dout, qs, gs);
    const int ncols = rc.hi - rc.lo;
    for (int e = int(kd::threadIdx.x); e < (r1 - r0) * ncols; e += kThreads) {
      const int r = e / ncols, c = e % ncols, s = r * p.halo_w + c;
      const int64_t row = CellRow(p, t, bi, h, r0 + r, rc.lo + c);
      ls[s] = float(lse[row]) * kLog2e;
      dsv[s] = float(dvec[row]);
    }
    kd::syncthreads();
    if (!active) continue;
    const int y0 = a - p.kh + 1 > r0 ? a - p.kh + 1 : r0, y1 = a + p.kh < r1 ? a + p.kh : r1;
    for (int y = y0; y < y1; ++y) {
      const int sy = GridStart(y, t.lh, p.kh);
      if (a < sy || a >= sy + p.kh) continue;  // the key is outside query row y's window
      for (int x = x0; x < x1; ++x) {
        const int sx = GridStart(rc.lo + x, t.lw, p.kw);
        if (b < sx || b >= sx + p.kw) continue;
        const int s = (y - r0) * p.halo_w + x, cell = s * p.ds;
        float sc = 0.f, dp = 0.f;
        KD_UNROLL
        for (int i = 0; i < CPT; ++i) {
          const int c = l + kG * i;
          if (c < d) {
            sc = fmaf(kr[i], float(qs[cell + c]), sc);
            dp = fmaf(vr[i], float(gs[cell + c]), dp);
          }
        }
        sc = GroupSum(sc, mask);
        dp = GroupSum(dp, mask);
        const float pr = exp2f(sc - float(ls[s]));
        const float dsc = pr * (dp - float(dsv[s]));
        KD_UNROLL
        for (int i = 0; i < CPT; ++i) {
          const int c = l + kG * i;
          if (c < d) {
            gv[i] = fmaf(pr, float(gs[cell + c]), gv[i]);
            gk[i] = fmaf(dsc, float(qs[cell + c]), gk[i]);
          }
        }
      }
    }
  }
  if (!active) return;
  KD_UNROLL
  for (int i = 0; i < CPT; ++i) {
    const int c = l + kG * i;
    if (c < d) {
      kd::StoreF(dk, base + c, gk[i] * p.scale);
      kd::StoreF(dv, base + c, gv[i]);
    }
  }
}

// dK, dV on tensor cores (f16/bf16, the forward's conditions): a CTA owns an
// 8 x 8 tile of keys (4 warps x 16 keys) and streams the cells of its
// inverse-neighbourhood query halo (InverseRange per axis) in 64-cell
// tiles with their lse and D; per tile S^T = K Q^T and dP^T = V dO^T, then
// P^T = exp2(S^T - lse) and dS^T = P^T (dP^T - D) masked to the pairs whose
// query window contains the key, dV += P^T dO and dK += dS^T Q (mma with f32
// accumulators; P and dS rounded to the storage type for the products).
constexpr size_t NaBwdKvMmaSmemBytes(int dk) {
  return size_t(2 * kTH * kTW + 4 * kMmaBN) * size_t(dk + 8) * 2 + 4 * kMmaBN * sizeof(float);
}

template <class T, int DK>
KD_GLOBAL void KD_LAUNCH_BOUNDS(kMmaThreads)
    NaBwdKvMmaKernel(kd::Ptr<const T> q, kd::Ptr<const T> k, kd::Ptr<const T> v, kd::Ptr<const T> dout,
                     kd::Ptr<const float> lse, kd::Ptr<const float> dvec, kd::Ptr<T> dk, kd::Ptr<T> dv, NaDev p) {
  constexpr int SQ = DK + 8, KS = DK / 16, NT = DK / 8, KT = kTH * kTW;
  KD_DYNAMIC_SHARED(T, smem);
  const kd::Ptr<T> ks = smem, vs = smem + KT * SQ;          // [64][SQ] each: the key tile's k, v
  const kd::Ptr<T> qs = smem + 2 * KT * SQ;                 // [2][kMmaBN][SQ] query cells
  const kd::Ptr<T> gs = smem + (2 * KT + 2 * kMmaBN) * SQ;  // [2][kMmaBN][SQ] their dO
  const kd::Ptr<float> ls = kd::ptr_cast<float>(smem + (2 * KT + 4 * kMmaBN) * SQ);  // [2][kMmaBN] lse log2 e
  const kd::Ptr<float> dsv = ls + 2 * kMmaBN;                                       // [2][kMmaBN] D
  const NaTile t = TileOf(p, kd::blockIdx.x);
  if (t.empty) return;
  const int h = int(kd::blockIdx.y);
  const int64_t bi = kd::blockIdx.z;
  const int tid = int(kd::threadIdx.x), lane = tid & 31, warp = tid >> 5, g = lane >> 2, tq = lane & 3;
  const int d = p.head_dim;
  const NaRange rr = InverseRange(t.a0, t.a1, t.lh, p.kh), rc = InverseRange(t.b0, t.b1, t.lw, p.kw);
  const int ncols = rc.hi - rc.lo, cells = (rr.hi - rr.lo) * ncols;
  const int ntiles = (cells + kMmaBN - 1) / kMmaBN;

  if (DK > d) {  // columns [d, DK) of k, v and both query / dO stages read zeros
    const int pad = DK - d;
    for (int e = tid; e < (2 * KT + 4 * kMmaBN) * pad; e += kMmaThreads)
      kd::StoreF(smem, (e / pad) * SQ + d + e % pad, 0.f);
  }
  for (int e = tid; e < KT * (d / 8); e += kMmaThreads) {
    const int ki = e / (d / 8), ch = (e % (d / 8)) * 8, a = t.a0 + ki / kTW, b = t.b0 + ki % kTW;
    const bool in = a < t.a1 && b < t.b1;
    const int64_t gk = in ? CellOffset(p, t, bi, h, a, b) : CellOffset(p, t, bi, h, 0, 0);
    kd::cp_async_zfill<16>(ks + (ki * SQ + ch), k + (gk + ch), in ? 16 : 0);
    kd::cp_async_zfill<16>(vs + (ki * SQ + ch), v + (gk + ch), in ? 16 : 0);
  }
  // One query-cell tile (q, dO by cp.async; lse, D by plain loads) into stage st.
  auto stage = [&](int tile, int st) {
    const int j0 = tile * kMmaBN;
    NaLoadCellsAsync<T, SQ>(p, t, bi, h, rr.lo, rc.lo, ncols, cells, j0, q, qs + st * kMmaBN * SQ);
    NaLoadCellsAsync<T, SQ>(p, t, bi, h, rr.lo, rc.lo, ncols, cells, j0, dout, gs + st * kMmaBN * SQ);
    for (int e = tid; e < kMmaBN; e += kMmaThreads) {
      const int j = j0 + e;
      float lv = 0.f, dvv = 0.f;
      if (j < cells) {
        const int64_t row = CellRow(p, t, bi, h, rr.lo + j / ncols, rc.lo + j % ncols);
        lv = float(lse[row]) * kLog2e;
        dvv = float(dvec[row]);
      }
      ls[st * kMmaBN + e] = lv;
      dsv[st * kMmaBN + e] = dvv;
    }
  };
  stage(0, 0);
  kd::cp_async_commit();

  // This lane's two keys (rows g and g + 8 of the warp's 16): tile row
  // 2 warp + r, column g; cells outside the grid act as the nearest valid key.
  int ka[2], kb[2];
  bool act[2];
  KD_UNROLL
  for (int r = 0; r < 2; ++r) {
    const int a = t.a0 + 2 * warp + r, b = t.b0 + g;
    act[r] = a < t.a1 && b < t.b1;
    ka[r] = a < t.a1 ? a : t.a1 - 1;
    kb[r] = b < t.b1 ? b : t.b1 - 1;
  }
  // Query rows that can reach the warp's keys (warp-uniform), halo-relative.
  const int ra = t.a0 + 2 * warp < t.a1 ? t.a0 + 2 * warp : t.a1 - 1;
  const int rb = t.a0 + 2 * warp + 1 < t.a1 ? t.a0 + 2 * warp + 1 : t.a1 - 1;
  const int warp_r0 = ra - p.kh + 1 - rr.lo, warp_r1 = rb + p.kh - rr.lo;

  float gk[NT][4], gv[NT][4];
  KD_UNROLL
  for (int n = 0; n < NT; ++n) {
    gk[n][0] = gk[n][1] = gk[n][2] = gk[n][3] = 0.f;
    gv[n][0] = gv[n][1] = gv[n][2] = gv[n][3] = 0.f;
  }

  for (int tile = 0; tile < ntiles; ++tile) {
    const int buf = tile & 1;
    if (tile + 1 < ntiles) {
      stage(tile + 1, buf ^ 1);
      kd::cp_async_commit();
      kd::cp_async_wait<1>();
    } else {
      kd::cp_async_wait<0>();
    }
    kd::syncthreads();
    const int j0 = tile * kMmaBN;
    const int last = (j0 + kMmaBN < cells ? j0 + kMmaBN : cells) - 1;
    if (j0 / ncols < warp_r1 && last / ncols >= warp_r0) {
      const kd::Ptr<T> qt = qs + buf * kMmaBN * SQ, gt = gs + buf * kMmaBN * SQ;
      float s[kMmaBN / 8][4], dp[kMmaBN / 8][4];
      NaMmaRowsTimesCells<T, SQ, KS>(ks + warp * 16 * SQ, qt, lane, s);
      NaMmaRowsTimesCells<T, SQ, KS>(vs + warp * 16 * SQ, gt, lane, dp);
      KD_UNROLL
      for (int n = 0; n < kMmaBN / 8; ++n) {
        KD_UNROLL
        for (int e2 = 0; e2 < 2; ++e2) {
          const int jl = n * 8 + 2 * tq + e2, j = j0 + jl;
          const int qa = rr.lo + j / ncols, qb = rc.lo + j % ncols;
          const int sy = GridStart(qa, t.lh, p.kh), sx = GridStart(qb, t.lw, p.kw);
          const float l2 = float(ls[buf * kMmaBN + jl]), dd = float(dsv[buf * kMmaBN + jl]);
          KD_UNROLL
          for (int r = 0; r < 2; ++r) {
            const bool vis = j < cells && ka[r] >= sy && ka[r] < sy + p.kh && kb[r] >= sx && kb[r] < sx + p.kw;
            const int e = 2 * r + e2;
            const float pr = vis ? exp2f(s[n][e] * p.scale_log2 - l2) : 0.f;
            s[n][e] = pr;                    // P^T
            dp[n][e] = pr * (dp[n][e] - dd);  // dS^T
          }
        }
      }
      NaMmaAccumulateCells<T, SQ, NT>(s, gt, lane, gv);
      NaMmaAccumulateCells<T, SQ, NT>(dp, qt, lane, gk);
    }
    kd::syncthreads();
  }

  KD_UNROLL
  for (int r = 0; r < 2; ++r) {
    if (!act[r]) continue;
    const int64_t base = CellOffset(p, t, bi, h, ka[r], kb[r]);
    KD_UNROLL
    for (int n = 0; n < NT; ++n) {
      const int c = n * 8 + 2 * tq;
      if (c < d) {
        kd::StoreF(dk, base + c, gk[n][2 * r] * p.scale);
        kd::StoreF(dv, base + c, gv[n][2 * r]);
      }
      if (c + 1 < d) {
        kd::StoreF(dk, base + c + 1, gk[n][2 * r + 1] * p.scale);
        kd::StoreF(dv, base + c + 1, gv[n][2 * r + 1]);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Launch geometry (host; shared by the launchers and the interpreted test).

struct NaLaunch {
  kd::Dim3 grid, block;
  size_t smem = 0;  // dynamic shared bytes; above 48 KiB the launcher opts in
  NaDev dev;
};

// Calls f(std::integral_constant<int, CPT>{}) with the smallest instantiated
// channels-per-thread bound that covers head dim d (4 * CPT >= d).
template <class F> Status WithCpt(int64_t d, F&& f) {
  if (d <= 32) return f(std::integral_constant<int, 8>{});
  if (d <= 64) return f(std::integral_constant<int, 16>{});
  if (d <= 96) return f(std::integral_constant<int, 24>{});
  if (d <= 128) return f(std::integral_constant<int, 32>{});
  if (d <= kMaxHeadDim) return f(std::integral_constant<int, 64>{});
  return absl::InvalidArgumentError(
      absl::StrCat("neighborhood_attention: the CUDA kernels support head dims up to ", kMaxHeadDim, ", got ", d));
}

// The device geometry and tile grid shared by the three tiled kernels:
// halo_w cells per staged row, each 2 * ds floats (two f32 rows of d
// channels) plus `extra_floats`; chunks of at most max_rows rows within
// kSmemBudget (at least one row, within kMaxSmem).
inline StatusOr<NaLaunch> NaTiledPlan(absl::string_view op, const NaParams& p, int elem_bytes, bool vec_ok,
                                      int halo_w, int max_rows, int extra_floats) {
  CF_CHECK_ARG(p.head_dim >= 1 && p.head_dim <= kMaxHeadDim, op, ": the CUDA kernels support head dims 1..",
               kMaxHeadDim, ", got ", p.head_dim, " (", p.ToString(), ")");
  CF_CHECK_ARG(p.heads <= 65535 && p.batch <= 65535, op, ": heads ", p.heads, " and batch ", p.batch,
               " must be <= 65535 (CUDA grid y / z limits; ", p.ToString(), ")");
  CF_CHECK_ARG(p.height <= (int64_t{1} << 30) && p.width <= (int64_t{1} << 30) && p.channels() <= (int64_t{1} << 30),
               op, ": map too large for 32-bit grid coordinates (", p.ToString(), ")");
  NaLaunch l;
  NaDev& d = l.dev;
  d.batch = p.batch;
  d.height = int(p.height);
  d.width = int(p.width);
  d.heads = int(p.heads);
  d.head_dim = int(p.head_dim);
  d.channels = int(p.channels());
  d.kh = int(p.kh);
  d.kw = int(p.kw);
  d.dh = int(p.dh);
  d.dw = int(p.dw);
  d.tiles_h = int((GridLen(d.height, 0, d.dh) + kTH - 1) / kTH);
  d.tiles_w = int((GridLen(d.width, 0, d.dw) + kTW - 1) / kTW);
  d.halo_w = halo_w;
  d.ds = d.head_dim | 1;
  const int v = 16 / elem_bytes;
  d.vec = vec_ok && d.head_dim % v == 0 && d.channels % v == 0 ? v : 1;
  d.scale = float(p.scale);
  d.scale_log2 = float(p.scale * 1.4426950408889634);
  const size_t row_bytes = size_t(halo_w) * (2 * size_t(d.ds) + size_t(extra_floats)) * 4;
  const size_t fit = kSmemBudget / row_bytes;
  d.chunk_rows = int(fit < 1 ? 1 : fit < size_t(max_rows) ? fit : size_t(max_rows));
  l.smem = row_bytes * size_t(d.chunk_rows);
  CF_CHECK_ARG(l.smem <= kMaxSmem, op, ": needs ", l.smem, " bytes of shared memory per block (", p.ToString(), ")");
  const int64_t blocks = int64_t(d.dh) * d.dw * d.tiles_h * d.tiles_w;
  CF_CHECK_ARG(blocks <= 0x7fffffff, op, ": too many tiles for the CUDA grid (", p.ToString(), ")");
  l.grid = kd::Dim3(unsigned(blocks < 1 ? 1 : blocks), unsigned(p.heads), unsigned(p.batch));
  l.block = kd::Dim3(kThreads);
  return l;
}

// The forward (and dQ) plan: halos of at most (8 + K_h - 1) x (8 + K_w - 1)
// cells, K and V per cell. elem_bytes is sizeof the storage type; vec_ok says
// every base pointer is 16-byte aligned.
inline StatusOr<NaLaunch> NaFwdPlanFor(const NaParams& p, int elem_bytes, bool vec_ok) {
  return NaTiledPlan("neighborhood_attention", p, elem_bytes, vec_ok, kTW + int(p.kw) - 1, kTH + int(p.kh) - 1, 0);
}

// The tensor-core forward: f16/bf16 storage, d % 8 == 0 (16-byte cells)
// up to 160, 16-byte aligned views. WithMmaDk calls
// f(std::integral_constant<int, DK>) with the k16-padded head-dim bucket.
constexpr int kMmaMaxHeadDim = 160;
inline bool NaUseMma(DType dtype, int64_t d, bool aligned16) {
  return dtype != DType::f32 && aligned16 && d % 8 == 0 && d <= kMmaMaxHeadDim;
}
inline int NaMmaDk(int64_t d) { return d <= 48 ? 48 : d <= 64 ? 64 : d <= 80 ? 80 : d <= 128 ? 128 : 160; }
template <class F> Status WithMmaDk(int64_t d, F&& f) {
  if (d <= 48) return f(std::integral_constant<int, 48>{});
  if (d <= 64) return f(std::integral_constant<int, 64>{});
  if (d <= 80) return f(std::integral_constant<int, 80>{});
  if (d <= 128) return f(std::integral_constant<int, 128>{});
  if (d <= kMmaMaxHeadDim) return f(std::integral_constant<int, 160>{});
  return absl::InvalidArgumentError(absl::StrCat("neighborhood_attention: no tensor-core kernel for head dim ", d));
}
// The plan of NaFwdMmaKernel: the tile grid of NaFwdPlanFor, 128 threads,
// the staged Q tile and two K / V cell stages.
inline StatusOr<NaLaunch> NaFwdMmaPlanFor(const NaParams& p, int elem_bytes) {
  CF_CHECK_ARG(elem_bytes == 2 && p.head_dim % 8 == 0 && p.head_dim <= kMmaMaxHeadDim,
               "neighborhood_attention: the tensor-core kernel needs f16/bf16 and d % 8 == 0, d <= 160 (",
               p.ToString(), ")");
  CF_ASSIGN_OR_RETURN(NaLaunch l, NaFwdPlanFor(p, elem_bytes, true));
  l.block = kd::Dim3(kMmaThreads);
  l.smem = NaMmaSmemBytes(NaMmaDk(p.head_dim));
  return l;
}

struct NaBwdPlan {
  NaLaunch dq, kv;  // NaBwdQMmaKernel's and NaBwdKvMmaKernel's geometry when mma
  bool mma = false;
  kd::Dim3 dot_grid, dot_block;
  int64_t dot_rows = 0;  // B * H * W * heads
};
// The backward plan: the dot pre-kernel, dQ with the forward's halo, and dK /
// dV whose query halo spans up to 8 + 2 (K - 1) cells per axis (the border
// windows all clamp onto the edge keys), with lse and D per cell.
// With mma (NaUseMma's conditions, dout aligned too) dQ and dK / dV run on
// tensor cores.
inline StatusOr<NaBwdPlan> NaBwdPlanFor(const NaParams& p, int elem_bytes, bool vec_ok, bool mma = false) {
  NaBwdPlan b;
  constexpr char kOp[] = "neighborhood_attention_backward";
  CF_ASSIGN_OR_RETURN(b.dq, NaTiledPlan(kOp, p, elem_bytes, vec_ok, kTW + int(p.kw) - 1, kTH + int(p.kh) - 1, 0));
  if (mma) {
    CF_CHECK_ARG(elem_bytes == 2 && vec_ok && p.head_dim % 8 == 0 && p.head_dim <= kMmaMaxHeadDim, kOp,
                 ": the tensor-core kernel needs aligned f16/bf16 and d % 8 == 0, d <= 160 (", p.ToString(), ")");
    b.mma = true;
    b.dq.block = kd::Dim3(kMmaThreads);
    b.dq.smem = NaBwdQMmaSmemBytes(NaMmaDk(p.head_dim));
  }
  CF_ASSIGN_OR_RETURN(b.kv, NaTiledPlan(kOp, p, elem_bytes, vec_ok, kTW + 2 * (int(p.kw) - 1),
                                        kTH + 2 * (int(p.kh) - 1), 2));
  if (mma) {
    b.kv.block = kd::Dim3(kMmaThreads);
    b.kv.smem = NaBwdKvMmaSmemBytes(NaMmaDk(p.head_dim));
  }
  b.dot_rows = p.batch * p.tokens() * p.heads;
  const int64_t blocks = (b.dot_rows + kDotWarps - 1) / kDotWarps;
  CF_CHECK_ARG(blocks <= 0x7fffffff, kOp, ": ", b.dot_rows, " rows exceed the CUDA grid x limit");
  b.dot_grid = kd::Dim3(unsigned(blocks < 1 ? 1 : blocks));
  b.dot_block = kd::Dim3(32 * kDotWarps);
  return b;
}

}  // namespace cf::na_kernels

// ---------------------------------------------------------------------------
// The launchers (nvcc only): declared for neighborhood_cuda.cu, defined in
// the per-dtype TUs neighborhood_cuda_<dtype>.cu (CF_NA_DEFINE_LAUNCHERS).
#if defined(__CUDACC__) && !KD_INTERP
#include <cuda_runtime.h>

namespace cf {

// Device pointers of one "neighborhood_attention" call (T storage).
struct NaFwdArgs {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* out = nullptr;
  float* lse = nullptr;
};
// Device pointers of one backward call; dlse may be null; dvec is f32
// scratch of B * H * W * heads floats.
struct NaBwdArgs {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const void* out = nullptr;
  const float* lse = nullptr;
  const void* dout = nullptr;
  const float* dlse = nullptr;
  void* dq = nullptr;
  void* dk = nullptr;
  void* dv = nullptr;
  float* dvec = nullptr;
};

// T in {float, __half, __nv_bfloat16}.
template <class T> Status NaForwardCuda(const NaParams& p, const NaFwdArgs& a, cudaStream_t stream);
template <class T> Status NaBackwardCuda(const NaParams& p, const NaBwdArgs& a, cudaStream_t stream);

}  // namespace cf

#define CF_NA_INSTANTIATE(T)                                                              \
  template Status NaForwardCuda<T>(const NaParams&, const NaFwdArgs&, cudaStream_t);     \
  template Status NaBackwardCuda<T>(const NaParams&, const NaBwdArgs&, cudaStream_t);
#endif

#if defined(CF_NA_DEFINE_LAUNCHERS) && defined(__CUDACC__) && !KD_INTERP
#include "ops/cuda_util.cuh"

namespace cf {
namespace na_kernels {

// Raises a kernel's dynamic shared-memory limit past 48 KiB. Plans of one
// instantiation differ in size (K, d), so the limit is always set to the
// most any plan may ask for: concurrent callers cannot lower it below what
// another's launch needs.
template <class Kernel> Status NaOptInSmem(Kernel kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return absl::OkStatus();
  CF_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kMaxSmem)));
  return absl::OkStatus();
}
inline bool NaAligned16(std::initializer_list<const void*> ps) {
  for (const void* p : ps)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

}  // namespace na_kernels

template <class T> Status NaForwardCuda(const NaParams& p, const NaFwdArgs& a, cudaStream_t stream) {
  using namespace na_kernels;
  if (p.batch == 0 || p.tokens() == 0 || p.heads == 0) return absl::OkStatus();
  const bool aligned = NaAligned16({a.q, a.k, a.v});
  const T* q = static_cast<const T*>(a.q);
  const T* k = static_cast<const T*>(a.k);
  const T* v = static_cast<const T*>(a.v);
  T* out = static_cast<T*>(a.out);
  if constexpr (!std::is_same_v<T, float>) {
    if (NaUseMma(DTypeOf<T>::value, p.head_dim, aligned)) {
      CF_ASSIGN_OR_RETURN(NaLaunch l, NaFwdMmaPlanFor(p, int(sizeof(T))));
      return WithMmaDk(p.head_dim, [&](auto dk) -> Status {
        constexpr int DK = decltype(dk)::value;
        CF_RETURN_IF_ERROR(NaOptInSmem(NaFwdMmaKernel<T, DK>, l.smem));
        NaFwdMmaKernel<T, DK><<<l.grid, l.block, l.smem, stream>>>(q, k, v, out, a.lse, l.dev);
        CF_CUDA_CHECK_LAUNCH();
        return absl::OkStatus();
      });
    }
  }
  CF_ASSIGN_OR_RETURN(NaLaunch l, NaFwdPlanFor(p, int(sizeof(T)), aligned));
  return WithCpt(p.head_dim, [&](auto cpt) -> Status {
    constexpr int CPT = decltype(cpt)::value;
    CF_RETURN_IF_ERROR(NaOptInSmem(NaFwdKernel<T, CPT>, l.smem));
    NaFwdKernel<T, CPT><<<l.grid, l.block, l.smem, stream>>>(q, k, v, out, a.lse, l.dev);
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

template <class T> Status NaBackwardCuda(const NaParams& p, const NaBwdArgs& a, cudaStream_t stream) {
  using namespace na_kernels;
  if (p.batch == 0 || p.tokens() == 0 || p.heads == 0) return absl::OkStatus();
  const bool aligned = NaAligned16({a.q, a.k, a.v, a.dout});
  const bool mma = NaUseMma(DTypeOf<T>::value, p.head_dim, aligned);
  CF_ASSIGN_OR_RETURN(NaBwdPlan bp, NaBwdPlanFor(p, int(sizeof(T)), aligned, mma));
  const T* q = static_cast<const T*>(a.q);
  const T* k = static_cast<const T*>(a.k);
  const T* v = static_cast<const T*>(a.v);
  const T* dout = static_cast<const T*>(a.dout);
  NaBwdDotKernel<T><<<bp.dot_grid, bp.dot_block, 0, stream>>>(static_cast<const T*>(a.out), dout, a.dlse, a.dvec,
                                                                bp.dot_rows, int(p.heads), int(p.head_dim));
  CF_CUDA_CHECK_LAUNCH();
  if constexpr (!std::is_same_v<T, float>) {
    if (bp.mma) {
      CF_RETURN_IF_ERROR(WithMmaDk(p.head_dim, [&](auto dk) -> Status {
        constexpr int DK = decltype(dk)::value;
        CF_RETURN_IF_ERROR(NaOptInSmem(NaBwdQMmaKernel<T, DK>, bp.dq.smem));
        NaBwdQMmaKernel<T, DK><<<bp.dq.grid, bp.dq.block, bp.dq.smem, stream>>>(q, k, v, dout, a.lse, a.dvec,
                                                                                 static_cast<T*>(a.dq), bp.dq.dev);
        CF_CUDA_CHECK_LAUNCH();
        CF_RETURN_IF_ERROR(NaOptInSmem(NaBwdKvMmaKernel<T, DK>, bp.kv.smem));
        NaBwdKvMmaKernel<T, DK><<<bp.kv.grid, bp.kv.block, bp.kv.smem, stream>>>(
            q, k, v, dout, a.lse, a.dvec, static_cast<T*>(a.dk), static_cast<T*>(a.dv), bp.kv.dev);
        CF_CUDA_CHECK_LAUNCH();
        return absl::OkStatus();
      }));
      return absl::OkStatus();
    }
  }
  return WithCpt(p.head_dim, [&](auto cpt) -> Status {
    constexpr int CPT = decltype(cpt)::value;
    CF_RETURN_IF_ERROR(NaOptInSmem(NaBwdQKernel<T, CPT>, bp.dq.smem));
    NaBwdQKernel<T, CPT><<<bp.dq.grid, bp.dq.block, bp.dq.smem, stream>>>(q, k, v, dout, a.lse, a.dvec,
                                                                           static_cast<T*>(a.dq), bp.dq.dev);
    CF_CUDA_CHECK_LAUNCH();
    CF_RETURN_IF_ERROR(NaOptInSmem(NaBwdKvKernel<T, CPT>, bp.kv.smem));
    NaBwdKvKernel<T, CPT><<<bp.kv.grid, bp.kv.block, bp.kv.smem, stream>>>(
        q, k, v, dout, a.lse, a.dvec, static_cast<T*>(a.dk), static_cast<T*>(a.dv), bp.kv.dev);
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

}  // namespace cf
#endif  // CF_NA_DEFINE_LAUNCHERS
