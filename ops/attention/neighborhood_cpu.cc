// CPU kernels of neighborhood attention (see neighborhood_cpu.h).
//
// Forward with AVX-512 (f32 compute, the (batch, head) pairs filling most of
// 16 lanes): ForwardLanes below, vectorised over 16 pairs at once.
//
// Otherwise (AVX2 or portable), per tile of TI x TJ queries of one (batch,
// head) on one residue subgrid: pack the tile's key/value halo (the union of
// its windows, at most (TI + K_h - 1) x (TJ + K_w - 1) positions) into f32,
// then per query row of the tile: all scores of its TJ queries (QK), their
// softmax, then all outputs (PV), so each phase streams one packed tensor
// through L1.
//
// Backward, from the saved lse (no score tensor):
//   D_i   = <dO_i, O_i> - dlse_i
//   p_ij  = exp(scale <q_i, k_j> - lse_i),  dS_ij = p_ij (<dO_i, v_j> - D_i)
//   dq_i  = scale sum_j dS_ij k_j   (query tiles with a k/v halo, as forward)
//   dk_j  = scale sum_i dS_ij q_i,  dv_j = sum_i p_ij dO_i
//           (key tiles with the halo of queries whose windows hold the keys:
//           the inverse neighbourhood, one contiguous range per axis)
// Each tile writes only its own rows, so the passes are race-free; the key
// pass recomputes p and dS rather than sharing them across threads.
#include "ops/attention/neighborhood_cpu.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <tuple>
#include <utility>
#include <vector>

#include "ops/attention/exp2_avx512.h"
#include "ops/cpu_util.h"
#include "runtime/thread_pool.h"

namespace cf::na_cpu {
namespace {

std::atomic<Kernel> g_kernel{Kernel::kAuto};

bool HasAvx2Fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}
bool CpuHasAvx512() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
  return has;
}

// Tile sizes (queries or keys per tile along H and W): an 8 x 64 tile with
// K = 13 has a 20 x 64 halo on a 64-wide map, 200 KiB per packed tensor at
// d = 40 (L2), packed 2.5 times per query instead of K*K reads from memory.
constexpr int64_t kTileRows = 8;
constexpr int64_t kTileCols = 64;

// ---- geometry ----------------------------------------------------------------

// One axis: positions x in [0, len) split by x % dil into subgrids; grid
// index g = x / dil. For every position, the grid index where its window
// starts and the grid range [inv_lo, inv_hi) of the queries whose windows
// hold it as a key.
struct Axis {
  int64_t len = 0, k = 0, dil = 1;
  std::vector<int64_t> start, inv_lo, inv_hi;

  int64_t Pos(int64_t r, int64_t g) const { return r + g * dil; }
  int64_t GridLen(int64_t r) const { return (len - r + dil - 1) / dil; }
};

Axis MakeAxis(int64_t len, int64_t k, int64_t dil) {
  Axis a{len, k, dil, std::vector<int64_t>(len), std::vector<int64_t>(len, std::numeric_limits<int64_t>::max()),
         std::vector<int64_t>(len, -1)};
  for (int64_t x = 0; x < len; ++x) {
    const int64_t r = x % dil, g = x / dil;
    a.start[x] = (NaParams::WindowStart(x, len, k, dil) - r) / dil;
    // Window starts are nondecreasing in g, so the queries holding one key
    // form a contiguous range; min/max over the windows finds it.
    for (int64_t t = 0; t < k; ++t) {
      const int64_t key = a.Pos(r, a.start[x] + t);
      a.inv_lo[key] = std::min(a.inv_lo[key], g);
      a.inv_hi[key] = std::max(a.inv_hi[key], g + 1);
    }
  }
  return a;
}

// A run of n consecutive grid indices from g0 on subgrid r.
struct Run {
  int64_t r = 0, g0 = 0, n = 0;
};
std::vector<Run> Runs(const Axis& a, int64_t tile) {
  std::vector<Run> runs;
  for (int64_t r = 0; r < std::min(a.dil, a.len); ++r)
    for (int64_t g0 = 0, L = a.GridLen(r); g0 < L; g0 += tile) runs.push_back({r, g0, std::min(tile, L - g0)});
  return runs;
}
// The key grid range of a run of queries, and the query grid range of a run of keys.
Run KeyHalo(const Axis& a, const Run& q) {
  const int64_t lo = a.start[a.Pos(q.r, q.g0)], hi = a.start[a.Pos(q.r, q.g0 + q.n - 1)] + a.k;
  return {q.r, lo, hi - lo};
}
Run QueryHalo(const Axis& a, const Run& kr) {
  const int64_t lo = a.inv_lo[a.Pos(kr.r, kr.g0)], hi = a.inv_hi[a.Pos(kr.r, kr.g0 + kr.n - 1)];
  return {kr.r, lo, hi - lo};
}

// A buffer of n values whose data() is 64-byte aligned, so that the 32-byte
// loads of packed rows with d % 8 == 0 never straddle a cache line.
template <typename A> class AlignedBuf {
 public:
  explicit AlignedBuf(int64_t n) : v_(n + 64 / sizeof(A)) {
    const auto addr = reinterpret_cast<uintptr_t>(v_.data());
    p_ = v_.data() + ((64 - addr % 64) % 64) / sizeof(A);
  }
  AlignedBuf(const AlignedBuf&) = delete;
  AlignedBuf& operator=(const AlignedBuf&) = delete;
  A* data() { return p_; }
  const A* data() const { return p_; }
  A& operator[](int64_t i) { return p_[i]; }

 private:
  std::vector<A> v_;
  A* p_;
};

// ---- inner loops: portable ------------------------------------------------------

// out[t] = <x, base + off[t]> over d values, t < n.
template <typename A>
void DotsGeneric(const A* x, const A* base, const int64_t* off, int64_t n, int64_t d, A* out) {
  for (int64_t t = 0; t < n; ++t) {
    const A* y = base + off[t];
    A lane[4] = {0, 0, 0, 0};
    int64_t c = 0;
    for (; c + 4 <= d; c += 4)
      for (int u = 0; u < 4; ++u) lane[u] += x[c + u] * y[c + u];
    for (; c < d; ++c) lane[0] += x[c] * y[c];
    out[t] = (lane[0] + lane[1]) + (lane[2] + lane[3]);
  }
}

// acc[c] = sum_t w[t] * base[off[t] + c], c < d.
template <typename A>
void WeightedSumGeneric(const A* w, const A* base, const int64_t* off, int64_t n, int64_t d, A* acc) {
  std::fill(acc, acc + d, A(0));
  for (int64_t t = 0; t < n; ++t) {
    const A* y = base + off[t];
    const A wt = w[t];
    for (int64_t c = 0; c < d; ++c) acc[c] += wt * y[c];
  }
}

// ---- inner loops: AVX2 + FMA (f32, d % 8 == 0) ------------------------------------

// The 8 horizontal sums of a[0..8) as one vector.
__attribute__((target("avx2,fma"))) inline __m256 HorizontalSums8(const __m256* a) {
  const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// Eight dot products at a time, one accumulator each (8 independent FMA
// chains hide the FMA latency); the last group repeats its final key. NV =
// d / 8 when it is at most 8 (x stays in registers, loops unrolled), else 0
// (a loop over d). With max_out, the products are scaled by `scale` and their
// maximum returned there (the softmax's first pass, fused).
template <int NV>
__attribute__((target("avx2,fma"))) void DotsAvx2Block(const float* x, const float* base, const int64_t* off,
                                                       int64_t n, int64_t d, float* out, float scale,
                                                       float* max_out) {
  const __m256 sv = _mm256_set1_ps(scale);
  __m256 mv = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  __m256 xr[NV > 0 ? NV : 1];
  if constexpr (NV > 0) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) xr[v] = _mm256_loadu_ps(x + 8 * v);
  }
  for (int64_t t = 0; t < n; t += 8) {
    const float* y[8];
    for (int u = 0; u < 8; ++u) y[u] = base + off[std::min<int64_t>(t + u, n - 1)];
    __m256 acc[8];
#pragma GCC unroll 8
    for (int u = 0; u < 8; ++u) acc[u] = _mm256_setzero_ps();
    if constexpr (NV > 0) {
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v)
#pragma GCC unroll 8
        for (int u = 0; u < 8; ++u) acc[u] = _mm256_fmadd_ps(xr[v], _mm256_loadu_ps(y[u] + 8 * v), acc[u]);
    } else {
      for (int64_t c = 0; c < d; c += 8) {
        const __m256 xv = _mm256_loadu_ps(x + c);
#pragma GCC unroll 8
        for (int u = 0; u < 8; ++u) acc[u] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(y[u] + c), acc[u]);
      }
    }
    __m256 s = HorizontalSums8(acc);
    if (max_out) {
      // The padded lanes repeat a real key's product: harmless for the max.
      s = _mm256_mul_ps(s, sv);
      mv = _mm256_max_ps(mv, s);
    }
    if (t + 8 <= n) {
      _mm256_storeu_ps(out + t, s);
    } else {
      alignas(32) float tmp[8];
      _mm256_store_ps(tmp, s);
      std::copy(tmp, tmp + (n - t), out + t);
    }
  }
  if (max_out) {
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, mv);
    *max_out = *std::max_element(lanes, lanes + 8);
  }
}

void DotsAvx2(const float* x, const float* base, const int64_t* off, int64_t n, int64_t d, float* out,
              float scale = 1, float* max_out = nullptr) {
  switch (d / 8) {
    case 1: return DotsAvx2Block<1>(x, base, off, n, d, out, scale, max_out);
    case 2: return DotsAvx2Block<2>(x, base, off, n, d, out, scale, max_out);
    case 3: return DotsAvx2Block<3>(x, base, off, n, d, out, scale, max_out);
    case 4: return DotsAvx2Block<4>(x, base, off, n, d, out, scale, max_out);
    case 5: return DotsAvx2Block<5>(x, base, off, n, d, out, scale, max_out);
    case 6: return DotsAvx2Block<6>(x, base, off, n, d, out, scale, max_out);
    case 7: return DotsAvx2Block<7>(x, base, off, n, d, out, scale, max_out);
    case 8: return DotsAvx2Block<8>(x, base, off, n, d, out, scale, max_out);
    default: return DotsAvx2Block<0>(x, base, off, n, d, out, scale, max_out);
  }
}

// acc[0, 8 NV) = sum_t w[t] * y_t[0, 8 NV). Small NV keeps two keys in flight
// (two accumulator sets) so that there are enough independent FMA chains.
template <int NV>
__attribute__((target("avx2,fma"))) void WeightedSumBlock(const float* w, const float* base, const int64_t* off,
                                                          int64_t n, float* acc) {
  constexpr int kSets = NV <= 5 ? 2 : 1;
  __m256 a[kSets][NV];
#pragma GCC unroll 16
  for (int s = 0; s < kSets; ++s)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) a[s][v] = _mm256_setzero_ps();
  int64_t t = 0;
  for (; t + kSets <= n; t += kSets) {
#pragma GCC unroll 2
    for (int s = 0; s < kSets; ++s) {
      const __m256 wv = _mm256_broadcast_ss(w + t + s);
      const float* y = base + off[t + s];
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) a[s][v] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(y + 8 * v), a[s][v]);
    }
  }
  for (; t < n; ++t) {
    const __m256 wv = _mm256_broadcast_ss(w + t);
    const float* y = base + off[t];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) a[0][v] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(y + 8 * v), a[0][v]);
  }
#pragma GCC unroll 16
  for (int v = 0; v < NV; ++v) {
    __m256 sum = a[0][v];
    if constexpr (kSets == 2) sum = _mm256_add_ps(sum, a[1][v]);
    _mm256_storeu_ps(acc + 8 * v, sum);
  }
}

__attribute__((target("avx2,fma"))) void WeightedSumAvx2(const float* w, const float* base, const int64_t* off,
                                                         int64_t n, int64_t d, float* acc) {
  // Blocks of up to 64 channels (8 ymm accumulators).
  for (int64_t c0 = 0; c0 < d; c0 += 64) {
    const float* b = base + c0;
    float* o = acc + c0;
    switch (std::min<int64_t>(8, (d - c0) / 8)) {
      case 1: WeightedSumBlock<1>(w, b, off, n, o); break;
      case 2: WeightedSumBlock<2>(w, b, off, n, o); break;
      case 3: WeightedSumBlock<3>(w, b, off, n, o); break;
      case 4: WeightedSumBlock<4>(w, b, off, n, o); break;
      case 5: WeightedSumBlock<5>(w, b, off, n, o); break;
      case 6: WeightedSumBlock<6>(w, b, off, n, o); break;
      case 7: WeightedSumBlock<7>(w, b, off, n, o); break;
      default: WeightedSumBlock<8>(w, b, off, n, o); break;
    }
  }
}

// exp of 8 floats: 2^m * exp(r) with m = round(x log2 e), r = x - m ln 2 in
// two parts (Cody-Waite), and Cephes' degree-6 polynomial for exp(r)
// (relative error about 2e-7); 0 below -87.3 (where the float result would be
// subnormal), inputs clamped at 88.3 above, NaN kept (so a NaN input makes
// its rows NaN, as std::exp does).
__attribute__((target("avx2,fma"))) inline __m256 Exp8(__m256 x) {
  const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q), in = x;
  const __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
  const __m256 m = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(m, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(m, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(m), _mm256_set1_epi32(127)), 23);
  return _mm256_blendv_ps(_mm256_andnot_ps(tiny, _mm256_mul_ps(y, _mm256_castsi256_ps(e))), in, nan);
}

// s[t] *= scale; returns max_t s[t].
__attribute__((target("avx2,fma"))) float ScaleMaxAvx2(float* s, int64_t n, float scale) {
  const __m256 sv = _mm256_set1_ps(scale);
  __m256 mv = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t t = 0;
  for (; t + 8 <= n; t += 8) {
    const __m256 x = _mm256_mul_ps(_mm256_loadu_ps(s + t), sv);
    _mm256_storeu_ps(s + t, x);
    mv = _mm256_max_ps(mv, x);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, mv);
  float m = *std::max_element(lanes, lanes + 8);
  for (; t < n; ++t) {
    s[t] *= scale;
    m = std::max(m, s[t]);
  }
  return m;
}

// s[t] = exp(s[t] - m); returns the sum.
__attribute__((target("avx2,fma"))) float ExpSumAvx2(float* s, int64_t n, float m) {
  const __m256 mv = _mm256_set1_ps(m);
  __m256 acc = _mm256_setzero_ps();
  int64_t t = 0;
  for (; t + 8 <= n; t += 8) {
    const __m256 e = Exp8(_mm256_sub_ps(_mm256_loadu_ps(s + t), mv));
    _mm256_storeu_ps(s + t, e);
    acc = _mm256_add_ps(acc, e);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (; t < n; ++t) {
    s[t] = std::exp(s[t] - m);
    sum += s[t];
  }
  return sum;
}

// s[t] = p = exp(scale s[t] - lse[t]); g[t] = dS = p (g[t] - D[t]).
__attribute__((target("avx2,fma"))) void ProbGradAvx2(float* s, float* g, const float* lse, const float* dd,
                                                      int64_t n, float scale) {
  const __m256 sv = _mm256_set1_ps(scale);
  int64_t t = 0;
  for (; t + 8 <= n; t += 8) {
    const __m256 p = Exp8(_mm256_fmsub_ps(_mm256_loadu_ps(s + t), sv, _mm256_loadu_ps(lse + t)));
    _mm256_storeu_ps(s + t, p);
    _mm256_storeu_ps(g + t, _mm256_mul_ps(p, _mm256_sub_ps(_mm256_loadu_ps(g + t), _mm256_loadu_ps(dd + t))));
  }
  for (; t < n; ++t) {
    s[t] = std::exp(s[t] * scale - lse[t]);
    g[t] = s[t] * (g[t] - dd[t]);
  }
}

// ---- dispatch -------------------------------------------------------------------

template <typename A> struct Loops {
  bool avx2 = false;

  void Dots(const A* x, const A* base, const int64_t* off, int64_t n, int64_t d, A* out) const {
    if constexpr (std::is_same_v<A, float>)
      if (avx2) return DotsAvx2(x, base, off, n, d, out);
    DotsGeneric(x, base, off, n, d, out);
  }
  void WeightedSum(const A* w, const A* base, const int64_t* off, int64_t n, int64_t d, A* acc) const {
    if constexpr (std::is_same_v<A, float>)
      if (avx2) return WeightedSumAvx2(w, base, off, n, d, acc);
    WeightedSumGeneric(w, base, off, n, d, acc);
  }
  // s = exp(scale <x, y_t> - max) for t < n; returns {max, sum}.
  std::pair<A, A> ScoresSoftmax(const A* x, const A* base, const int64_t* off, int64_t n, int64_t d, A* s,
                                A scale) const {
    if constexpr (std::is_same_v<A, float>) {
      if (avx2) {
        float m;
        DotsAvx2(x, base, off, n, d, s, scale, &m);
        return {m, ExpSumAvx2(s, n, m)};
      }
    }
    Dots(x, base, off, n, d, s);
    return Softmax(s, n, scale);
  }
  // Softmax numerator in place: s = exp(scale s - max); returns {max, sum}.
  std::pair<A, A> Softmax(A* s, int64_t n, A scale) const {
    if constexpr (std::is_same_v<A, float>) {
      if (avx2) {
        const float m = ScaleMaxAvx2(s, n, scale);
        return {m, ExpSumAvx2(s, n, m)};
      }
    }
    A m = -std::numeric_limits<A>::infinity();
    for (int64_t t = 0; t < n; ++t) {
      s[t] *= scale;
      m = std::max(m, s[t]);
    }
    A sum = 0;
    for (int64_t t = 0; t < n; ++t) {
      s[t] = std::exp(s[t] - m);
      sum += s[t];
    }
    return {m, sum};
  }
  void ProbGrad(A* s, A* g, const A* lse, const A* dd, int64_t n, A scale) const {
    if constexpr (std::is_same_v<A, float>)
      if (avx2) return ProbGradAvx2(s, g, lse, dd, n, scale);
    for (int64_t t = 0; t < n; ++t) {
      s[t] = std::exp(s[t] * scale - lse[t]);
      g[t] = s[t] * (g[t] - dd[t]);
    }
  }
};

template <typename A> Loops<A> LoopsFor(int64_t d) {
  Loops<A> l;
  l.avx2 = std::is_same_v<A, float> && d % 8 == 0 && HasAvx2Fma() && g_kernel.load() != Kernel::kGeneric;
  return l;
}

// ---- tiles ------------------------------------------------------------------------

// Everything a tile pass needs about the call.
struct Geometry {
  NaParams p;
  Axis rows, cols;
  std::vector<Run> row_runs, col_runs;

  // The largest halos (positions per axis) of query tiles (keys) and of key
  // tiles (queries), and the most queries that see one key, per axis.
  int64_t key_halo_rows = 0, key_halo_cols = 0, query_halo_rows = 0, query_halo_cols = 0;
  int64_t inv_rows = 0, inv_cols = 0;

  explicit Geometry(const NaParams& params)
      : p(params), rows(MakeAxis(p.height, p.kh, p.dh)), cols(MakeAxis(p.width, p.kw, p.dw)),
        row_runs(Runs(rows, kTileRows)), col_runs(Runs(cols, kTileCols)) {
    for (const Run& r : row_runs) {
      key_halo_rows = std::max(key_halo_rows, KeyHalo(rows, r).n);
      query_halo_rows = std::max(query_halo_rows, QueryHalo(rows, r).n);
    }
    for (const Run& c : col_runs) {
      key_halo_cols = std::max(key_halo_cols, KeyHalo(cols, c).n);
      query_halo_cols = std::max(query_halo_cols, QueryHalo(cols, c).n);
    }
    for (int64_t x = 0; x < p.height; ++x) inv_rows = std::max(inv_rows, rows.inv_hi[x] - rows.inv_lo[x]);
    for (int64_t x = 0; x < p.width; ++x) inv_cols = std::max(inv_cols, cols.inv_hi[x] - cols.inv_lo[x]);
  }
  int64_t tiles() const {
    return p.batch * p.heads * static_cast<int64_t>(row_runs.size() * col_runs.size());
  }
  // Element offset of channel 0 of head h at (b, i, j).
  int64_t At(int64_t b, int64_t i, int64_t j, int64_t h) const {
    return ((b * p.height + i) * p.width + j) * p.channels() + h * p.head_dim;
  }
  // Calls fn(b, h, row run, col run) for tiles [lo, hi) of the flat order
  // (b, row run, col run, h): consecutive tiles of one thread are the heads
  // of one spatial tile, which read the same tokens' cache lines (a head's
  // d channels are a fraction of a token's lines).
  template <typename F> void ForTiles(int64_t lo, int64_t hi, F&& fn) const {
    const int64_t nr = static_cast<int64_t>(row_runs.size()), nc = static_cast<int64_t>(col_runs.size());
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t h = t % p.heads, c = (t / p.heads) % nc, r = (t / (p.heads * nc)) % nr;
      fn(t / (p.heads * nc * nr), h, row_runs[r], col_runs[c]);
    }
  }
};

// Packs head h of `src` at the positions (rr.g0 + a, cr.g0 + b) of the
// subgrids (rr.r, cr.r) into dst [rr.n][cr.n][d] in the compute type.
template <typename T, typename A>
void PackHalo(const Geometry& g, const T* src, int64_t b, int64_t h, const Run& rr, const Run& cr, A* dst) {
  const int64_t d = g.p.head_dim;
  for (int64_t a = 0; a < rr.n; ++a) {
    const int64_t i = g.rows.Pos(rr.r, rr.g0 + a);
    for (int64_t c = 0; c < cr.n; ++c) {
      const T* s = src + g.At(b, i, g.cols.Pos(cr.r, cr.g0 + c), h);
      A* o = dst + (a * cr.n + c) * d;
      if constexpr (std::is_same_v<T, A>) {
        std::copy_n(s, d, o);
      } else {
        for (int64_t e = 0; e < d; ++e) o[e] = Load(s, e);
      }
    }
  }
}
// One vector of d values of head h at (b, i, j) in the compute type.
template <typename T, typename A>
void LoadVec(const Geometry& g, const T* src, int64_t b, int64_t i, int64_t j, int64_t h, A* dst) {
  const T* s = src + g.At(b, i, j, h);
  for (int64_t e = 0; e < g.p.head_dim; ++e) dst[e] = Load(s, e);
}
template <typename T, typename A>
void StoreVec(const Geometry& g, T* dst, int64_t b, int64_t i, int64_t j, int64_t h, const A* v, A mul) {
  T* o = dst + g.At(b, i, j, h);
  for (int64_t e = 0; e < g.p.head_dim; ++e) Store(o, e, v[e] * mul);
}
int64_t LseIndex(const NaParams& p, int64_t b, int64_t i, int64_t j, int64_t h) {
  return ((b * p.height + i) * p.width + j) * p.heads + h;
}

// Offsets (in elements of a packed [rows][hw][d] halo) of the window of
// rows [r0, r0 + nr) x cols [c0, c0 + nc); returns the count.
int64_t WindowOffsets(int64_t r0, int64_t nr, int64_t c0, int64_t nc, int64_t hw, int64_t d, int64_t* off) {
  int64_t t = 0;
  for (int64_t a = 0; a < nr; ++a)
    for (int64_t c = 0; c < nc; ++c) off[t++] = ((r0 + a) * hw + c0 + c) * d;
  return t;
}

// ---- forward, AVX-512 over (batch, head) lanes ----------------------------------------
//
// Every (batch, head) pair has the same window geometry, so 16 of them fill
// the lanes of a zmm and a window is plain elementwise FMAs: no horizontal
// sums, no masks at borders or for odd d, the softmax over a window is
// elementwise too. q, k, v are repacked once per call into lane-major f32
// (pair p = 16 g + l in lane l of group g; missing pairs are zeros):
//   Qp [g][H*W][d][16]      q pre-scaled by scale * log2 e (so exp2 below)
//   Kp [g][H][d][Wp][16]    channel-major per row: a window row's keys for
//                           one channel are consecutive zmm (immediate
//                           offsets); Wp >= W with Wp = K_w mod 64 lines, so
//                           the d channels' K_w-line runs of one window row
//                           tile the 64 L1 sets evenly (with Wp = 64 every
//                           channel's run fell in the same 13 sets: 40 lines
//                           for 12 ways)
//   Vp [g][H][W][d][16]     position-major: one key's channels consecutive
// Columns are stored by residue mod the column dilation (all c = 0 mod dw,
// then 1, ...), so a dilated window row is K_w consecutive columns too.
// Per chunk of kChunk queries of a row:
// all scores, key row by key row (that key row stays in L1 across the
// chunk's queries), the softmax per query, then PV key row by key row into
// per-query accumulators.

constexpr int kLanes = 16;
constexpr int64_t kChunk = 16, kBand = 32;
#define CF_AVX512 __attribute__((target("avx512f,avx512dq")))

// GCC 12's AVX-512 headers pass _mm512_undefined_ps() as the unused source of
// unmasked max / roundscale / scalef, which -Wmaybe-uninitialized reports (a
// false positive in the system header).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

using attention_simd::Exp2Avx512;

// s[t] = <q, k_t> for NT keys of one window row: q [d][16], key t's channel
// e at k[e * estride + 16 t]. NT accumulators, q's channel loaded once.
// With add, s += those products (a later block of channels).
template <int NT>
CF_AVX512 void ScoreRow(const float* q, const float* k, int64_t d, int64_t estride, float* s, bool add) {
  __m512 acc[NT];
#pragma GCC unroll 16
  for (int t = 0; t < NT; ++t) acc[t] = add ? _mm512_load_ps(s + t * kLanes) : _mm512_setzero_ps();
  for (int64_t e = 0; e < d; ++e) {
    const __m512 qe = _mm512_load_ps(q + e * kLanes);
    const float* kr = k + e * estride;
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_fmadd_ps(qe, _mm512_load_ps(kr + t * kLanes), acc[t]);
  }
#pragma GCC unroll 16
  for (int t = 0; t < NT; ++t) _mm512_store_ps(s + t * kLanes, acc[t]);
}

// o[e] += sum_t p[t] v_t[e] for NE channels: v_t's channel e at
// v[t * kstride + 16 e]; the accumulators stay in registers over the nt keys.
template <int NE>
CF_AVX512 void PvRow(const float* p, int64_t nt, const float* v, int64_t kstride, float* o) {
  __m512 acc[NE];
#pragma GCC unroll 24
  for (int e = 0; e < NE; ++e) acc[e] = _mm512_load_ps(o + e * kLanes);
  for (int64_t t = 0; t < nt; ++t) {
    const __m512 pt = _mm512_load_ps(p + t * kLanes);
    const float* vr = v + t * kstride;
#pragma GCC unroll 24
    for (int e = 0; e < NE; ++e) acc[e] = _mm512_fmadd_ps(pt, _mm512_load_ps(vr + e * kLanes), acc[e]);
  }
#pragma GCC unroll 24
  for (int e = 0; e < NE; ++e) _mm512_store_ps(o + e * kLanes, acc[e]);
}

constexpr int kMaxNt = 16, kMaxNe = 24;
constexpr int64_t kScoreBlock = 24;
using ScoreFn = void (*)(const float*, const float*, int64_t, int64_t, float*, bool);
using PvFn = void (*)(const float*, int64_t, const float*, int64_t, float*);
template <int... I> constexpr std::array<ScoreFn, sizeof...(I)> ScoreTable(std::integer_sequence<int, I...>) {
  return {&ScoreRow<I + 1>...};
}
template <int... I> constexpr std::array<PvFn, sizeof...(I)> PvTable(std::integer_sequence<int, I...>) {
  return {&PvRow<I + 1>...};
}
constexpr auto kScoreFns = ScoreTable(std::make_integer_sequence<int, kMaxNt>{});
constexpr auto kPvFns = PvTable(std::make_integer_sequence<int, kMaxNe>{});

// Softmax over n score vectors in place (2^(s - max)); returns 1/sum in
// inv and lse = ln 2 (max + log2 sum) per lane.
CF_AVX512 void SoftmaxLanes(float* s, int64_t n, float* inv, float* lse) {
  __m512 m = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t t = 0; t < n; ++t) m = _mm512_max_ps(m, _mm512_load_ps(s + t * kLanes));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t t = 0; t < n; ++t) {
    const __m512 pv = Exp2Avx512(_mm512_sub_ps(_mm512_load_ps(s + t * kLanes), m));
    _mm512_store_ps(s + t * kLanes, pv);
    sum = _mm512_add_ps(sum, pv);
  }
  _mm512_storeu_ps(inv, _mm512_div_ps(_mm512_set1_ps(1.0f), sum));
  alignas(64) float ms[kLanes], ss[kLanes];
  _mm512_store_ps(ms, m);
  _mm512_store_ps(ss, sum);
  for (int l = 0; l < kLanes; ++l) lse[l] = 0.69314718055994531f * (ms[l] + std::log2(ss[l]));
}

// 64-byte aligned, uninitialised f32 storage (the packs overwrite all of it
// that is read).
struct LaneBuf {
  explicit LaneBuf(int64_t n) : p(new (std::align_val_t(64)) float[n]) {}
  ~LaneBuf() { ::operator delete[](p, std::align_val_t(64)); }
  LaneBuf(const LaneBuf&) = delete;
  LaneBuf& operator=(const LaneBuf&) = delete;
  float* p;
};

// Per calling thread, grow-only, for the packs of calls up to 128 MiB (the
// SD1.5 layer at 512 needs 34 MiB): a fresh allocation per call spent ~10%
// of the forward in page faults. Larger packs are allocated per call.
class LaneScratch {
 public:
  LaneScratch() = default;
  ~LaneScratch() { Release(); }
  LaneScratch(const LaneScratch&) = delete;
  LaneScratch& operator=(const LaneScratch&) = delete;
  float* Get(int64_t n) {
    if (n > cap_) {
      Release();
      p_ = new (std::align_val_t(64)) float[n];
      cap_ = n;
    }
    return p_;
  }

 private:
  void Release() {
    if (p_) ::operator delete[](p_, std::align_val_t(64));
    p_ = nullptr;
    cap_ = 0;
  }
  float* p_ = nullptr;
  int64_t cap_ = 0;
};
constexpr int64_t kScratchMaxFloats = (int64_t{128} << 20) / 4;

// One position of one lane group, f32 storage: lane l of channel e is
// src[off[l] + e] (a gather per channel), zeros in the lanes past `valid`.
CF_AVX512 void PackPositionF32(const float* q, const float* k, const float* v, const int32_t* off, int valid,
                               int64_t d, int64_t kstride, float qmul, float* qd, float* kd, float* vd) {
  const __m512i idx = _mm512_loadu_si512(off);
  const __mmask16 m = static_cast<__mmask16>((1u << valid) - 1u);
  const __m512 z = _mm512_setzero_ps(), qm = _mm512_set1_ps(qmul);
  for (int64_t e = 0; e < d; ++e) {
    _mm512_store_ps(qd + e * kLanes, _mm512_mul_ps(_mm512_mask_i32gather_ps(z, m, idx, q + e, 4), qm));
    _mm512_store_ps(kd + e * kstride, _mm512_mask_i32gather_ps(z, m, idx, k + e, 4));
    _mm512_store_ps(vd + e * kLanes, _mm512_mask_i32gather_ps(z, m, idx, v + e, 4));
  }
}

// Lane-group sizes for the kAuto choice: the padded lanes cost as much as
// real ones, so AVX-512 only when at most a quarter of them are padding.
bool LanesFilled(int64_t pairs) {
  const int64_t padded = (pairs + kLanes - 1) / kLanes * kLanes;
  return 4 * (padded - pairs) <= padded;
}

template <typename T>
void ForwardLanes(const NaParams& p, const T* q, const T* k, const T* v, T* out, Lse<T>* lse) {
  const int64_t H = p.height, W = p.width, d = p.head_dim, C = p.channels(), heads = p.heads;
  const int64_t pairs = p.batch * heads, groups = (pairs + kLanes - 1) / kLanes, kh = p.kh, kw = p.kw;
  const int64_t Wp = W + ((kw - W) % 64 + 64) % 64;
  const int64_t n = kh * kw;
  // Packed column of each column (by residue mod dw), and window starts.
  std::vector<int64_t> pcol(W), row_start(H), col_start(W);
  {
    int64_t at = 0;
    for (int64_t r = 0; r < std::min(p.dw, W); ++r)
      for (int64_t c = r; c < W; c += p.dw) pcol[c] = at++;
  }
  for (int64_t i = 0; i < H; ++i) row_start[i] = NaParams::WindowStart(i, H, kh, p.dh);
  for (int64_t j = 0; j < W; ++j) col_start[j] = pcol[NaParams::WindowStart(j, W, kw, p.dw)];

  const int64_t lane_tok = d * kLanes;  // floats per (position, group)
  const int64_t nq = groups * H * W * lane_tok, nk = groups * H * Wp * lane_tok, total = 2 * nq + nk;
  thread_local LaneScratch scratch;
  std::unique_ptr<LaneBuf> own;
  float* base = nullptr;
  if (total <= kScratchMaxFloats) {
    base = scratch.Get(total);
  } else {
    own = std::make_unique<LaneBuf>(total);
    base = own->p;
  }
  // Each part's size is a multiple of 16 floats: all stay 64-byte aligned.
  float* const qp = base;
  float* const vp = base + nq;
  float* const kp = base + 2 * nq;
  const float qmul = static_cast<float>(p.scale * 1.4426950408889634);
  // Lane offsets for the f32 gathers (when the tensor's size fits int32).
  const bool gather = std::is_same_v<T, float> && p.batch * H * W * C < (int64_t{1} << 31);
  std::vector<int32_t> lane_off(groups * kLanes, 0);
  for (int64_t pr = 0; pr < pairs; ++pr)
    lane_off[pr] = gather ? static_cast<int32_t>((pr / heads) * H * W * C + (pr % heads) * d) : 0;
  // Pack, parallel over (group, row).
  ParallelFor(0, groups * H, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t gi = lo; gi < hi; ++gi) {
      const int64_t g = gi / H, i = gi % H;
      for (int64_t j = 0; j < W; ++j) {
        float* qd = qp + ((g * H + i) * W + j) * lane_tok;
        float* vd = vp + ((g * H + i) * W + pcol[j]) * lane_tok;
        float* kd = kp + (g * H + i) * d * Wp * kLanes + pcol[j] * kLanes;
        if constexpr (std::is_same_v<T, float>) {
          if (gather) {
            const int64_t at = (i * W + j) * C;
            PackPositionF32(q + at, k + at, v + at, lane_off.data() + g * kLanes,
                            static_cast<int>(std::min<int64_t>(kLanes, pairs - g * kLanes)), d, Wp * kLanes, qmul, qd,
                            kd, vd);
            continue;
          }
        }
        for (int l = 0; l < kLanes; ++l) {
          const int64_t pr = g * kLanes + l;
          if (pr >= pairs) {
            for (int64_t e = 0; e < d; ++e) qd[e * kLanes + l] = vd[e * kLanes + l] = kd[e * Wp * kLanes + l] = 0;
            continue;
          }
          const int64_t src = ((pr / heads) * H * W + i * W + j) * C + (pr % heads) * d;
          for (int64_t e = 0; e < d; ++e) {
            qd[e * kLanes + l] = static_cast<float>(Load(q, src + e)) * qmul;
            kd[e * Wp * kLanes + l] = static_cast<float>(Load(k, src + e));
            vd[e * kLanes + l] = static_cast<float>(Load(v, src + e));
          }
        }
      }
    }
  });

  // PV channel blocks: as few as possible of at most kMaxNe channels.
  const int64_t nblocks = (d + kMaxNe - 1) / kMaxNe, ne = (d + nblocks - 1) / nblocks;
  // Score channel blocks of at most kScoreBlock channels.
  const int64_t sblocks = (d + kScoreBlock - 1) / kScoreBlock, se = (d + sblocks - 1) / sblocks;
  // Work items: (group, column chunk, band of kBand query rows), each swept
  // row by row, so the K/V rows its windows read -- (K_h + band) rows of
  // (kChunk + K_w - 1) columns -- are fetched into L2 about once. Whole
  // query rows per item (the previous order) re-read 13 full rows of K and V
  // from L3 per query row.
  const int64_t nchunks = (W + kChunk - 1) / kChunk, nbands = (H + kBand - 1) / kBand;
  ParallelFor(0, groups * nchunks * nbands, 1, [&](int64_t lo, int64_t hi) {
    LaneBuf sbuf(kChunk * n * kLanes), obuf(kChunk * lane_tok);
    alignas(64) float inv[kChunk][kLanes], lsev[kChunk][kLanes];
    for (int64_t item = lo; item < hi; ++item) {
      const int64_t g = item / (nchunks * nbands), j0 = (item / nbands) % nchunks * kChunk;
      const int64_t band = item % nbands;
      const float* kg = kp + g * H * d * Wp * kLanes;
      const float* vg = vp + g * H * W * lane_tok;
      for (int64_t i = band * kBand; i < std::min(H, (band + 1) * kBand); ++i) {
        const int64_t nj = std::min(kChunk, W - j0);
        // Scores, one window row at a time for all the chunk's queries.
        // Channel blocks outermost: one block of a window row's keys for all
        // the chunk's queries stays in L1.
        for (int64_t a = 0; a < kh; ++a) {
          const float* krow = kg + (row_start[i] + a * p.dh) * d * Wp * kLanes;
          for (int64_t e0 = 0; e0 < d; e0 += se) {
            const int64_t nb = std::min(se, d - e0);
            for (int64_t c = 0; c < nj; ++c) {
              const float* qv = qp + ((g * H + i) * W + j0 + c) * lane_tok + e0 * kLanes;
              float* s = sbuf.p + (c * n + a * kw) * kLanes;
              for (int64_t t0 = 0; t0 < kw; t0 += kMaxNt) {
                const int64_t nt = std::min<int64_t>(kMaxNt, kw - t0);
                kScoreFns[nt - 1](qv, krow + (e0 * Wp + col_start[j0 + c] + t0) * kLanes, nb, Wp * kLanes,
                                  s + t0 * kLanes, e0 > 0);
              }
            }
          }
        }
        for (int64_t c = 0; c < nj; ++c) SoftmaxLanes(sbuf.p + c * n * kLanes, n, inv[c], lsev[c]);
        std::fill(obuf.p, obuf.p + nj * lane_tok, 0.0f);
        for (int64_t a = 0; a < kh; ++a) {
          const float* vrow = vg + (row_start[i] + a * p.dh) * W * lane_tok;
          for (int64_t e0 = 0; e0 < d; e0 += ne) {
            const int64_t nb = std::min(ne, d - e0);
            for (int64_t c = 0; c < nj; ++c) {
              const float* pr = sbuf.p + (c * n + a * kw) * kLanes;
              const float* vw = vrow + col_start[j0 + c] * lane_tok;
              kPvFns[nb - 1](pr, kw, vw + e0 * kLanes, lane_tok, obuf.p + c * lane_tok + e0 * kLanes);
            }
          }
        }
        // Unpack: normalise and scatter the lanes back to [B, H, W, heads*d].
        for (int64_t c = 0; c < nj; ++c) {
          const int64_t j = j0 + c;
          const float* o = obuf.p + c * lane_tok;
          for (int l = 0; l < kLanes; ++l) {
            const int64_t pr = g * kLanes + l;
            if (pr >= pairs) break;
            const int64_t b = pr / heads, h = pr % heads;
            T* dst = out + ((b * H + i) * W + j) * C + h * d;
            for (int64_t e = 0; e < d; ++e) Store(dst, e, o[e * kLanes + l] * inv[c][l]);
            lse[((b * H + i) * W + j) * heads + h] = static_cast<Lse<T>>(lsev[c][l]);
          }
        }
      }
    }
  });
}

template <typename T> bool UseLanes(const NaParams& p) {
  if constexpr (std::is_same_v<T, double>) {
    return false;
  } else {
    if (!CpuHasAvx512()) return false;
    switch (g_kernel.load()) {
      case Kernel::kAvx512: return true;
      case Kernel::kAuto: return LanesFilled(p.batch * p.heads);
      default: return false;
    }
  }
}
#pragma GCC diagnostic pop

// ---- forward ------------------------------------------------------------------------

template <typename T>
void ForwardT(const NaParams& p, const T* q, const T* k, const T* v, T* out, Lse<T>* lse) {
  using A = Acc<T>;
  const Geometry g(p);
  const Loops<A> loops = LoopsFor<A>(p.head_dim);
  const int64_t d = p.head_dim, n = p.kh * p.kw;
  const A scale = static_cast<A>(p.scale);
  ParallelFor(0, g.tiles(), 1, [&](int64_t lo, int64_t hi) {
    const int64_t halo_max = g.key_halo_rows * g.key_halo_cols * d;
    // Score rows padded to 64 bytes, like the packed halos: aligned loads.
    const int64_t ns = (n + 15) / 16 * 16;
    AlignedBuf<A> kbuf(halo_max), vbuf(halo_max), qv(d), scores(kTileCols * ns);
    std::vector<A> acc(d);
    std::vector<A> maxes(kTileCols), sums(kTileCols);
    std::vector<int64_t> off(n), first(kTileCols);
    g.ForTiles(lo, hi, [&](int64_t b, int64_t h, const Run& qr, const Run& qc) {
      const Run kr = KeyHalo(g.rows, qr), kc = KeyHalo(g.cols, qc);
      PackHalo(g, k, b, h, kr, kc, kbuf.data());
      PackHalo(g, v, b, h, kr, kc, vbuf.data());
      // The window of every query is the same pattern of offsets from its
      // first key in the packed halo.
      WindowOffsets(0, p.kh, 0, p.kw, kc.n, d, off.data());
      for (int64_t a = 0; a < qr.n; ++a) {
        const int64_t i = g.rows.Pos(qr.r, qr.g0 + a);
        const int64_t r0 = g.rows.start[i] - kr.g0;
        // All scores of the row's queries, then all outputs: each phase keeps
        // one packed tensor's sliding window in L1.
        for (int64_t c = 0; c < qc.n; ++c) {
          const int64_t j = g.cols.Pos(qc.r, qc.g0 + c);
          first[c] = (r0 * kc.n + g.cols.start[j] - kc.g0) * d;
          LoadVec(g, q, b, i, j, h, qv.data());
          A* s = scores.data() + c * ns;
          std::tie(maxes[c], sums[c]) =
              loops.ScoresSoftmax(qv.data(), kbuf.data() + first[c], off.data(), n, d, s, scale);
        }
        for (int64_t c = 0; c < qc.n; ++c) {
          const int64_t j = g.cols.Pos(qc.r, qc.g0 + c);
          loops.WeightedSum(scores.data() + c * ns, vbuf.data() + first[c], off.data(), n, d, acc.data());
          StoreVec(g, out, b, i, j, h, acc.data(), A(1) / sums[c]);
          lse[LseIndex(p, b, i, j, h)] = static_cast<Lse<T>>(maxes[c] + std::log(sums[c]));
        }
      }
    });
  });
}

// ---- backward ------------------------------------------------------------------------

template <typename T>
void BackwardT(const NaParams& p, const T* q, const T* k, const T* v, const T* out, const Lse<T>* lse, const T* dout,
               const Lse<T>* dlse, T* dq, T* dk, T* dv) {
  using A = Acc<T>;
  const Geometry g(p);
  const Loops<A> loops = LoopsFor<A>(p.head_dim);
  const int64_t d = p.head_dim, n = p.kh * p.kw, c_all = p.channels();
  const int64_t rows = p.batch * p.tokens() * p.heads;
  const A scale = static_cast<A>(p.scale);

  // D = <dO, O> - dlse per (token, head), in the lse layout.
  std::vector<A> dd(rows);
  ParallelFor(0, rows, RowGrain(d), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t base = (r / p.heads) * c_all + (r % p.heads) * d;
      A s = 0;
      for (int64_t e = 0; e < d; ++e) s += Load(dout, base + e) * Load(out, base + e);
      dd[r] = s - (dlse ? static_cast<A>(dlse[r]) : A(0));
    }
  });

  // dq: query tiles with their k/v halo.
  ParallelFor(0, g.tiles(), 1, [&](int64_t lo, int64_t hi) {
    const int64_t halo_max = g.key_halo_rows * g.key_halo_cols * d;
    AlignedBuf<A> kbuf(halo_max), vbuf(halo_max), qv(d), gv(d), s(n), ds(n);
    std::vector<A> acc(d), lsev(n), ddv(n);
    std::vector<int64_t> off(n);
    g.ForTiles(lo, hi, [&](int64_t b, int64_t h, const Run& qr, const Run& qc) {
      const Run kr = KeyHalo(g.rows, qr), kc = KeyHalo(g.cols, qc);
      PackHalo(g, k, b, h, kr, kc, kbuf.data());
      PackHalo(g, v, b, h, kr, kc, vbuf.data());
      WindowOffsets(0, p.kh, 0, p.kw, kc.n, d, off.data());
      for (int64_t a = 0; a < qr.n; ++a) {
        const int64_t i = g.rows.Pos(qr.r, qr.g0 + a);
        for (int64_t c = 0; c < qc.n; ++c) {
          const int64_t j = g.cols.Pos(qc.r, qc.g0 + c);
          const int64_t li = LseIndex(p, b, i, j, h);
          LoadVec(g, q, b, i, j, h, qv.data());
          LoadVec(g, dout, b, i, j, h, gv.data());
          const int64_t first = ((g.rows.start[i] - kr.g0) * kc.n + g.cols.start[j] - kc.g0) * d;
          loops.Dots(qv.data(), kbuf.data() + first, off.data(), n, d, s.data());
          loops.Dots(gv.data(), vbuf.data() + first, off.data(), n, d, ds.data());
          std::fill(lsev.begin(), lsev.end(), static_cast<A>(lse[li]));
          std::fill(ddv.begin(), ddv.end(), dd[li]);
          loops.ProbGrad(s.data(), ds.data(), lsev.data(), ddv.data(), n, scale);
          loops.WeightedSum(ds.data(), kbuf.data() + first, off.data(), n, d, acc.data());
          StoreVec(g, dq, b, i, j, h, acc.data(), scale);
        }
      }
    });
  });

  // dk, dv: key tiles with the halo of the queries that see them.
  ParallelFor(0, g.tiles(), 1, [&](int64_t lo, int64_t hi) {
    const int64_t halo = g.query_halo_rows * g.query_halo_cols, m_max = g.inv_rows * g.inv_cols;
    AlignedBuf<A> qbuf(halo * d), gbuf(halo * d), kv(d), vv(d), s(m_max), ds(m_max);
    std::vector<A> lbuf(halo), dbuf(halo), acc(d), lsev(m_max), ddv(m_max);
    std::vector<int64_t> off(m_max);
    g.ForTiles(lo, hi, [&](int64_t b, int64_t h, const Run& kr, const Run& kc) {
      const Run qr = QueryHalo(g.rows, kr), qc = QueryHalo(g.cols, kc);
      PackHalo(g, q, b, h, qr, qc, qbuf.data());
      PackHalo(g, dout, b, h, qr, qc, gbuf.data());
      for (int64_t a = 0; a < qr.n; ++a)
        for (int64_t c = 0; c < qc.n; ++c) {
          const int64_t li = LseIndex(p, b, g.rows.Pos(qr.r, qr.g0 + a), g.cols.Pos(qc.r, qc.g0 + c), h);
          lbuf[a * qc.n + c] = static_cast<A>(lse[li]);
          dbuf[a * qc.n + c] = dd[li];
        }
      for (int64_t a = 0; a < kr.n; ++a) {
        const int64_t i = g.rows.Pos(kr.r, kr.g0 + a);
        const int64_t r0 = g.rows.inv_lo[i] - qr.g0, nr = g.rows.inv_hi[i] - g.rows.inv_lo[i];
        for (int64_t c = 0; c < kc.n; ++c) {
          const int64_t j = g.cols.Pos(kc.r, kc.g0 + c);
          const int64_t c0 = g.cols.inv_lo[j] - qc.g0, nc = g.cols.inv_hi[j] - g.cols.inv_lo[j];
          const int64_t m = WindowOffsets(r0, nr, c0, nc, qc.n, d, off.data());
          for (int64_t t = 0; t < m; ++t) {
            lsev[t] = lbuf[off[t] / d];
            ddv[t] = dbuf[off[t] / d];
          }
          LoadVec(g, k, b, i, j, h, kv.data());
          LoadVec(g, v, b, i, j, h, vv.data());
          loops.Dots(kv.data(), qbuf.data(), off.data(), m, d, s.data());
          loops.Dots(vv.data(), gbuf.data(), off.data(), m, d, ds.data());
          loops.ProbGrad(s.data(), ds.data(), lsev.data(), ddv.data(), m, scale);
          loops.WeightedSum(s.data(), gbuf.data(), off.data(), m, d, acc.data());
          StoreVec(g, dv, b, i, j, h, acc.data(), A(1));
          loops.WeightedSum(ds.data(), qbuf.data(), off.data(), m, d, acc.data());
          StoreVec(g, dk, b, i, j, h, acc.data(), scale);
        }
      }
    });
  });
}

}  // namespace

template <typename T>
void Forward(const NaParams& p, const T* q, const T* k, const T* v, T* out, Lse<T>* lse) {
  if (UseLanes<T>(p)) return ForwardLanes(p, q, k, v, out, lse);
  ForwardT(p, q, k, v, out, lse);
}
template <typename T>
void Backward(const NaParams& p, const T* q, const T* k, const T* v, const T* out, const Lse<T>* lse, const T* dout,
              const Lse<T>* dlse, T* dq, T* dk, T* dv) {
  BackwardT(p, q, k, v, out, lse, dout, dlse, dq, dk, dv);
}

#define CF_NA_INSTANTIATE(T)                                                                                 \
  template void Forward<T>(const NaParams&, const T*, const T*, const T*, T*, Lse<T>*);                      \
  template void Backward<T>(const NaParams&, const T*, const T*, const T*, const T*, const Lse<T>*, const T*, \
                            const Lse<T>*, T*, T*, T*);
CF_NA_INSTANTIATE(float)
CF_NA_INSTANTIATE(double)
CF_NA_INSTANTIATE(f16_t)
CF_NA_INSTANTIATE(bf16_t)
#undef CF_NA_INSTANTIATE

const char* KernelName() {
  const Kernel k = g_kernel.load();
  if ((k == Kernel::kAuto || k == Kernel::kAvx512) && CpuHasAvx512()) return "avx512";
  return k != Kernel::kGeneric && HasAvx2Fma() ? "avx2_fma" : "generic";
}
Kernel ForceKernel(Kernel k) { return g_kernel.exchange(k); }
bool ForceGeneric(bool force) {
  return g_kernel.exchange(force ? Kernel::kGeneric : Kernel::kAuto) == Kernel::kGeneric;
}
bool HasAvx512() { return CpuHasAvx512(); }

}  // namespace cf::na_cpu
