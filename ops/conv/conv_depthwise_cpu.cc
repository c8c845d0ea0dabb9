// Depthwise conv2d on the CPU (groups == Cin == Cout, weight [C, kh, kw, 1]).
// Stride 1, dilation 1 in f32/f16/bf16 (every ConvBlock conv) goes to the
// register-tiled kernels of conv_depthwise_tiled_cpu.h: the forward as is,
// backward input as the forward on dy with the taps flipped and padding
// k - 1 - p, backward weight as its own tiled kernel. Other geometries and
// f64 (also the tests' reference) run direct loops whose innermost loop runs
// over the contiguous channels of one NHWC pixel, with the weight transposed
// to [kh·kw, C] so it is contiguous there too; GCC vectorises these loops.
// Threads split output (forward) or input (backward input) rows, so every
// pixel is written by one thread; the weight gradient sums per-chunk partials
// in a fixed order.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "ops/conv/conv_cpu.h"
#include "ops/conv/conv_depthwise_tiled_cpu.h"
#include "ops/cpu_util.h"

namespace cf {
namespace {

// wt[k·C + c] = w[c·kh·kw + k] in the accumulation type.
template <typename T> std::vector<Acc<T>> TransposeWeight(const ConvParams& p, const T* w) {
  const int64_t taps = p.kh * p.kw, c = p.cin;
  std::vector<Acc<T>> wt(taps * c);
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t k = 0; k < taps; ++k) wt[k * c + ch] = Load(w, ch * taps + k);
  return wt;
}

// acc[c] += wk[c] * v[c] over the channels.
template <typename T, typename F> inline void MulAdd(F* __restrict acc, const F* __restrict wk, const T* __restrict v,
                                                     int64_t c) {
  for (int64_t i = 0; i < c; ++i) acc[i] += wk[i] * Load(v, i);
}

// Calls fn(tap, src) for every tap (ky, kx) of output pixel (n, oy, ox) that
// reads inside x [N, H, W, C]: tap = ky·kw + kx, src = the channels of the
// input pixel it reads.
template <typename T, typename Fn>
inline void ForEachTap(const ConvParams& p, const T* x, int64_t n, int64_t oy, int64_t ox, Fn&& fn) {
  for (int64_t ky = 0; ky < p.kh; ++ky) {
    const int64_t iy = oy * p.sh - p.ph + ky * p.dh;
    if (iy < 0 || iy >= p.h) continue;
    for (int64_t kx = 0; kx < p.kw; ++kx) {
      const int64_t ix = ox * p.sw - p.pw + kx * p.dw;
      if (ix < 0 || ix >= p.w) continue;
      fn(ky * p.kw + kx, x + ((n * p.h + iy) * p.w + ix) * p.cin);
    }
  }
}

// The tiled kernels' geometry (for storage f32/f16/bf16): stride 1, dilation 1.
bool Tiled(const ConvParams& p) { return p.sh == 1 && p.sw == 1 && p.dh == 1 && p.dw == 1; }

// The forward's geometry as DwForwardArgs (no taps, no bias).
DwForwardArgs TiledArgs(const ConvParams& p) {
  DwForwardArgs a;
  a.n = p.n, a.h = p.h, a.w = p.w, a.c = p.cin, a.kh = p.kh, a.kw = p.kw, a.ph = p.ph, a.pw = p.pw;
  return a;
}

}  // namespace

template <typename T> void DepthwiseForwardCpu(const ConvParams& p, const T* x, const T* w, const T* bias, T* y) {
  using F = Acc<T>;
  const int64_t c = p.cin;
  const std::vector<F> wt = TransposeWeight(p, w);
  std::vector<F> b0(c, F(0));
  if (bias)
    for (int64_t i = 0; i < c; ++i) b0[i] = Load(bias, i);
  if constexpr (!std::is_same_v<T, double>) {
    if (Tiled(p)) {
      DwForwardArgs a = TiledArgs(p);
      a.wt = wt.data();
      a.bias = bias ? b0.data() : nullptr;
      DepthwiseForwardTiledCpu<T>(a, x, y);
      return;
    }
  }
  ParallelFor(0, p.n * p.ho, 1, [&](int64_t lo, int64_t hi) {
    std::vector<F> acc(c);
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t n = r / p.ho, oy = r % p.ho;
      for (int64_t ox = 0; ox < p.wo; ++ox) {
        std::copy(b0.begin(), b0.end(), acc.begin());
        ForEachTap(p, x, n, oy, ox,
                   [&](int64_t tap, const T* src) { MulAdd(acc.data(), wt.data() + tap * c, src, c); });
        T* dst = y + ((n * p.ho + oy) * p.wo + ox) * c;
        for (int64_t i = 0; i < c; ++i) Store(dst, i, acc[i]);
      }
    }
  });
}

// dx[n, iy, ix, c] = Σ w[c, ky, kx] · dy[n, oy, ox, c] over the taps with
// oy·sh - ph + ky·dh = iy and ox·sw - pw + kx·dw = ix.
// Stride 1, dilation 1: dx is the forward on dy (geometry [N, Ho, Wo, C])
// with the taps flipped and padding k - 1 - p (negative, a crop, when p > k - 1).
template <typename T> void DepthwiseBackwardInputCpu(const ConvParams& p, const T* dy, const T* w, T* dx) {
  using F = Acc<T>;
  const int64_t c = p.cin;
  const std::vector<F> wt = TransposeWeight(p, w);
  if constexpr (!std::is_same_v<T, double>) {
    if (Tiled(p)) {
      const int64_t taps = p.kh * p.kw;
      std::vector<float> flipped(taps * c);
      for (int64_t k = 0; k < taps; ++k)
        std::copy_n(wt.data() + (taps - 1 - k) * c, c, flipped.data() + k * c);
      DwForwardArgs a = TiledArgs(p);
      a.h = p.ho, a.w = p.wo, a.ph = p.kh - 1 - p.ph, a.pw = p.kw - 1 - p.pw;
      a.wt = flipped.data();
      DepthwiseForwardTiledCpu<T>(a, dy, dx);
      return;
    }
  }
  ParallelFor(0, p.n * p.h, 1, [&](int64_t lo, int64_t hi) {
    std::vector<F> acc(c);
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t n = r / p.h, iy = r % p.h;
      for (int64_t ix = 0; ix < p.w; ++ix) {
        std::fill(acc.begin(), acc.end(), F(0));
        for (int64_t ky = 0; ky < p.kh; ++ky) {
          const int64_t ty = iy + p.ph - ky * p.dh;
          if (ty < 0 || ty % p.sh != 0 || ty / p.sh >= p.ho) continue;
          for (int64_t kx = 0; kx < p.kw; ++kx) {
            const int64_t tx = ix + p.pw - kx * p.dw;
            if (tx < 0 || tx % p.sw != 0 || tx / p.sw >= p.wo) continue;
            MulAdd(acc.data(), wt.data() + (ky * p.kw + kx) * c,
                   dy + ((n * p.ho + ty / p.sh) * p.wo + tx / p.sw) * c, c);
          }
        }
        T* dst = dx + ((n * p.h + iy) * p.w + ix) * c;
        for (int64_t i = 0; i < c; ++i) Store(dst, i, acc[i]);
      }
    }
  });
}

// dw[c, ky, kx] = Σ_{n, oy, ox} dy[n, oy, ox, c] · x[n, iy, ix, c]: partial
// sums per chunk of output rows, then added in chunk order (deterministic
// for a given chunk count, which does not depend on the thread count).
template <typename T> void DepthwiseBackwardWeightCpu(const ConvParams& p, const T* x, const T* dy, T* dw) {
  using F = Acc<T>;
  const int64_t c = p.cin, taps = p.kh * p.kw, rows = p.n * p.ho;
  if constexpr (!std::is_same_v<T, double>) {
    if (Tiled(p)) {
      std::vector<float> dwt(taps * c);  // [kh·kw, C]
      DepthwiseBackwardWeightTiledCpu<T>(TiledArgs(p), x, dy, dwt.data());
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t k = 0; k < taps; ++k) Store(dw, ch * taps + k, dwt[k * c + ch]);
      return;
    }
  }
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(rows, 16));
  std::vector<F> part(chunks * taps * c, F(0));
  ParallelFor(0, chunks, 1, [&](int64_t lo, int64_t hi) {
    std::vector<F> dyv(c);
    for (int64_t ch = lo; ch < hi; ++ch) {
      F* acc = part.data() + ch * taps * c;
      for (int64_t r = rows * ch / chunks; r < rows * (ch + 1) / chunks; ++r) {
        const int64_t n = r / p.ho, oy = r % p.ho;
        for (int64_t ox = 0; ox < p.wo; ++ox) {
          const T* g = dy + ((n * p.ho + oy) * p.wo + ox) * c;
          for (int64_t i = 0; i < c; ++i) dyv[i] = Load(g, i);
          ForEachTap(p, x, n, oy, ox, [&](int64_t tap, const T* src) { MulAdd(acc + tap * c, dyv.data(), src, c); });
        }
      }
    }
  });
  ParallelFor(0, c, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t ch = lo; ch < hi; ++ch)
      for (int64_t k = 0; k < taps; ++k) {
        F s = 0;
        for (int64_t j = 0; j < chunks; ++j) s += part[(j * taps + k) * c + ch];
        Store(dw, ch * taps + k, s);
      }
  });
}

#define CF_DEPTHWISE_INSTANTIATE(T)                                                               \
  template void DepthwiseForwardCpu<T>(const ConvParams&, const T*, const T*, const T*, T*);      \
  template void DepthwiseBackwardInputCpu<T>(const ConvParams&, const T*, const T*, T*);          \
  template void DepthwiseBackwardWeightCpu<T>(const ConvParams&, const T*, const T*, T*);
CF_DEPTHWISE_INSTANTIATE(float)
CF_DEPTHWISE_INSTANTIATE(double)
CF_DEPTHWISE_INSTANTIATE(f16_t)
CF_DEPTHWISE_INSTANTIATE(bf16_t)
#undef CF_DEPTHWISE_INSTANTIATE

}  // namespace cf
