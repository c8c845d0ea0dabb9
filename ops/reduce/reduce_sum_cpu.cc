// CPU reduction engine: contiguous rows, column sums and a general fallback,
// each split across threads (over outputs, or over chunks of the reduced
// range with a final pass over the partial sums when there are few outputs).
#include "ops/reduce/reduce_sum_cpu.h"

#include <algorithm>
#include <vector>

#include "ops/cpu_util.h"
#include "ops/reduce/reduce_plan.h"
#include "ops/vec_math_avx512.h"

namespace cf {
namespace {

// Sum of n contiguous elements with 8 independent accumulators: the compiler
// vectorises it without reassociating, and the error grows more slowly.
template <typename T>
Acc<T> SumContiguous(const T* x, int64_t n) {
  Acc<T> s[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) s[k] += Load(x, i + k);
  Acc<T> total = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < n; ++i) total += Load(x, i);
  return total;
}

// AVX-512 versions (f32 / f16 / bf16; the f32 partial sums as above, in
// 4 x 16 lanes). SumContiguousAvx512: the sum of n contiguous elements.
template <typename T>
CF_VM_TARGET float SumContiguousAvx512(const T* x, int64_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 4 * vm::kLanes <= n; i += 4 * vm::kLanes) {
    s0 = _mm512_add_ps(s0, vm::Load(x + i));
    s1 = _mm512_add_ps(s1, vm::Load(x + i + 16));
    s2 = _mm512_add_ps(s2, vm::Load(x + i + 32));
    s3 = _mm512_add_ps(s3, vm::Load(x + i + 48));
  }
  for (; i < n; i += vm::kLanes) s0 = _mm512_add_ps(s0, vm::Load(x + i, vm::FirstLanes(n - i)));
  return vm::Sum(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

// acc[k] += sum over rows r0..r1 of x[r * stride + k], k < nb: four rows per
// step into each 16-lane slice of acc (acc, nb floats, stays in L1).
template <typename T>
CF_VM_TARGET void AccumulateRowsAvx512(const T* x, int64_t stride, int64_t rows, int64_t nb, float* acc) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const T* p = x + r * stride;
    for (int64_t k = 0; k < nb; k += vm::kLanes) {
      const __mmask16 m = vm::FirstLanes(nb - k);
      const __m512 u = _mm512_add_ps(vm::Load(p + k, m), vm::Load(p + stride + k, m));
      const __m512 v = _mm512_add_ps(vm::Load(p + 2 * stride + k, m), vm::Load(p + 3 * stride + k, m));
      _mm512_mask_storeu_ps(acc + k, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, acc + k), _mm512_add_ps(u, v)));
    }
  }
  for (; r < rows; ++r)
    for (int64_t k = 0; k < nb; k += vm::kLanes) {
      const __mmask16 m = vm::FirstLanes(nb - k);
      _mm512_mask_storeu_ps(acc + k, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, acc + k), vm::Load(x + r * stride + k, m)));
    }
}

// How many chunks to split a reduced range of `r` into so that `items`
// independent pieces of work keep every thread busy (chunks of >= min_chunk).
int64_t ChunksFor(int64_t items, int64_t r, int64_t min_chunk) {
  const int64_t want = 4 * NumThreads();
  if (items >= want) return 1;
  int64_t c = (want + items - 1) / items;
  return std::max<int64_t>(1, std::min(c, r / min_chunk));
}

// x: [A, R] rows; out[a] = scale * sum_r x[a, r].
template <typename T>
void RowSums(const T* x, int64_t A, int64_t R, Acc<T> scale, T* out) {
  const int64_t C = ChunksFor(A, R, 1 << 14);
  const int64_t chunk = (R + C - 1) / C;
  std::vector<Acc<T>> partial(A * C);
  const int64_t grain = RowGrain(chunk);
  ParallelFor(0, A * C, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t it = lo; it < hi; ++it) {
      const int64_t a = it / C, c = it % C;
      const int64_t r0 = c * chunk, r1 = std::min(R, r0 + chunk);
      if constexpr (!std::is_same_v<T, double>) {
        if (vm::HasAvx512()) {
          partial[it] = r1 > r0 ? SumContiguousAvx512(x + a * R + r0, r1 - r0) : 0.0f;
          continue;
        }
      }
      partial[it] = r1 > r0 ? SumContiguous(x + a * R + r0, r1 - r0) : Acc<T>(0);
    }
  });
  for (int64_t a = 0; a < A; ++a) {
    Acc<T> s = 0;
    for (int64_t c = 0; c < C; ++c) s += partial[a * C + c];
    Store(out, a, s * scale);
  }
}

// x: [A, R, B]; out[a, b] = scale * sum_r x[a, r, b]. Work items are
// (a, chunk of R, tile of B); each sums its rows into a vector of partials.
template <typename T>
void ColumnSums(const T* x, int64_t A, int64_t R, int64_t B, Acc<T> scale, T* out) {
  const int64_t tile = std::min<int64_t>(B, 2048);
  const int64_t tiles = (B + tile - 1) / tile;
  const int64_t C = ChunksFor(A * tiles, R, 16);
  const int64_t chunk = (R + C - 1) / C;
  std::vector<Acc<T>> partial(A * C * B);
  const int64_t grain = RowGrain(chunk * tile);
  ParallelFor(0, A * C * tiles, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t it = lo; it < hi; ++it) {
      const int64_t t = it % tiles, c = (it / tiles) % C, a = it / (tiles * C);
      const int64_t b0 = t * tile, nb = std::min(B, b0 + tile) - b0;
      const int64_t r0 = c * chunk, r1 = std::min(R, r0 + chunk);
      Acc<T>* acc = partial.data() + (a * C + c) * B + b0;
      for (int64_t k = 0; k < nb; ++k) acc[k] = 0;
      if constexpr (!std::is_same_v<T, double>) {
        if (vm::HasAvx512()) {
          AccumulateRowsAvx512(x + (a * R + r0) * B + b0, B, r1 - r0, nb, acc);
          continue;
        }
      }
      for (int64_t r = r0; r < r1; ++r) {
        const T* row = x + (a * R + r) * B + b0;
        for (int64_t k = 0; k < nb; ++k) acc[k] += Load(row, k);
      }
    }
  });
  ParallelFor(0, A * B, kElementwiseGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t o = lo; o < hi; ++o) {
      const int64_t a = o / B, b = o % B;
      Acc<T> s = 0;
      for (int64_t c = 0; c < C; ++c) s += partial[(a * C + c) * B + b];
      Store(out, o, s * scale);
    }
  });
}

// Any layout: each output walks its reduced elements with an odometer.
template <typename T>
void GeneralSums(const T* x, const ReducePlan& p, Acc<T> scale, T* out) {
  int64_t stride[Shape::kMaxRank];
  int64_t s = 1;
  for (int d = p.rank - 1; d >= 0; --d) {
    stride[d] = s;
    s *= p.dims[d];
  }
  int kept[Shape::kMaxRank], red[Shape::kMaxRank], nk = 0, nr = 0;
  for (int d = 0; d < p.rank; ++d) (p.reduced[d] ? red[nr++] : kept[nk++]) = d;
  const int64_t grain = RowGrain(p.num_reduce);
  ParallelFor(0, p.num_out, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t o = lo; o < hi; ++o) {
      int64_t base = 0, rem = o;
      for (int k = nk - 1; k >= 0; --k) {
        base += (rem % p.dims[kept[k]]) * stride[kept[k]];
        rem /= p.dims[kept[k]];
      }
      Acc<T> sum = 0;
      for (int64_t j = 0; j < p.num_reduce; ++j) {
        int64_t off = base, q = j;
        for (int k = nr - 1; k >= 0; --k) {
          off += (q % p.dims[red[k]]) * stride[red[k]];
          q /= p.dims[red[k]];
        }
        sum += Load(x, off);
      }
      Store(out, o, sum * scale);
    }
  });
}

}  // namespace

Status ReduceSumCpu(const Tensor& x, uint32_t mask, double scale, Tensor& out) {
  const ReducePlan p = PlanReduce(x.shape(), mask);
  if (out.numel() != p.num_out) {
    return absl::InternalError(absl::StrCat("reduction of ", x.shape().ToString(), " into ",
                                            out.shape().ToString(), ": expected ", p.num_out, " outputs"));
  }
  return DispatchFloat(x.dtype(), "reduce_sum", [&](auto tag) {
    using T = decltype(tag);
    const T* in = x.data<T>();
    T* o = out.data<T>();
    const Acc<T> sc = static_cast<Acc<T>>(scale);
    if (p.num_out == 0) return absl::OkStatus();
    if (p.num_reduce == 0) {
      for (int64_t i = 0; i < p.num_out; ++i) Store(o, i, Acc<T>(0));
    } else if (!p.is_3d) {
      GeneralSums(in, p, sc, o);
    } else if (p.inner == 1) {
      RowSums(in, p.outer, p.r, sc, o);
    } else {
      ColumnSums(in, p.outer, p.r, p.inner, sc, o);
    }
    return absl::OkStatus();
  });
}

}  // namespace cf
