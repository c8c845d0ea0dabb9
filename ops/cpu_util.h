// Helpers for CPU kernels: dtype dispatch and f32/f64 accumulation.
// Storage may be f16/bf16/f32 (and f64 for tests); arithmetic is done in Acc<T>:
// double for f64, float otherwise (DESIGN.md: accumulate in f32).
#pragma once

#include <algorithm>
#include <type_traits>
#include <vector>

#include "ops/op.h"
#include "runtime/thread_pool.h"

namespace cf {

template <typename T> using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <typename T> inline Acc<T> Load(const T* p, int64_t i) {
  if constexpr (std::is_same_v<T, f16_t>) return F16BitsToF32(p[i].bits);
  else if constexpr (std::is_same_v<T, bf16_t>) return BF16BitsToF32(p[i].bits);
  else return p[i];
}
template <typename T> inline void Store(T* p, int64_t i, Acc<T> v) {
  if constexpr (std::is_same_v<T, f16_t>) p[i].bits = F32ToF16Bits(v);
  else if constexpr (std::is_same_v<T, bf16_t>) p[i].bits = F32ToBF16Bits(v);
  else p[i] = static_cast<T>(v);
}
template <typename T> inline T FromAcc(Acc<T> v) {
  T out;
  Store(&out, 0, v);
  return out;
}

// A parameter vector [n] of T (gamma, beta, ...) as Acc<T> values, or n
// copies of `fill` when t is null (an absent optional parameter).
template <typename T>
std::vector<Acc<T>> LoadVector(const Tensor* t, int64_t n, Acc<T> fill) {
  std::vector<Acc<T>> v(n, fill);
  if (t)
    for (int64_t i = 0; i < n; ++i) v[i] = Load(t->data<T>(), i);
  return v;
}

// Per-task partial sums part [outer, mid, inner] reduced over mid, in order
// of mid (deterministic): out[o * inner + i] = sum_m part[(o * mid + m) * inner + i].
// T is the output's storage type (or Acc<T> itself for sums kept in Acc).
template <typename T>
void SumOverMiddle(const Acc<T>* part, int64_t outer, int64_t mid, int64_t inner, T* out) {
  std::vector<Acc<T>> acc(inner);
  for (int64_t o = 0; o < outer; ++o) {
    std::fill(acc.begin(), acc.end(), Acc<T>(0));
    for (int64_t m = 0; m < mid; ++m)
      for (int64_t i = 0; i < inner; ++i) acc[i] += part[(o * mid + m) * inner + i];
    for (int64_t i = 0; i < inner; ++i) Store(out, o * inner + i, acc[i]);
  }
}

// Calls fn(T{}) with T the C++ storage type of floating dtype `t`
// (float, double, f16_t, bf16_t); an error naming `op` for other dtypes.
template <typename F>
Status DispatchFloat(DType t, absl::string_view op, F&& fn) {
  switch (t) {
    case DType::f32: return fn(float{});
    case DType::f64: return fn(double{});
    case DType::f16: return fn(f16_t{});
    case DType::bf16: return fn(bf16_t{});
    default:
      return absl::InvalidArgumentError(absl::StrCat(op, ": dtype ", DTypeName(t), " is not supported (floating only)"));
  }
}

// Grain for ParallelFor over elementwise work: about 32K elements per task.
constexpr int64_t kElementwiseGrain = 1 << 15;

// Grain for ParallelFor over rows of `row_elems` elements each: rows per task
// so that a task covers about `target` elements (at least one row).
inline int64_t RowGrain(int64_t row_elems, int64_t target = kElementwiseGrain) {
  return std::max<int64_t>(1, target / std::max<int64_t>(1, row_elems));
}

}  // namespace cf
