// The CPU loop over a broadcast: rows of the innermost collapsed dimension,
// split across threads, with inner loops specialised for the three access
// patterns (both contiguous, a contiguous and b constant, a constant and b
// contiguous) so the compiler vectorises them.
#pragma once

#include <algorithm>

#include "ops/cpu_util.h"
#include "ops/elementwise/broadcast.h"

namespace cf {

// Calls row(oa, ob, i, len) for the output elements [lo, hi) of the
// broadcast `p`, one run of the innermost collapsed dimension at a time:
// out[i + k] = f(a[oa + k * sa], b[ob + k * sb]) for k < len, with sa, sb
// the innermost strides (0 for a broadcast operand, else 1).
template <typename Row>
void ForEachBroadcastRow(const BroadcastPlan& p, int64_t lo, int64_t hi, Row&& row) {
  const int64_t inner = p.dims[p.rank - 1];
  const int64_t sa = p.stride_a[p.rank - 1], sb = p.stride_b[p.rank - 1];
  int64_t i = lo;
  while (i < hi) {
    int64_t r = i / inner, col = i % inner;
    const int64_t len = std::min(inner - col, hi - i);
    // Offsets of this row's start in a and b.
    int64_t oa = col * sa, ob = col * sb;
    for (int d = p.rank - 2; d >= 0; --d) {
      const int64_t idx = r % p.dims[d];
      r /= p.dims[d];
      oa += idx * p.stride_a[d];
      ob += idx * p.stride_b[d];
    }
    row(oa, ob, i, len);
    i += len;
  }
}

// out[i] = f(a[ia], b[ib]) over the broadcast `p`, arithmetic in Acc<T>.
// `out` may alias `a` or `b` when that operand is not broadcast.
template <typename T, typename F>
void BroadcastBinaryCpu(const BroadcastPlan& p, const T* a, const T* b, T* out, F f) {
  const int64_t sa = p.stride_a[p.rank - 1], sb = p.stride_b[p.rank - 1];
  ParallelFor(0, p.numel(), kElementwiseGrain, [&](int64_t lo, int64_t hi) {
    ForEachBroadcastRow(p, lo, hi, [&](int64_t oa, int64_t ob, int64_t i, int64_t len) {
      const T* pa = a + oa;
      const T* pb = b + ob;
      T* po = out + i;
      if (sa != 0 && sb != 0) {
        for (int64_t k = 0; k < len; ++k) Store(po, k, f(Load(pa, k), Load(pb, k)));
      } else if (sa != 0) {
        const Acc<T> vb = Load(pb, 0);
        for (int64_t k = 0; k < len; ++k) Store(po, k, f(Load(pa, k), vb));
      } else if (sb != 0) {
        const Acc<T> va = Load(pa, 0);
        for (int64_t k = 0; k < len; ++k) Store(po, k, f(va, Load(pb, k)));
      } else {
        const Acc<T> v = f(Load(pa, 0), Load(pb, 0));
        for (int64_t k = 0; k < len; ++k) Store(po, k, v);
      }
    });
  });
}

// out[i] = f(x[i]) over n elements; `out` may alias `x`.
template <typename T, typename F>
void UnaryCpu(int64_t n, const T* x, T* out, F f) {
  ParallelFor(0, n, kElementwiseGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) Store(out, i, f(Load(x, i)));
  });
}

}  // namespace cf
