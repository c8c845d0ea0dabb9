// The loop shared by the pool family's CPU kernels that gather: every pixel
// of an NHWC destination (a pooled output, or an input gradient) is a sum of
// source pixels of C channels, optionally divided.
#pragma once

#include <algorithm>
#include <vector>

#include "ops/cpu_util.h"
#include "ops/pool/pool_internal.h"

namespace cf::pool_internal {

// dst: [N, R, Q, C]; one task per group of whole rows. Per pixel (n, r, q),
// fn(n, r, q, acc) adds its sources into acc (C zeros on entry) and returns
// the divisor: dst[n, r, q, :] = acc / divisor (1: the sum itself).
template <typename T, typename Fn>
void GatherPixelsCpu(T* dst, const Shape& ds, Fn&& fn) {
  using A = Acc<T>;
  const int64_t rows = ds[1], cols = ds[2], c = ds[3];
  ParallelFor(0, ds[0] * rows, 1, [&](int64_t begin, int64_t end) {
    std::vector<A> acc(c);
    for (int64_t row = begin; row < end; ++row) {
      for (int64_t q = 0; q < cols; ++q) {
        std::fill(acc.begin(), acc.end(), A(0));
        const A div = fn(row / rows, row % rows, q, acc.data());
        T* out = dst + (row * cols + q) * c;
        if (div == A(1)) {  // a pure sum (the gradients): no divide per channel
          for (int64_t i = 0; i < c; ++i) Store(out, i, acc[i]);
        } else {
          for (int64_t i = 0; i < c; ++i) Store(out, i, acc[i] / div);
        }
      }
    }
  });
}

// acc[i] += p[i] for the C channels of one source pixel.
template <typename T>
inline void AddPixel(Acc<T>* acc, const T* p, int64_t c) {
  for (int64_t i = 0; i < c; ++i) acc[i] += Load(p, i);
}

// adaptive_avg_pool2d of x [N, H, W, C] (TI) into y [N, oh, ow, C] (TO, of
// the same accumulation type), PyTorch's bins; also the ConvBlock pyramid's
// pooling (ops/convblock), which keeps the pooled map in f32.
template <typename TI, typename TO>
void AdaptiveAvgPoolCpu(const TI* x, const Shape& xs, TO* y, const Shape& ys) {
  static_assert(std::is_same_v<Acc<TI>, Acc<TO>>);
  const int64_t h = xs[1], w = xs[2], c = xs[3], oh = ys[1], ow = ys[2];
  GatherPixelsCpu(y, ys, [&](int64_t n, int64_t oy, int64_t ox, Acc<TO>* acc) {
    const int64_t y0 = AdaptiveStart(oy, h, oh), y1 = AdaptiveEnd(oy, h, oh);
    const int64_t x0 = AdaptiveStart(ox, w, ow), x1 = AdaptiveEnd(ox, w, ow);
    for (int64_t iy = y0; iy < y1; ++iy)
      for (int64_t ix = x0; ix < x1; ++ix) AddPixel(acc, x + ((n * h + iy) * w + ix) * c, c);
    return Acc<TO>((y1 - y0) * (x1 - x0));
  });
}

// The taps of one axis of resize_bilinear, in the arithmetic type A.
template <typename A>
std::vector<BilinearTap<A>> BilinearTaps(int64_t in, int64_t out) {
  std::vector<BilinearTap<A>> t(out);
  const A scale = BilinearScale<A>(in, out);
  for (int64_t o = 0; o < out; ++o) t[o] = BilinearTapOf(o, in, scale);
  return t;
}

// resize_bilinear of x [N, H, W, C] (TI) to [N, oh, ow] pixels of C channels
// (TO) written `y_pixel_stride` elements apart (C for a dense output; more
// writes into a channel slice of a wider tensor, as the ConvBlock pyramid's
// concatenation does).
template <typename TI, typename TO>
void ResizeBilinearCpu(const TI* x, const Shape& xs, TO* y, int64_t oh, int64_t ow, int64_t y_pixel_stride) {
  static_assert(std::is_same_v<Acc<TI>, Acc<TO>>);
  using A = Acc<TO>;
  const int64_t h = xs[1], w = xs[2], c = xs[3];
  const std::vector<BilinearTap<A>> ty = BilinearTaps<A>(h, oh), tx = BilinearTaps<A>(w, ow);
  ParallelFor(0, xs[0] * oh, 1, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / oh;
      const BilinearTap<A>& a = ty[row % oh];
      const TI* r0 = x + (n * h + a.i0) * w * c;
      const TI* r1 = x + (n * h + a.i1) * w * c;
      for (int64_t ox = 0; ox < ow; ++ox) {
        const BilinearTap<A>& b = tx[ox];
        const TI *p00 = r0 + b.i0 * c, *p01 = r0 + b.i1 * c, *p10 = r1 + b.i0 * c, *p11 = r1 + b.i1 * c;
        TO* q = y + (row * ow + ox) * y_pixel_stride;
        for (int64_t i = 0; i < c; ++i)
          Store(q, i,
                a.l0 * (b.l0 * Load(p00, i) + b.l1 * Load(p01, i)) +
                    a.l1 * (b.l0 * Load(p10, i) + b.l1 * Load(p11, i)));
      }
    }
  });
}

}  // namespace cf::pool_internal
