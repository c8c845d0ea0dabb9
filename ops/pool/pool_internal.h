// Window geometry shared by the pool family's shape rules, costs, CPU and CUDA
// kernels (one definition of PyTorch's index formulas; usable on the device).
#pragma once

#include <cstdint>

#include "runtime/dtype.h"  // CF_HD

namespace cf::pool_internal {

// Coordinates of element i of an NHWC tensor [N, H, W, C] (the kernels'
// one thread per element, channels fastest).
struct NhwcIndex {
  int64_t n, y, x, c;
};
CF_HD NhwcIndex NhwcOf(int64_t i, int64_t H, int64_t W, int64_t C) {
  const int64_t t = i / C;
  return {t / (W * H), (t / W) % H, t % W, i % C};
}

// ---- avg_pool2d (count_include_pad = true, ceil_mode = false)

struct PoolGeom {
  int64_t kh, kw, sh, sw, ph, pw;
};

// Output length of a pooled axis; < 1 when the kernel does not fit.
CF_HD int64_t PoolOutLen(int64_t in, int64_t k, int64_t s, int64_t p) {
  return in + 2 * p < k ? 0 : (in + 2 * p - k) / s + 1;
}

// Input range [*lo, *hi) of window o, clipped to the input (padding taps
// read nothing; the divisor stays kh * kw).
CF_HD void PoolWindow(int64_t o, int64_t k, int64_t s, int64_t p, int64_t in, int64_t* lo, int64_t* hi) {
  const int64_t start = o * s - p;
  *lo = start > 0 ? start : 0;
  *hi = start + k < in ? start + k : in;
}

// Windows o whose input range [o*s - p, o*s - p + k) contains input index i:
// o in [*lo, *hi] (empty when lo > hi).
CF_HD void PoolWindowsOf(int64_t i, int64_t k, int64_t s, int64_t p, int64_t out, int64_t* lo, int64_t* hi) {
  const int64_t a = i + p - k + 1;  // o*s >= a
  *lo = a <= 0 ? 0 : (a + s - 1) / s;
  const int64_t h = (i + p) / s;  // o*s <= i + p
  *hi = h < out - 1 ? h : out - 1;
}

// What index i of an axis of avg_pool2d's output sums, [*lo, *hi) of its
// source: for the forward, window i over the input (len = input length);
// for the backward, the windows containing input i (len = output length).
template <bool kBackward>
CF_HD void AvgPoolSources(int64_t i, int64_t k, int64_t s, int64_t p, int64_t len, int64_t* lo, int64_t* hi) {
  if constexpr (kBackward) {
    PoolWindowsOf(i, k, s, p, len, lo, hi);
    *hi += 1;
  } else {
    PoolWindow(i, k, s, p, len, lo, hi);
  }
}

// ---- adaptive_avg_pool2d: bin i of `out` over `in` is [start, end).

CF_HD int64_t AdaptiveStart(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
CF_HD int64_t AdaptiveEnd(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }
// Bins containing input index i: [*lo, *hi] (never empty: the bins cover the input).
CF_HD void AdaptiveBinsOf(int64_t i, int64_t in, int64_t out, int64_t* lo, int64_t* hi) {
  *lo = (i * out) / in;
  *hi = ((i + 1) * out - 1) / in;
}

// ---- resize_bilinear (align_corners = false, no antialias), PyTorch's rule:
// src = scale * (dst + 0.5) - 0.5 with scale = in / out, clamped below at 0;
// i0 = floor(src), i1 = i0 + 1 unless i0 is the last index; l1 = src - i0.
// A is the arithmetic type (float, or double for f64 tensors), as in PyTorch.
template <typename A>
struct BilinearTap {
  int64_t i0, i1;
  A l0, l1;
};

template <typename A>
CF_HD A BilinearScale(int64_t in, int64_t out) {
  return static_cast<A>(in) / static_cast<A>(out);
}

template <typename A>
CF_HD BilinearTap<A> BilinearTapOf(int64_t dst, int64_t in, A scale) {
  A src = scale * (static_cast<A>(dst) + A(0.5)) - A(0.5);
  if (src < A(0)) src = A(0);
  BilinearTap<A> t;
  t.i0 = static_cast<int64_t>(src);  // src >= 0: truncation is floor
  if (t.i0 > in - 1) t.i0 = in - 1;
  t.i1 = t.i0 < in - 1 ? t.i0 + 1 : t.i0;
  A l1 = src - static_cast<A>(t.i0);
  t.l1 = l1 > A(1) ? A(1) : l1;
  t.l0 = A(1) - t.l1;
  return t;
}

// Output indices whose taps may touch input index i: a superset [*lo, *hi]
// (callers check the taps exactly); from src in [i - 1, i + 1) with a margin
// of one for rounding, and everything from 0 for i <= 1 (the clamped src).
template <typename A>
CF_HD void BilinearRangeOf(int64_t i, int64_t out, A scale, int64_t* lo, int64_t* hi) {
  const A a = (static_cast<A>(i) - A(0.5)) / scale - A(0.5);
  const A b = (static_cast<A>(i) + A(1.5)) / scale - A(0.5);
  int64_t l = i <= 1 || a < A(1) ? 0 : static_cast<int64_t>(a) - 1;
  int64_t h = b < A(0) ? 0 : static_cast<int64_t>(b) + 2;
  *lo = l < 0 ? 0 : l;
  *hi = h > out - 1 ? out - 1 : h;
}

}  // namespace cf::pool_internal
