// Winograd F(4x4, 3x3) convolution on the CPU (conv_winograd_cpu.h,
// docs/ops/conv-winograd.md). The output is cut into 4x4 tiles; tile t
// reads the 6x6 input window d_t at (4·ty − ph, 4·tx − pw) (zeros outside
// the image) and, per pair of channels,
//     y_t = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d_t B) ] A
// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR
// 2016; the points below). Summed over Cin, the 36
// elementwise products of a tile become 36 independent GEMMs,
//     M_ξ [tiles, Cout] = V_ξ [tiles, Cin] · U_ξ [Cin, Cout],   ξ = 6a + b,
// with V = Bᵀ d B per tile and channel and U = G g Gᵀ per channel pair
// (transformed and packed once, kept with the node). 36 multiply-adds per
// 16 outputs instead of 144: 4x fewer than the implicit GEMM, at the price
// of the two transforms (memory-bound, ~10 FLOPs per element) and a larger
// rounding error (the transform coefficients reach 8 and 1/30).
//
// Tiles go in blocks of at most 64 MiB of V and M (kBlockBytes): each block is
// input-transformed (threads over tiles), multiplied (threads over ξ, each
// GEMM single-threaded) and output-transformed (threads over tiles) with
// the bias and residual, before the next block starts.
#include "ops/conv/conv_winograd_cpu.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "ops/cpu_util.h"
#include "ops/kernel_state.h"
#include "ops/matmul/cpu_gemm.h"
#include "ops/vec_math_avx512.h"
#include "runtime/env.h"
#include "runtime/scratch.h"

namespace cf {
namespace {

constexpr int kM = 4, kA = 6, kXi = kA * kA;  // 4x4 outputs from 6x6 inputs: 36 products
constexpr int kLanes = 16;                    // f32 channels per AVX-512 vector

// Bᵀ (6 x 6), G (6 x 3) and Aᵀ (4 x 6) of the points 0, 1, −1, 1/2, −2, ∞:
// Aᵀ[i][a] = p_a^i, G's rows the powers p_a^k, Bᵀ what makes the identity
// exact; then each row a of Bᵀ is scaled to small integers (2, 6, 6, 15/16,
// 30, 2) and G's row divided by the same, so V is formed with exact
// coefficients and G's fractions are rounded once, in U. Against Lavin and
// Gray's points 0, ±1, ±2, ∞ these points (Barabasz et al., "Error analysis
// and improving the accuracy of Winograd convolution for deep neural
// networks", ACM TOMS 2020) cut the largest error ~3x in a float32
// simulation (1.8e-6 against 6e-6 of the output's magnitude, 256 channels).
constexpr float kBT[kA][kA] = {
    {2, -3, -4, 3, 2, 0},  {0, -2, 1, 5, 2, 0},  {0, -2, 5, -1, -2, 0},
    {0, 2, 1, -2, -1, 0},  {0, 1, -2, -1, 2, 0}, {0, 2, -3, -4, 3, 2},
};
constexpr double kG[kA][3] = {
    {1.0 / 2, 0, 0},
    {1.0 / 6, 1.0 / 6, 1.0 / 6},
    {1.0 / 6, -1.0 / 6, 1.0 / 6},
    {16.0 / 15, 8.0 / 15, 4.0 / 15},
    {1.0 / 30, -1.0 / 15, 2.0 / 15},
    {0, 0, 1.0 / 2},
};
constexpr float kAT[kM][kA] = {
    {1, 1, 1, 1, 1, 0},
    {0, 1, -1, 0.5f, -2, 0},
    {0, 1, 1, 0.25f, 4, 0},
    {0, 1, -1, 0.125f, -8, 1},
};

// One block's V and M together (36 · tiles · (Cin + Cout) floats). Measured
// (BM_CpuConvSdKeptWeight, 2026-12-03): 8 MiB, within the L3, was slower
// (2x64x64 at 320 channels 34 against 25 ms: more GEMM calls of fewer rows,
// each streaming all of U_ξ); 32, 64, 128 and 512 MiB were within the noise
// of each other at 320-1280 channels. So the GEMMs' efficiency matters more
// than keeping V and M in the cache; 64 MiB bounds the scratch memory.
constexpr int64_t kBlockBytes = int64_t{64} << 20;
constexpr int64_t kMr = 14;  // the AVX-512 GEMM's rows per micro-panel: blocks are multiples
// Output tiles below which the implicit GEMM is faster (BM_CpuConvSd and
// BM_CpuConvSdKeptWeight of bench/ops/conv_bench.cc, 2026-12-03): with the
// transformed weight kept, 4 tiles of 320 channels already win (0.64 against
// 0.76 ms); transformed at every call (~6 ms at 320 -> 320, ~15 at 640 ->
// 640) it pays from ~128 tiles (2x32x32: 14.9 against 20.3 ms).
constexpr int64_t kMinTilesKept = 4, kMinTiles = 128;
// The largest transformed weight (4x the f32 weight) a conv may keep: 1280 ->
// 1280 (225 MiB) is in, 2560 -> 1280 (450 MiB) is not. One above 64 MiB
// only with >= 64 tiles, where it buys >= ~10 ms per call (1x32x32 at 1280
// channels: 45 against 147 ms): SD1.5's 16x16 and 8x8 convs at 1280
// channels (32 and 8 tiles at batch 2) would keep ~6 GB more for ~0.4 s of a
// 7 s step (measured: peak RSS of the f32 step 14.9 GB, against 8.9 GB with
// this rule).
constexpr int64_t kMaxWeightBytes = int64_t{256} << 20, kLargeWeightBytes = int64_t{64} << 20;
constexpr int64_t kMinTilesLargeWeight = 64;

std::atomic<bool>& Enabled() {
  static std::atomic<bool> on{EnvSwitch("CF_CONV_WINOGRAD")};
  return on;
}

int64_t Tiles(int64_t n, int64_t ho, int64_t wo) { return n * ((ho + kM - 1) / kM) * ((wo + kM - 1) / kM); }

// The 36 U_ξ [Cin, Cout], packed for the GEMM.
using Transformed = std::vector<gemm::PackedB<float>>;
struct WeightKey {
  const void* w = nullptr;
  int64_t cin = 0, cout = 0;
  bool flipped = false;
  bool operator==(const WeightKey&) const = default;
};

#define CF_WINO_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

// U_ξ(i, o) = (G g_{o,i} Gᵀ)[a][b] in float64, rounded once. g_{o,i}[ky][kx]
// is w[o, ky, kx, i] ([cout, 3, 3, cin]); flipped (backward input: the conv
// of dy, cin = the forward's Cout, cout = its Cin), w[i, 2 − ky, 2 − kx, o].
// Both read w along its innermost dimension, 8 lanes of float64 at a time:
// rows r and lanes l are (o, i) unflipped and (i, o) flipped, the tap at
// src + r·rs + tap_off[tap] + l, and U_ξ is stored [rows, lanes]
// (u + (ξ·rows + r)·lanes + l), so the GEMM's B is U_ξ transposed or as it is.
template <typename T> struct TapSource {
  const T* src;
  int64_t rows, lanes, rs;
  int64_t tap_off[9];
};

// GCC 12's headers pass _mm512_undefined_pd() / _mm256_undefined_ps() as the
// unused source of the unmasked conversions, which -Wmaybe-uninitialized
// reports (a false positive in the system header).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
template <typename T>
CF_WINO_TARGET void TransformRows(const TapSource<T>& s, int64_t r0, int64_t r1, float* u) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t l = 0; l < s.lanes; l += 8) {
      const __mmask8 mask = l + 8 <= s.lanes ? __mmask8(0xFF) : __mmask8((1u << (s.lanes - l)) - 1);
      __m512d g[9], t[kA][3];
#pragma GCC unroll 9
      for (int tap = 0; tap < 9; ++tap)
        g[tap] = _mm512_cvtps_pd(_mm512_castps512_ps256(vm::Load(s.src + r * s.rs + s.tap_off[tap] + l, mask)));
#pragma GCC unroll 6
      for (int a = 0; a < kA; ++a)
#pragma GCC unroll 3
        for (int k = 0; k < 3; ++k)  // (G g)[a][k] = Σ_j G[a][j] g[j][k]
          t[a][k] = _mm512_fmadd_pd(_mm512_set1_pd(kG[a][0]), g[k],
                                    _mm512_fmadd_pd(_mm512_set1_pd(kG[a][1]), g[3 + k],
                                                    _mm512_mul_pd(_mm512_set1_pd(kG[a][2]), g[6 + k])));
#pragma GCC unroll 6
      for (int a = 0; a < kA; ++a)
#pragma GCC unroll 6
        for (int b = 0; b < kA; ++b) {
          const __m512d v = _mm512_fmadd_pd(_mm512_set1_pd(kG[b][0]), t[a][0],
                                            _mm512_fmadd_pd(_mm512_set1_pd(kG[b][1]), t[a][1],
                                                            _mm512_mul_pd(_mm512_set1_pd(kG[b][2]), t[a][2])));
          _mm256_mask_storeu_ps(u + ((a * kA + b) * s.rows + r) * s.lanes + l, mask, _mm512_cvtpd_ps(v));
        }
    }
}
#pragma GCC diagnostic pop

template <typename T> Transformed TransformWeights(const T* w, int64_t cin, int64_t cout, bool flipped) {
  TapSource<T> s{w, flipped ? cin : cout, flipped ? cout : cin, 9 * (flipped ? cout : cin), {}};
  for (int tap = 0; tap < 9; ++tap) s.tap_off[tap] = (flipped ? 8 - tap : tap) * s.lanes;
  ScratchBuffer ubuf(int64_t{kXi} * cin * cout * 4);
  float* u = ubuf.as<float>();  // every element written by TransformRows
  ParallelFor(0, s.rows, 4, [&](int64_t lo, int64_t hi) { TransformRows(s, lo, hi, u); });
  Transformed packed;
  packed.reserve(kXi);
  for (int xi = 0; xi < kXi; ++xi) {
    const float* ux = u + xi * cin * cout;
    packed.push_back(flipped ? gemm::PackB<float, float>(cin, cout, gemm::RowMajor(ux, cout))
                             : gemm::PackB<float, float>(cin, cout, gemm::Transposed(ux, cin)));
  }
  return packed;
}

template <typename T>
const Transformed& KeptWeights(std::shared_ptr<void>* slot, const WeightKey& key, Transformed& local, const T* w) {
  return KeptOrMade(slot, key, local, [&] { return TransformWeights(w, key.cin, key.cout, key.flipped); });
}

// Row r of the constant matrix m times the vectors d (zero coefficients skipped;
// the loops unroll, so the coefficients are immediates).
template <int R, int C>
CF_WINO_TARGET inline __m512 Combine(const float (&m)[R][C], int r, const __m512* d) {
  __m512 acc = _mm512_setzero_ps();
#pragma GCC unroll 6
  for (int c = 0; c < C; ++c)
    if (m[r][c] != 0.f) acc = _mm512_fmadd_ps(_mm512_set1_ps(m[r][c]), d[c], acc);
  return acc;
}

struct TileGeo {
  int64_t th = 0, tw = 0;  // tiles per column and row of an image
  int64_t block = 0;       // tiles per block: V and M rows
};

// V[ξ][slot][c] = (Bᵀ d B)[a][b] of tile t, for every input channel.
template <typename T>
CF_WINO_TARGET void InputTile(const ConvParams& p, const TileGeo& tg, const T* x, int64_t t, int64_t slot, float* v) {
  const int64_t n = t / (tg.th * tg.tw), r = t % (tg.th * tg.tw);
  const int64_t iy0 = (r / tg.tw) * kM - p.ph, ix0 = (r % tg.tw) * kM - p.pw;
  const T* px[kA][kA];  // the window's pixels, null outside the image
  for (int i = 0; i < kA; ++i)
    for (int j = 0; j < kA; ++j) {
      const int64_t iy = iy0 + i, ix = ix0 + j;
      px[i][j] = iy >= 0 && iy < p.h && ix >= 0 && ix < p.w ? x + ((n * p.h + iy) * p.w + ix) * p.cin : nullptr;
    }
  const int64_t plane = tg.block * p.cin;
  for (int64_t c = 0; c < p.cin; c += kLanes) {
    const __mmask16 mask = vm::FirstLanes(p.cin - c);
    alignas(64) float tmp[kA][kA][kLanes];  // Bᵀ d: tmp[a][j]
#pragma GCC unroll 6
    for (int j = 0; j < kA; ++j) {
      __m512 d[kA];
#pragma GCC unroll 6
      for (int i = 0; i < kA; ++i) d[i] = px[i][j] ? vm::Load(px[i][j] + c, mask) : _mm512_setzero_ps();
#pragma GCC unroll 6
      for (int a = 0; a < kA; ++a) _mm512_store_ps(tmp[a][j], Combine(kBT, a, d));
    }
#pragma GCC unroll 6
    for (int a = 0; a < kA; ++a) {
      __m512 e[kA];
#pragma GCC unroll 6
      for (int j = 0; j < kA; ++j) e[j] = _mm512_load_ps(tmp[a][j]);
      float* dst = v + (a * kA * tg.block + slot) * p.cin + c;
#pragma GCC unroll 6
      for (int b = 0; b < kA; ++b) _mm512_mask_storeu_ps(dst + b * plane, mask, Combine(kBT, b, e));
    }
  }
}

// y of tile t = Aᵀ M A + bias (+ residual, which may be y itself), the
// outputs inside the image only.
template <typename T>
CF_WINO_TARGET void OutputTile(const ConvParams& p, const TileGeo& tg, const float* m, int64_t t, int64_t slot,
                               const T* bias, const T* residual, T* y) {
  const int64_t n = t / (tg.th * tg.tw), r = t % (tg.th * tg.tw);
  const int64_t oy0 = (r / tg.tw) * kM, ox0 = (r % tg.tw) * kM;
  const int rows = static_cast<int>(std::min<int64_t>(kM, p.ho - oy0));
  const int cols = static_cast<int>(std::min<int64_t>(kM, p.wo - ox0));
  const int64_t plane = tg.block * p.cout;
  for (int64_t c = 0; c < p.cout; c += kLanes) {
    const __mmask16 mask = vm::FirstLanes(p.cout - c);
    const __m512 b = bias ? vm::Load(bias + c, mask) : _mm512_setzero_ps();
    alignas(64) float tmp[kA][kM][kLanes];  // M A: tmp[a][j]
#pragma GCC unroll 6
    for (int a = 0; a < kA; ++a) {
      __m512 e[kA];
      const float* src = m + (a * kA * tg.block + slot) * p.cout + c;
#pragma GCC unroll 6
      for (int bb = 0; bb < kA; ++bb) e[bb] = _mm512_maskz_loadu_ps(mask, src + bb * plane);
#pragma GCC unroll 4
      for (int j = 0; j < kM; ++j) _mm512_store_ps(tmp[a][j], Combine(kAT, j, e));
    }
    for (int j = 0; j < cols; ++j) {
      __m512 e[kA];
#pragma GCC unroll 6
      for (int a = 0; a < kA; ++a) e[a] = _mm512_load_ps(tmp[a][j]);
      for (int i = 0; i < rows; ++i) {
        const int64_t at = ((n * p.ho + oy0 + i) * p.wo + ox0 + j) * p.cout + c;
        __m512 out = _mm512_add_ps(Combine(kAT, i, e), b);
        if (residual) out = _mm512_add_ps(out, vm::Load(residual + at, mask));
        vm::Store(y + at, out, mask);
      }
    }
  }
}

// Tiles per block: the cache budget, a multiple of the GEMM's micro-panel rows.
int64_t BlockTiles(int64_t cin, int64_t cout, int64_t tiles) {
  int64_t t = kBlockBytes / (int64_t{kXi} * 4 * (cin + cout));
  t = std::max(kMr, t / kMr * kMr);
  return std::min(t, tiles);
}

// The forward conv of geometry p (3x3, stride 1, dilation 1, groups 1) with U.
template <typename T>
void Run(const ConvParams& p, const T* x, const Transformed& u, const T* bias, const T* residual, T* y) {
  TileGeo tg;
  tg.th = (p.ho + kM - 1) / kM;
  tg.tw = (p.wo + kM - 1) / kM;
  const int64_t tiles = p.n * tg.th * tg.tw;
  tg.block = BlockTiles(p.cin, p.cout, tiles);
  ScratchBuffer vbuf(int64_t{kXi} * tg.block * p.cin * 4), mbuf(int64_t{kXi} * tg.block * p.cout * 4);
  float* v = vbuf.as<float>();  // written by InputTile before the GEMMs read it
  float* m = mbuf.as<float>();  // written by the GEMMs
  for (int64_t t0 = 0; t0 < tiles; t0 += tg.block) {
    const int64_t nt = std::min(tg.block, tiles - t0);
    ParallelFor(0, nt, 2, [&](int64_t lo, int64_t hi) {
      for (int64_t s = lo; s < hi; ++s) InputTile(p, tg, x, t0 + s, s, v);
    });
    ParallelFor(0, kXi, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t xi = lo; xi < hi; ++xi)
        gemm::GemmPacked<float, float>(nt, gemm::MatRef<float>{v + xi * tg.block * p.cin, p.cin, 1}, u[xi],
                                       m + xi * tg.block * p.cout, p.cout);
    });
    ParallelFor(0, nt, 2, [&](int64_t lo, int64_t hi) {
      for (int64_t s = lo; s < hi; ++s) OutputTile(p, tg, m, t0 + s, s, bias, residual, y);
    });
  }
}

bool IsWinogradGeometry(const ConvParams& p) {
  return p.kh == 3 && p.kw == 3 && p.sh == 1 && p.sw == 1 && p.dh == 1 && p.dw == 1 && p.groups == 1;
}

}  // namespace

bool ConvWinogradApplies(const ConvParams& p, bool backward_input, bool kept_weight) {
  if (!Enabled().load() || !vm::HasAvx512() || !IsWinogradGeometry(p)) return false;
  if (p.cin < kLanes || p.cout < kLanes) return false;
  if (backward_input && (p.ph > 2 || p.pw > 2)) return false;
  const int64_t tiles = backward_input ? Tiles(p.n, p.h, p.w) : Tiles(p.n, p.ho, p.wo);
  const int64_t bytes = int64_t{kXi} * p.cin * p.cout * 4;
  int64_t min_tiles = kept_weight ? kMinTilesKept : kMinTiles;
  if (bytes > kLargeWeightBytes) min_tiles = std::max(min_tiles, kMinTilesLargeWeight);
  return tiles >= min_tiles && bytes <= kMaxWeightBytes;
}

template <typename T>
void ConvForwardWinogradCpu(const ConvParams& p, const T* x, const T* w, const T* bias, T* y,
                            const ConvCpuExtras<T>& extras) {
  if (!IsWinogradGeometry(p) || !vm::HasAvx512() || p.cin == 0 || p.cout == 0 || p.n * p.ho * p.wo == 0)
    return ConvForwardGemmCpu<T>(p, x, w, bias, y, extras);
  Transformed local;
  const Transformed& u = KeptWeights(extras.weight_state, WeightKey{w, p.cin, p.cout, false}, local, w);
  Run(p, x, u, bias, extras.residual, y);
}

template <typename T>
void ConvBackwardInputWinogradCpu(const ConvParams& p, const T* dy, const T* w, T* dx,
                                  const ConvCpuExtras<T>& extras) {
  if (!IsWinogradGeometry(p) || !vm::HasAvx512() || p.ph > 2 || p.pw > 2 || p.cin == 0 || p.cout == 0 ||
      p.n * p.h * p.w == 0)
    return ConvBackwardInputGemmCpu<T>(p, dy, w, dx, extras);
  // dx[iy, ix, i] = Σ dy[iy + ph − ky, ix + pw − kx, o] · w[o, ky, kx, i]: with ky' = 2 − ky, the
  // forward conv of dy with padding 2 − ph and the weight w'[i, ky', kx', o] = w[o, 2 − ky', 2 − kx', i].
  ConvParams q;
  q.n = p.n, q.h = p.ho, q.w = p.wo, q.cin = p.cout, q.cout = p.cin, q.kh = 3, q.kw = 3;
  q.ph = 2 - p.ph, q.pw = 2 - p.pw, q.ho = p.h, q.wo = p.w;
  Transformed local;
  const Transformed& u = KeptWeights(extras.weight_state, WeightKey{w, q.cin, q.cout, true}, local, w);
  Run<T>(q, dy, u, nullptr, nullptr, dx);
}

#define CF_CONV_WINOGRAD_INSTANTIATE(T)                                                                 \
  template void ConvForwardWinogradCpu<T>(const ConvParams&, const T*, const T*, const T*, T*,          \
                                          const ConvCpuExtras<T>&);                                     \
  template void ConvBackwardInputWinogradCpu<T>(const ConvParams&, const T*, const T*, T*, const ConvCpuExtras<T>&);
CF_CONV_WINOGRAD_INSTANTIATE(float)
CF_CONV_WINOGRAD_INSTANTIATE(f16_t)
CF_CONV_WINOGRAD_INSTANTIATE(bf16_t)
#undef CF_CONV_WINOGRAD_INSTANTIATE

bool EnableConvWinograd(bool enable) { return Enabled().exchange(enable); }

const char* ConvForwardPath(const ConvParams& p, bool kept_weight) {
  return ConvWinogradApplies(p, false, kept_weight) ? "winograd_f4x4" : "implicit_gemm";
}

}  // namespace cf
