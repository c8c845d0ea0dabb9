// The Winograd path of the tiled depthwise forward (conv_depthwise_tiled_cpu.h,
// docs/ops/depthwise-winograd.md): wide kernels (kw >= kWinogradMinKw) on
// AVX-512 take fewer multiplies than the direct taps.
//
// Each kernel row is a 1D correlation along W. Its kw taps are cut into
// J = ceil(kw / 4) chunks of 4 (zero-padded) and every chunk is a 1D
// Winograd minimal filter F(4, 4): 4 outputs from an input tile of 7
// through 7 products, with y = Aᵀ[(G g) ⊙ (Bᵀ d)]. Because the tile stride
// (4) equals the chunk length, output tile t with chunk j reads input tile
// s = t + j: the transformed input tiles V = Bᵀ d of each input row are
// made once and serve every chunk, kernel row and output tile that read
// them. Per transformed component a (of 7) the products are then a direct
// depthwise conv over tiles,
//     M_a[oy, t] = Σ_{ky, j} U_a[ky, j] · V_a[oy + ky, t + j],   U = G g,
// which is exactly the direct kernel's fwd_rows (kernel kh x J, "pixels" =
// tiles), and y[oy, 4t + i] = bias + Σ_a Aᵀ[i, a] · M_a[oy, t].
// Multiply-adds per output and channel: kh·J·7/4 (K = 13: 91; K = 25: 306)
// against kh·kw (169; 625), plus the transforms (~8.5 per input pixel and
// row of the window, 5.5 per output). The points are 0, ±1, ±2, 1/2 and ∞.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "ops/conv/conv_depthwise_avx512_vec.h"
#include "ops/conv/conv_depthwise_tiled_kernels.h"
#include "ops/cpu_util.h"
#include "runtime/scratch.h"

namespace cf::dw {
namespace {

constexpr int kM = 4, kAlpha = 7;  // F(4, 4): 4 outputs, 4 taps, 7 products

// Bᵀ (7 x 7), G (7 x 4) and Aᵀ (4 x 7) of the points 0, 1, -1, 2, -2, 1/2,
// ∞: G's rows evaluate the taps' polynomial at each point (∞: its leading
// coefficient), Aᵀ[i][a] = p_a^i, and Bᵀ = V⁻ᵀ with V the 7 x 7 Vandermonde
// matrix of the points (correlation is the transpose of the convolution
// s = V⁻¹[(G g) ⊙ (Aᵀᵀ h)]).
constexpr float kBT[kAlpha][kAlpha] = {
    {1.f, -2.f, -5.f / 4, 5.f / 2, 1.f / 4, -1.f / 2, 0.f},
    {0.f, -2.f / 3, 2.f / 3, 3.f / 2, -1.f / 6, -1.f / 3, 0.f},
    {0.f, -2.f / 9, 2.f / 3, -7.f / 18, -1.f / 6, 1.f / 9, 0.f},
    {0.f, 1.f / 36, -1.f / 24, -1.f / 18, 1.f / 24, 1.f / 36, 0.f},
    {0.f, 1.f / 60, -1.f / 24, 0.f, 1.f / 24, -1.f / 60, 0.f},
    {0.f, 128.f / 45, 0.f, -32.f / 9, 0.f, 32.f / 45, 0.f},
    {0.f, -2.f, 4.f, 5.f / 2, -5.f, -1.f / 2, 1.f},
};
constexpr double kPoints[kAlpha - 1] = {0.0, 1.0, -1.0, 2.0, -2.0, 0.5};

double GCoef(int a, int k) {  // G[a][k]
  if (a == kAlpha - 1) return k == kM - 1 ? 1.0 : 0.0;
  double v = 1.0;
  for (int i = 0; i < k; ++i) v *= kPoints[a];
  return v;
}
constexpr float ACoef(int i, int a) {  // Aᵀ[i][a]
  if (a == kAlpha - 1) return i == kM - 1 ? 1.f : 0.f;
  double v = 1.0;
  for (int q = 0; q < i; ++q) v *= kPoints[a];
  return static_cast<float>(v);
}

#define CF_DWW_TARGET CF_DW_TARGET
using avx512::Epilogue;
using avx512::LaneMask;
using avx512::LoadVec;
using avx512::StoreVec;

// GCC 12's AVX-512 headers pass undefined vectors as unused sources
// (-W(maybe-)uninitialized false positives in the system header).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// V[a][r][s][16] = Σ_b Bᵀ[a][b] · d[r][4s + b][16] for r < rows, s < nti, where
// d[r][j] = img[y0 + r][x0 + j][c0 .. c0 + nc) as f32, 0 outside the image and
// past nc. Read straight from the image: a packed copy of the window first
// cost more than the transform (its writes, then its reads).
template <typename T>
CF_DWW_TARGET void InputTransform(const T* img, int64_t h, int64_t w, int64_t c, int64_t c0, int nc, int64_t y0,
                                  int64_t rows, int64_t x0, int64_t nti, float* v) {
  const __mmask16 mask = LaneMask(nc);
  const int64_t plane = rows * nti * kLanes;
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t iy = y0 + r;
    float* vr = v + r * nti * kLanes;
    if (iy < 0 || iy >= h) {
      for (int a = 0; a < kAlpha; ++a)
        for (int64_t s = 0; s < nti; ++s) _mm512_storeu_ps(vr + a * plane + s * kLanes, zero);
      continue;
    }
    const T* src = img + iy * w * c + c0;  // column x at src + x·c
    for (int64_t s = 0; s < nti; ++s) {
      const int64_t xb = x0 + kM * s;
      __m512 d[kAlpha];
      if (xb >= 0 && xb + kAlpha <= w) {
#pragma GCC unroll 7
        for (int b = 0; b < kAlpha; ++b) d[b] = LoadVec(src + (xb + b) * c, mask);
      } else {
#pragma GCC unroll 7
        for (int b = 0; b < kAlpha; ++b) d[b] = xb + b >= 0 && xb + b < w ? LoadVec(src + (xb + b) * c, mask) : zero;
      }
      float* dst = vr + s * kLanes;
#pragma GCC unroll 7
      for (int a = 0; a < kAlpha; ++a) {
        __m512 acc = _mm512_setzero_ps();
#pragma GCC unroll 7
        for (int b = 0; b < kAlpha; ++b)
          if (kBT[a][b] != 0.f) acc = _mm512_fmadd_ps(_mm512_set1_ps(kBT[a][b]), d[b], acc);
        _mm512_storeu_ps(dst + a * plane, acc);
      }
    }
  }
}

// y[q·pitch + p·stride + l] = Epilogue(half[q][p][l], out[q][p][l]) for rows
// q < nrows, pixels p < tw and lanes l < nc, where out[q][p] = bias + Σ_a
// Aᵀ[p % 4][a] · m[a][q][p / 4] (m[a] holds 2 rows of nto tiles) and half
// (kNone: unused) is the gate's first half as f32 [nrows][tw][16]. Storing
// straight into y saves a pass over an f32 copy of the output.
template <typename T, DwEpilogue E>
CF_DWW_TARGET void OutputTransform(const float* m, int64_t nto, int nrows, int64_t tw, const float* bias,
                                   const float* half, int nc, float factor, T* y, int64_t pitch, int64_t stride) {
  const int64_t plane = 2 * nto * kLanes;
  const __mmask16 mask = LaneMask(nc);
  const __m512 b0 = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps(), f = _mm512_set1_ps(factor);
  for (int q = 0; q < nrows; ++q)
    for (int64_t t = 0; t < nto; ++t) {
      __m512 mv[kAlpha];
#pragma GCC unroll 7
      for (int a = 0; a < kAlpha; ++a) mv[a] = _mm512_loadu_ps(m + a * plane + (q * nto + t) * kLanes);
#pragma GCC unroll 4
      for (int i = 0; i < kM; ++i) {
        const int64_t p = kM * t + i;
        if (p >= tw) break;
        __m512 acc = b0;
#pragma GCC unroll 7
        for (int a = 0; a < kAlpha; ++a)
          if (ACoef(i, a) != 0.f) acc = _mm512_fmadd_ps(_mm512_set1_ps(ACoef(i, a)), mv[a], acc);
        const __m512 first = E == DwEpilogue::kNone ? acc : _mm512_loadu_ps(half + (q * tw + p) * kLanes);
        StoreVec(y + q * pitch + p * stride, mask, E == DwEpilogue::kNone ? acc : Epilogue<E>(first, acc, f));
      }
    }
}

template <typename T>
using OutputFn = void (*)(const float*, int64_t, int, int64_t, const float*, const float*, int, float, T*, int64_t,
                          int64_t);
template <typename T> OutputFn<T> OutputFor(DwEpilogue e) {
  switch (e) {
    case DwEpilogue::kNone: return &OutputTransform<T, DwEpilogue::kNone>;
    case DwEpilogue::kProduct: return &OutputTransform<T, DwEpilogue::kProduct>;
    case DwEpilogue::kSigmoid: return &OutputTransform<T, DwEpilogue::kSigmoid>;
  }
  return nullptr;
}

std::atomic<bool> g_enabled{true};

// This thread's f32 scratch of at least n floats, 64-byte aligned.
float* Scratch(int64_t n) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < n + kLanes) buf.resize(n + kLanes);
  const uintptr_t p = reinterpret_cast<uintptr_t>(buf.data());
  return reinterpret_cast<float*>((p + 63) & ~uintptr_t{63});
}

// Per (part, block): U[a][ky][j][16] = Σ_k G[a][k] · wt[(ky·kw + 4j + k)·c + ch] (taps past kw are 0),
// then the bias [16] (0 without one). G's entries are 0, ±1 and powers of 2,
// so each product is exact and U rounds like a 4-term f32 sum.
// Vectorised over the 16 channels of a block and written once per element
// (no zero fill), into pooled scratch: made at every call, it was ~12% of a
// 32x32 K = 13 forward as a scalar loop into a fresh zeroed vector.
CF_DWW_TARGET void TransformBlock(const DwForwardArgs& a, const float (&g)[kAlpha][kM], int64_t c0, int nc,
                                  int64_t J, float* d) {
  const __mmask16 mask = LaneMask(nc);
  for (int64_t ky = 0; ky < a.kh; ++ky)
    for (int64_t j = 0; j < J; ++j) {
      __m512 w[kM];
      for (int k = 0; k < kM; ++k)
        w[k] = kM * j + k < a.kw ? _mm512_maskz_loadu_ps(mask, a.wt + (ky * a.kw + kM * j + k) * a.c + c0)
                                 : _mm512_setzero_ps();
      for (int al = 0; al < kAlpha; ++al) {
        __m512 acc = _mm512_setzero_ps();
        for (int k = 0; k < kM; ++k)
          if (g[al][k] != 0.f) acc = _mm512_fmadd_ps(_mm512_set1_ps(g[al][k]), w[k], acc);  // exact products
        _mm512_store_ps(d + ((al * a.kh + ky) * J + j) * kLanes, acc);
      }
    }
  _mm512_store_ps(d + kAlpha * a.kh * J * kLanes,
                  a.bias ? _mm512_maskz_loadu_ps(mask, a.bias + c0) : _mm512_setzero_ps());
}

ScratchBuffer TransformTaps(const DwForwardArgs& a, int64_t cout, int64_t blocks, int parts, int64_t J) {
  const int64_t per = kAlpha * a.kh * J * kLanes + kLanes;  // a multiple of 16 floats: blocks stay 64-byte aligned
  float g[kAlpha][kM];
  for (int al = 0; al < kAlpha; ++al)
    for (int k = 0; k < kM; ++k) g[al][k] = static_cast<float>(GCoef(al, k));
  ScratchBuffer u(parts * blocks * per * static_cast<int64_t>(sizeof(float)));
  float* base = u.as<float>();  // every element written by TransformBlock
  ParallelFor(0, parts * blocks, 4, [&](int64_t lo, int64_t hi) {
    for (int64_t pb = lo; pb < hi; ++pb) {
      const int64_t blk = pb % blocks, c0 = blk * kLanes + pb / blocks * cout;
      const int nc = static_cast<int>(std::min<int64_t>(kLanes, cout - blk * kLanes));
      TransformBlock(a, g, c0, nc, J, base + pb * per);
    }
  });
  return u;
}

#pragma GCC diagnostic pop

}  // namespace

bool UseWinograd(const DwForwardArgs& a) {
  return g_enabled.load() && a.kw >= kWinogradMinKw && a.wo() >= kM && HasAvx512();
}

bool EnableWinograd(bool enable) { return g_enabled.exchange(enable); }

template <typename T> void ForwardWinograd(const DwForwardArgs& a, const T* x, T* y) {
  const bool gate = a.epilogue != DwEpilogue::kNone;
  const int64_t ho = a.ho(), wo = a.wo();
  const int64_t cout = gate ? a.c / 2 : a.c;
  const int64_t stride = a.y_pixel_stride > 0 ? a.y_pixel_stride : cout;
  const int64_t blocks = (cout + kLanes - 1) / kLanes;
  if (a.n <= 0 || ho <= 0 || wo <= 0 || cout <= 0) return;
  const int parts = gate ? 2 : 1;
  const int64_t J = (a.kw + kM - 1) / kM;
  // Tiles of <= 128 columns (a multiple of 4 when split) and ~2048 output
  // pixels, as the direct driver's: the window costs kh - 1 halo rows of
  // transforms per tile, so short tiles pay them again and again (a budget
  // that kept all of V in L2 cut K = 25 with a gate to 2 rows, slower than
  // the direct taps). V need not stay in L2: each fwd_rows call reads one
  // component's kh + 1 rows (~36 KiB at K = 25, 64 wide).
  const int64_t ntx = (wo + 127) / 128;
  const int64_t tw = ntx == 1 ? wo : ((wo + ntx - 1) / ntx + kM - 1) / kM * kM;
  const int64_t nto = (tw + kM - 1) / kM, nti = nto + J - 1;
  int64_t th = std::clamp<int64_t>((2048 + tw - 1) / tw, 2, ho);
  auto tasks = [&] { return a.n * ((wo + tw - 1) / tw) * ((ho + th - 1) / th) * blocks; };
  while (th >= 8 && tasks() < 16) th = (th + 1) / 2;
  const int64_t nty = (ho + th - 1) / th, tiles = nty * ((wo + tw - 1) / tw);
  const int64_t rows_w = th + a.kh - 1;
  const ScratchBuffer ub = TransformTaps(a, cout, blocks, parts, J);
  const float* u = ub.as<float>();
  const int64_t u_n = kAlpha * a.kh * J * kLanes + kLanes, u_plane = a.kh * J * kLanes;
  // Per part: V, the products M of two output rows, and (the gate's first
  // half only) its two output rows in f32.
  const int64_t v_n = kAlpha * rows_w * nti * kLanes, m_n = kAlpha * 2 * nto * kLanes, half_n = 2 * tw * kLanes;
  const int64_t part_n = v_n + m_n;
  const OutputFn<T> store = OutputFor<T>(a.epilogue);
  const MathKernels& math = Avx512Math();
  ParallelFor(0, a.n * tiles * blocks, 1, [&](int64_t lo, int64_t hi) {
    float* s = Scratch(parts * part_n + half_n);
    float* half = s + parts * part_n;
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t blk = task % blocks, tile = task / blocks % tiles, n = task / blocks / tiles;
      const int64_t oy0 = tile / (tiles / nty) * th, ox0 = tile % (tiles / nty) * tw;
      const int64_t th_t = std::min(th, ho - oy0), tw_t = std::min(tw, wo - ox0);
      const int nc = static_cast<int>(std::min<int64_t>(kLanes, cout - blk * kLanes));
      const T* img = x + n * a.h * a.w * a.c;
      for (int q = 0; q < parts; ++q)
        InputTransform(img, a.h, a.w, a.c, blk * kLanes + q * cout, nc, oy0 - a.ph, th_t + a.kh - 1, ox0 - a.pw, nti,
                       s + q * part_n);
      const int64_t vplane = (th_t + a.kh - 1) * nti * kLanes;  // V's rows are packed densely per tile
      for (int64_t r = 0; r < th_t; r += 2) {
        const int rows = static_cast<int>(std::min<int64_t>(2, th_t - r));
        T* dst = y + ((n * ho + oy0 + r) * wo + ox0) * stride + blk * kLanes;
        for (int q = 0; q < parts; ++q) {
          float* m = s + q * part_n + v_n;
          const float* uq = u + (q * blocks + blk) * u_n;
          for (int al = 0; al < kAlpha; ++al)
            math.fwd_rows(s + q * part_n + al * vplane + r * nti * kLanes, nti, a.kh, J, uq + al * u_plane, nullptr,
                          nto, rows, m + al * 2 * nto * kLanes);
          const float* bias = a.bias ? uq + kAlpha * u_plane : nullptr;
          if (q + 1 < parts)  // the gate's first half, kept in f32 for the second's epilogue
            OutputTransform<float, DwEpilogue::kNone>(m, nto, rows, tw_t, bias, nullptr, kLanes, 1.f, half,
                                                      tw_t * kLanes, kLanes);
          else
            store(m, nto, rows, tw_t, bias, half, nc, a.factor, dst, wo * stride, stride);
        }
      }
    }
  });
}

template void ForwardWinograd<float>(const DwForwardArgs&, const float*, float*);
template void ForwardWinograd<f16_t>(const DwForwardArgs&, const f16_t*, f16_t*);
template void ForwardWinograd<bf16_t>(const DwForwardArgs&, const bf16_t*, bf16_t*);

}  // namespace cf::dw
