// Value conversion of "cast", shared by the CPU and CUDA kernels:
// float -> int truncates toward zero, saturates at the integer's range and
// maps NaN to 0; int -> narrower int saturates too.
#pragma once

#include <stdint.h>

#include "runtime/dtype.h"  // CF_HD

namespace cf::ew {

template <typename I> struct IntRange;
template <> struct IntRange<int32_t> {
  static constexpr double kLo = -2147483648.0, kHi = 2147483647.0;
};
template <> struct IntRange<int64_t> {
  // The largest double below 2^63; -2^63 is exact.
  static constexpr double kLo = -9223372036854775808.0, kHi = 9223372036854774784.0;
};

template <typename I, typename F> CF_HD I FloatToInt(F x) {
  const double d = static_cast<double>(x);
  if (!(d == d)) return 0;  // NaN
  if (d <= IntRange<I>::kLo) return static_cast<I>(IntRange<I>::kLo);
  if (d >= IntRange<I>::kHi) return static_cast<I>(IntRange<I>::kHi);
  return static_cast<I>(d);
}

template <typename To, typename From> CF_HD To IntToInt(From v) {
  if constexpr (sizeof(To) < sizeof(From)) {
    if (v < static_cast<From>(IntRange<To>::kLo)) return static_cast<To>(IntRange<To>::kLo);
    if (v > static_cast<From>(IntRange<To>::kHi)) return static_cast<To>(IntRange<To>::kHi);
  }
  return static_cast<To>(v);
}

}  // namespace cf::ew
