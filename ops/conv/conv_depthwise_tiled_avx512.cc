// AVX-512 kernels of the tiled depthwise conv (conv_depthwise_tiled_kernels.h).
// Compiled for AVX-512 by the target attribute only; the driver calls them
// after HasAvx512().
//
// Forward: a run of R <= 16 output pixels x 16 channels lives in R zmm
// accumulators; per tap its 16 weights are loaded once and each accumulator
// takes one FMA with the input as the memory operand (R + 1 loads per R
// FMAs: about 2 FMAs a cycle from L1). Weight gradient: KY x KX taps x 16
// channels in zmm accumulators (KY·KX <= 28), one dy vector per output pixel
// times the packed input as memory operands; KY > 1 for narrow kernels keeps
// at least 8 independent FMA chains.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <type_traits>
#include <utility>

#include "ops/attention/exp2_avx512.h"
#include "ops/conv/conv_depthwise_tiled_kernels.h"

namespace cf::dw {
namespace {

#define CF_DW_TARGET __attribute__((target("avx512f,avx512bw,avx512vl")))

// GCC 12's AVX-512 headers pass undefined vectors as unused sources
// (-W(maybe-)uninitialized false positives in the system header).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

CF_DW_TARGET inline __mmask16 LaneMask(int nc) {
  return static_cast<__mmask16>(nc >= kLanes ? 0xffffu : (1u << nc) - 1u);
}

// 16 channels of T as f32 (masked-out lanes 0, never read).
template <typename T> CF_DW_TARGET inline __m512 LoadVec(const T* p, __mmask16 m) {
  if constexpr (std::is_same_v<T, float>) {
    return _mm512_maskz_loadu_ps(m, p);
  } else if constexpr (std::is_same_v<T, f16_t>) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  } else {
    const __m512i u = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
  }
}

// The f32 -> T rounding of runtime/dtype.h (nearest even; NaN quiet).
template <typename T> CF_DW_TARGET inline void StoreVec(T* p, __mmask16 m, __m512 v) {
  if constexpr (std::is_same_v<T, float>) {
    _mm512_mask_storeu_ps(p, m, v);
  } else if constexpr (std::is_same_v<T, f16_t>) {
    _mm256_mask_storeu_epi16(p, m, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  } else {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                  _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
    _mm512_mask_cvtepi32_storeu_epi16(p, m, r);
  }
}

template <typename T>
CF_DW_TARGET void Pack(const T* img, int64_t h, int64_t w, int64_t c, int64_t c0, int nc, int64_t y0, int64_t rows,
                       int64_t x0, int64_t cols, float* dst) {
  const __mmask16 m = LaneMask(nc);
  const __m512 zero = _mm512_setzero_ps();
  // Columns j in [jlo, jhi) read the image.
  const int64_t jlo = std::min(cols, std::max<int64_t>(0, -x0));
  const int64_t jhi = std::max(jlo, std::min(cols, w - x0));
  for (int64_t r = 0; r < rows; ++r) {
    float* d = dst + r * cols * kLanes;
    const int64_t iy = y0 + r;
    if (iy < 0 || iy >= h) {
      for (int64_t j = 0; j < cols; ++j) _mm512_storeu_ps(d + j * kLanes, zero);
      continue;
    }
    const T* src = img + (iy * w + x0) * c + c0;
    for (int64_t j = 0; j < jlo; ++j) _mm512_storeu_ps(d + j * kLanes, zero);
    for (int64_t j = jlo; j < jhi; ++j) _mm512_storeu_ps(d + j * kLanes, LoadVec(src + j * c, m));
    for (int64_t j = jhi; j < cols; ++j) _mm512_storeu_ps(d + j * kLanes, zero);
  }
}

template <typename T>
CF_DW_TARGET void Store(const float* a, const float* b, int64_t npix, int nc, DwEpilogue ep, float factor, T* y,
                        int64_t stride) {
  const __mmask16 m = LaneMask(nc);
  switch (ep) {
    case DwEpilogue::kNone:
      for (int64_t p = 0; p < npix; ++p) StoreVec(y + p * stride, m, _mm512_loadu_ps(a + p * kLanes));
      break;
    case DwEpilogue::kProduct: {
      const __m512 f = _mm512_set1_ps(factor);
      for (int64_t p = 0; p < npix; ++p) {
        const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(a + p * kLanes), _mm512_loadu_ps(b + p * kLanes));
        StoreVec(y + p * stride, m, _mm512_mul_ps(v, f));
      }
      break;
    }
    case DwEpilogue::kSigmoid: {
      // a * sigmoid(b) = a / (1 + 2^(-b·log2 e)).
      const __m512 nlog2e = _mm512_set1_ps(-1.4426950408889634f), one = _mm512_set1_ps(1.f);
      for (int64_t p = 0; p < npix; ++p) {
        const __m512 e = attention_simd::Exp2Avx512(_mm512_mul_ps(_mm512_loadu_ps(b + p * kLanes), nlog2e));
        StoreVec(y + p * stride, m, _mm512_div_ps(_mm512_loadu_ps(a + p * kLanes), _mm512_add_ps(one, e)));
      }
      break;
    }
  }
}

// R output pixels of one row (see MathKernels::fwd_row).
template <int R>
CF_DW_TARGET void FwdRun(const float* in, int64_t row, int64_t kh, int64_t kw, const float* wp, const float* bias,
                         float* out) {
  __m512 acc[R];
  const __m512 b = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) acc[r] = b;
  for (int64_t ky = 0; ky < kh; ++ky) {
    const float* ir = in + ky * row * kLanes;
    const float* wr = wp + ky * kw * kLanes;
    for (int64_t kx = 0; kx < kw; ++kx) {
      const __m512 wv = _mm512_loadu_ps(wr + kx * kLanes);
      const float* ip = ir + kx * kLanes;
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(ip + r * kLanes), acc[r]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) _mm512_storeu_ps(out + r * kLanes, acc[r]);
}

using FwdRunFn = void (*)(const float*, int64_t, int64_t, int64_t, const float*, const float*, float*);
template <size_t... I> constexpr std::array<FwdRunFn, sizeof...(I)> FwdRuns(std::index_sequence<I...>) {
  return {&FwdRun<static_cast<int>(I) + 1>...};
}
constexpr auto kFwdRuns = FwdRuns(std::make_index_sequence<16>());  // kFwdRuns[R - 1]

void FwdRow(const float* in, int64_t row, int64_t kh, int64_t kw, const float* wp, const float* bias,
                         int64_t npix, float* out) {
  int64_t p = 0;
  for (; p + 16 <= npix; p += 16) FwdRun<16>(in + p * kLanes, row, kh, kw, wp, bias, out + p * kLanes);
  if (p < npix) kFwdRuns[npix - p - 1](in + p * kLanes, row, kh, kw, wp, bias, out + p * kLanes);
}

// Taps [ky0, ky0 + KY) x [kx0, kx0 + KX) of MathKernels::wgrad; xs and part
// point at tap (ky0, kx0).
template <int KY, int KX>
CF_DW_TARGET void WgradBlock(const float* xs, int64_t row, const float* dy, int64_t th, int64_t tw, int64_t kw,
                             float* part) {
  __m512 acc[KY][KX];
#pragma GCC unroll 8
  for (int a = 0; a < KY; ++a)
#pragma GCC unroll 16
    for (int b = 0; b < KX; ++b) acc[a][b] = _mm512_setzero_ps();
  for (int64_t oy = 0; oy < th; ++oy) {
    const float* d = dy + oy * tw * kLanes;
    const float* xr = xs + oy * row * kLanes;
    for (int64_t ox = 0; ox < tw; ++ox) {
      const __m512 dv = _mm512_loadu_ps(d + ox * kLanes);
#pragma GCC unroll 8
      for (int a = 0; a < KY; ++a)
#pragma GCC unroll 16
        for (int b = 0; b < KX; ++b)
          acc[a][b] = _mm512_fmadd_ps(dv, _mm512_loadu_ps(xr + (a * row + ox + b) * kLanes), acc[a][b]);
    }
  }
#pragma GCC unroll 8
  for (int a = 0; a < KY; ++a)
#pragma GCC unroll 16
    for (int b = 0; b < KX; ++b) _mm512_storeu_ps(part + (a * kw + b) * kLanes, acc[a][b]);
}

// Tap rows per block for KX taps per row: the most (1, 2, 4 or 8) with
// KY·KX <= 28 accumulators (of 32 zmm registers).
constexpr int MaxKy(int kx) { return kx <= 3 ? 8 : kx <= 7 ? 4 : kx <= 14 ? 2 : 1; }
constexpr int kMaxKx = 16;

using WgradFn = void (*)(const float*, int64_t, const float*, int64_t, int64_t, int64_t, float*);
template <int KY, int KX> constexpr WgradFn WgradOrNull() {
  if constexpr (KY <= MaxKy(KX)) return &WgradBlock<KY, KX>;
  else return nullptr;
}
template <int KY, size_t... I> constexpr std::array<WgradFn, kMaxKx> WgradRow(std::index_sequence<I...>) {
  return {WgradOrNull<KY, static_cast<int>(I) + 1>()...};
}
// kWgrad[log2 KY][KX - 1].
constexpr std::array<std::array<WgradFn, kMaxKx>, 4> kWgrad = {
    WgradRow<1>(std::make_index_sequence<kMaxKx>()), WgradRow<2>(std::make_index_sequence<kMaxKx>()),
    WgradRow<4>(std::make_index_sequence<kMaxKx>()), WgradRow<8>(std::make_index_sequence<kMaxKx>())};

void Wgrad(const float* xs, int64_t row, const float* dy, int64_t th, int64_t tw, int64_t kh, int64_t kw,
           float* part) {
  // kw split into near-equal chunks of at most 16 taps.
  const int64_t chunks = (kw + kMaxKx - 1) / kMaxKx;
  for (int64_t ci = 0; ci < chunks; ++ci) {
    const int64_t kx0 = kw * ci / chunks, kx = kw * (ci + 1) / chunks - kx0;
    int64_t ky0 = 0;
    for (int lg = 3; lg >= 0; --lg) {
      const int ky = 1 << lg;
      if (ky > MaxKy(static_cast<int>(kx))) continue;
      for (; ky0 + ky <= kh; ky0 += ky)
        kWgrad[lg][kx - 1](xs + (ky0 * row + kx0) * kLanes, row, dy, th, tw, kw, part + (ky0 * kw + kx0) * kLanes);
    }
  }
}

#pragma GCC diagnostic pop

}  // namespace

bool HasAvx512() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl");
  return has;
}

template <typename T> const IoKernels<T>& Avx512Io() {
  static const IoKernels<T> k{&Pack<T>, &Store<T>};
  return k;
}
template const IoKernels<float>& Avx512Io<float>();
template const IoKernels<f16_t>& Avx512Io<f16_t>();
template const IoKernels<bf16_t>& Avx512Io<bf16_t>();

const MathKernels& Avx512Math() {
  static const MathKernels k{&FwdRow, &Wgrad};
  return k;
}

}  // namespace cf::dw
