// AVX-512 kernels of the tiled depthwise conv (conv_depthwise_tiled_kernels.h).
// Compiled for AVX-512 by the target attribute only; the driver calls them
// after HasAvx512().
//
// Forward: a run of R <= 14 output pixels x 16 channels of two output rows
// lives in 2R zmm accumulators; per input row and tap column the two rows'
// weights are loaded once and each input vector once for both rows' FMAs
// (R + 2 loads per 2R FMAs, so the FMA ports are the limit, not the two
// loads a cycle). A single last row uses R <= 16 accumulators with the input
// as the FMA's memory operand (R + 1 loads per R FMAs). Weight gradient:
// KY x KX taps x 16 channels in zmm accumulators (KY·KX <= 28), two output
// pixels' dy vectors at a time, each packed input vector loaded once for
// both pixels' FMAs; KY > 1 for narrow kernels keeps at least 8 independent
// FMA chains.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <type_traits>
#include <utility>

#include "ops/conv/conv_depthwise_avx512_vec.h"
#include "ops/conv/conv_depthwise_tiled_kernels.h"

namespace cf::dw {
namespace {

using avx512::Epilogue;
using avx512::LaneMask;
using avx512::LoadVec;
using avx512::StoreVec;

// The FMA kernels: -O3's predictive commoning would carry the overlapping
// input vectors of consecutive taps in registers, paying a zmm move per
// reuse on the FMA ports; the loads it saves are cheaper (2 a cycle).
#define CF_DW_KERNEL CF_DW_TARGET __attribute__((optimize("no-predictive-commoning")))

// GCC 12's AVX-512 headers pass undefined vectors as unused sources
// (-W(maybe-)uninitialized false positives in the system header).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

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


template <typename T, DwEpilogue E>
CF_DW_TARGET void StoreAs(const float* a, const float* b, int64_t npix, __mmask16 m, __m512 f, T* y, int64_t stride) {
  for (int64_t p = 0; p < npix; ++p) {
    const __m512 av = _mm512_loadu_ps(a + p * kLanes);
    const __m512 bv = E == DwEpilogue::kNone ? av : _mm512_loadu_ps(b + p * kLanes);
    StoreVec(y + p * stride, m, Epilogue<E>(av, bv, f));
  }
}

template <typename T>
CF_DW_TARGET void Store(const float* a, const float* b, int64_t npix, int nc, DwEpilogue ep, float factor, T* y,
                        int64_t stride) {
  const __mmask16 m = LaneMask(nc);
  const __m512 f = _mm512_set1_ps(factor);
  switch (ep) {
    case DwEpilogue::kNone: return StoreAs<T, DwEpilogue::kNone>(a, b, npix, m, f, y, stride);
    case DwEpilogue::kProduct: return StoreAs<T, DwEpilogue::kProduct>(a, b, npix, m, f, y, stride);
    case DwEpilogue::kSigmoid: return StoreAs<T, DwEpilogue::kSigmoid>(a, b, npix, m, f, y, stride);
  }
}

// R output pixels of one row (see MathKernels::fwd_rows).
template <int R>
CF_DW_KERNEL void FwdRun(const float* in, int64_t row, int64_t kh, int64_t kw, const float* wp, const float* bias,
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

// R output pixels of two rows: input row iy feeds row 0 with tap row iy and
// row 1 with tap row iy - 1, so each input vector is loaded once for two
// FMAs (2 weight + R input loads per 2R FMAs). The taps of each output are
// still added in the order ky, kx. out1 = row 1's output.
template <int R>
CF_DW_KERNEL void FwdRun2(const float* in, int64_t row, int64_t kh, int64_t kw, const float* wp, const float* bias,
                          float* out0, float* out1) {
  __m512 acc0[R], acc1[R];
  const __m512 b = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = b;
  for (int64_t kx = 0; kx < kw; ++kx) {  // input row 0: output row 0 only
    const __m512 w0 = _mm512_loadu_ps(wp + kx * kLanes);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc0[r] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(in + (r + kx) * kLanes), acc0[r]);
  }
  for (int64_t iy = 1; iy < kh; ++iy) {
    const float* ir = in + iy * row * kLanes;
    const float* w0r = wp + iy * kw * kLanes;
    const float* w1r = w0r - kw * kLanes;
    for (int64_t kx = 0; kx < kw; ++kx) {
      const __m512 w0 = _mm512_loadu_ps(w0r + kx * kLanes), w1 = _mm512_loadu_ps(w1r + kx * kLanes);
      const float* ip = ir + kx * kLanes;
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        __m512 v = _mm512_loadu_ps(ip + r * kLanes);
        asm("" : "+v"(v));  // one load into a register (GCC would fold it into both FMAs: two loads)
        acc0[r] = _mm512_fmadd_ps(w0, v, acc0[r]);
        acc1[r] = _mm512_fmadd_ps(w1, v, acc1[r]);
      }
    }
  }
  const float* ir = in + kh * row * kLanes;  // input row kh: output row 1 only
  const float* w1r = wp + (kh - 1) * kw * kLanes;
  for (int64_t kx = 0; kx < kw; ++kx) {
    const __m512 w1 = _mm512_loadu_ps(w1r + kx * kLanes);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc1[r] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(ir + (r + kx) * kLanes), acc1[r]);
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    _mm512_storeu_ps(out0 + r * kLanes, acc0[r]);
    _mm512_storeu_ps(out1 + r * kLanes, acc1[r]);
  }
}

constexpr int kRun1 = 16, kRun2 = 14;  // pixels per run: 16 or 2 x 14 accumulators (of 32 zmm)

using FwdRunFn = void (*)(const float*, int64_t, int64_t, int64_t, const float*, const float*, float*);
using FwdRun2Fn = void (*)(const float*, int64_t, int64_t, int64_t, const float*, const float*, float*, float*);
template <size_t... I> constexpr std::array<FwdRunFn, sizeof...(I)> FwdRuns(std::index_sequence<I...>) {
  return {&FwdRun<static_cast<int>(I) + 1>...};
}
template <size_t... I> constexpr std::array<FwdRun2Fn, sizeof...(I)> FwdRuns2(std::index_sequence<I...>) {
  return {&FwdRun2<static_cast<int>(I) + 1>...};
}
constexpr auto kFwdRuns = FwdRuns(std::make_index_sequence<kRun1>());    // kFwdRuns[R - 1]
constexpr auto kFwdRuns2 = FwdRuns2(std::make_index_sequence<kRun2>());  // kFwdRuns2[R - 1]

// The row cut into near-equal runs (64 pixels: 5 runs of 13 or 12 with two
// rows, not 4 x 14 + 8).
void FwdRows(const float* in, int64_t row, int64_t kh, int64_t kw, const float* wp, const float* bias,
             int64_t npix, int nrows, float* out) {
  const int64_t max_run = nrows == 2 ? kRun2 : kRun1, runs = (npix + max_run - 1) / max_run;
  for (int64_t i = 0; i < runs; ++i) {
    const int64_t p0 = npix * i / runs, n = npix * (i + 1) / runs - p0;
    if (nrows == 2)
      kFwdRuns2[n - 1](in + p0 * kLanes, row, kh, kw, wp, bias, out + p0 * kLanes, out + (npix + p0) * kLanes);
    else
      kFwdRuns[n - 1](in + p0 * kLanes, row, kh, kw, wp, bias, out + p0 * kLanes);
  }
}

// Taps [ky0, ky0 + KY) x [kx0, kx0 + KX) of MathKernels::wgrad; xs and part
// point at tap (ky0, kx0).
template <int KY, int KX>
CF_DW_KERNEL void WgradBlock(const float* xs, int64_t row, const float* dy, int64_t th, int64_t tw, int64_t kw,
                             float* part) {
  __m512 acc[KY][KX];
#pragma GCC unroll 8
  for (int a = 0; a < KY; ++a)
#pragma GCC unroll 16
    for (int b = 0; b < KX; ++b) acc[a][b] = _mm512_setzero_ps();
  for (int64_t oy = 0; oy < th; ++oy) {
    const float* d = dy + oy * tw * kLanes;
    const float* xr = xs + oy * row * kLanes;
    int64_t ox = 0;
    // Two pixels at a time: input vector j serves tap j of pixel ox and tap
    // j - 1 of pixel ox + 1 (KX + 1 loads per 2·KX FMAs per tap row); each
    // tap still adds pixel ox before ox + 1.
    for (; ox + 2 <= tw; ox += 2) {
      const __m512 d0 = _mm512_loadu_ps(d + ox * kLanes), d1 = _mm512_loadu_ps(d + (ox + 1) * kLanes);
#pragma GCC unroll 8
      for (int a = 0; a < KY; ++a) {
        const float* xp = xr + (a * row + ox) * kLanes;
#pragma GCC unroll 17
        for (int j = 0; j <= KX; ++j) {
          __m512 v = _mm512_loadu_ps(xp + j * kLanes);
          asm("" : "+v"(v));  // one load for both FMAs (as in FwdRun2)
          if (j < KX) acc[a][j] = _mm512_fmadd_ps(d0, v, acc[a][j]);
          if (j > 0) acc[a][j - 1] = _mm512_fmadd_ps(d1, v, acc[a][j - 1]);
        }
      }
    }
    if (ox < tw) {
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
// KY·KX <= 28 accumulators (of 32 zmm registers, with two dy vectors and
// one input vector).
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
  static const MathKernels k{&FwdRows, &Wgrad};
  return k;
}

}  // namespace cf::dw
