// The loop shared by the pool family's CPU kernels that gather: every pixel
// of an NHWC destination (a pooled output, or an input gradient) is a sum of
// source pixels of C channels, optionally divided.
#pragma once

#include <algorithm>
#include <vector>

#include "ops/cpu_util.h"

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

}  // namespace cf::pool_internal
