// The scalar math of the elementwise ops, shared by the CPU kernels (float
// or double arithmetic) and the CUDA kernels (float), so both backends
// compute the same formula.
#pragma once

#include <math.h>

#include "runtime/dtype.h"  // CF_HD

namespace cf::ew {

// Binary ops, selected by a compile-time code.
enum class BinaryKind : int { kAdd, kSub, kMul, kDiv };

template <BinaryKind K, typename A> CF_HD A Binary(A x, A y) {
  if constexpr (K == BinaryKind::kAdd) return x + y;
  else if constexpr (K == BinaryKind::kSub) return x - y;
  else if constexpr (K == BinaryKind::kMul) return x * y;
  else return x / y;
}

enum class UnaryKind : int { kScale, kExp, kSqrt, kRsqrt, kNeg, kSquare };

// Math-library functions by precision (float on the device and for f32 /
// f16 / bf16 storage, double for f64).
CF_HD float ExpT(float x) { return expf(x); }
CF_HD double ExpT(double x) { return exp(x); }
CF_HD float ErfcT(float x) { return erfcf(x); }
CF_HD double ErfcT(double x) { return erfc(x); }
CF_HD float SqrtT(float x) { return sqrtf(x); }
CF_HD double SqrtT(double x) { return sqrt(x); }

// Unary ops; p0 / p1 are the "scale" attributes (mul, add), unused otherwise.
template <UnaryKind K, typename A> CF_HD A Unary(A x, A p0, A p1) {
  if constexpr (K == UnaryKind::kScale) return x * p0 + p1;
  else if constexpr (K == UnaryKind::kExp) return ExpT(x);
  else if constexpr (K == UnaryKind::kSqrt) return SqrtT(x);
  else if constexpr (K == UnaryKind::kRsqrt) return A(1) / SqrtT(x);
  else if constexpr (K == UnaryKind::kNeg) return -x;
  else return x * x;
}

}  // namespace cf::ew
