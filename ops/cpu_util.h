// Helpers for CPU kernels: dtype dispatch and f32/f64 accumulation.
// Storage may be f16/bf16/f32 (and f64 for tests); arithmetic is done in Acc<T>:
// double for f64, float otherwise (DESIGN.md: accumulate in f32).
#pragma once

#include <type_traits>

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

}  // namespace cf
