// The scalar math of the activations and their derivatives, shared by the
// CPU kernels (float or double arithmetic) and the CUDA kernels (float).
//
// FLOP counts (the cost rules and docs/ops/activation.md) are those of the
// conventional formula of each function, written in the comment above it
// (E = elementwise arithmetic + - * / and comparisons, T = transcendentals).
// The code may evaluate an equivalent, more accurate form: 1 + erf(z) as
// erfc(-z) and 1 + tanh(u) as 2 / (1 + e^-2u) (no cancellation in GELU's
// negative tail); the count does not change.
#pragma once

#include "ops/elementwise/elementwise_math.h"  // ew::ExpT, ew::ErfcT
#include "runtime/dtype.h"                     // CF_HD

namespace cf::act {

enum class Kind : int { kSilu, kGeluErf, kGeluTanh, kQuickGelu, kLeakyRelu, kElu, kSigmoid };

using ew::ErfcT;
using ew::ExpT;

constexpr double kInvSqrt2 = 0.70710678118654752440;     // 1 / sqrt(2)
constexpr double kInvSqrt2Pi = 0.39894228040143267794;   // 1 / sqrt(2 pi)
constexpr double kSqrt2OverPi = 0.79788456080286535588;  // sqrt(2 / pi)
constexpr double kGeluCubic = 0.044715;
constexpr double kQuickGelu = 1.702;

// x / (1 + e^-z) without overflow: for z < 0 it is evaluated as
// x e^z / (1 + e^z), so the far negative tail (silu below -88, tanh-GELU
// below -10 in float) is its tiny value instead of x / inf = 0.
template <typename A> CF_HD A TimesLogistic(A x, A z) {
  const A e = ExpT(z > A(0) ? -z : z);  // e^-|z| in [0, 1]; NaN stays NaN
  if (z > A(0)) return x / (A(1) + e);
  // e == 0 (z below ~-104 in float, or -inf): the limit, a zero of x's sign
  // (x e would be NaN for x = -inf); the vectorised CPU path agrees.
  if (e == A(0)) return x < A(0) ? -A(0) : A(0);
  return x * e / (A(1) + e);
}

// f(x); p is negative_slope (leaky_relu) or alpha (elu), unused otherwise.
template <Kind K, typename A> CF_HD A Forward(A x, A p) {
  if constexpr (K == Kind::kSigmoid) {
    // 1 / (1 + e^-x): E2 T1
    return TimesLogistic(A(1), x);
  } else if constexpr (K == Kind::kSilu) {
    // x / (1 + e^-x): E2 T1
    return TimesLogistic(x, x);
  } else if constexpr (K == Kind::kGeluErf) {
    // 0.5 x (1 + erf(x / sqrt 2)): E4 T1
    const A c = ErfcT(-x * A(kInvSqrt2));
    return c == A(0) ? (x < A(0) ? -A(0) : A(0)) : A(0.5) * x * c;  // the limit at -inf (not -inf * 0)
  } else if constexpr (K == Kind::kGeluTanh) {
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): E8 T1
    const A u = A(kSqrt2OverPi) * (x + A(kGeluCubic) * (x * x) * x);
    return TimesLogistic(x, A(2) * u);
  } else if constexpr (K == Kind::kQuickGelu) {
    // x / (1 + e^(-1.702 x)): E3 T1
    return TimesLogistic(x, A(kQuickGelu) * x);
  } else if constexpr (K == Kind::kLeakyRelu) {
    // x > 0 ? x : p x: E2
    return x > A(0) ? x : p * x;
  } else {
    // elu: x > 0 ? x : p (e^x - 1): E3 T1
    return x > A(0) ? x : p * (ExpT(x) - A(1));
  }
}

// f'(x) (without the multiply by the incoming gradient; the backward kernels
// add 1 E for it).
template <Kind K, typename A> CF_HD A Derivative(A x, A p) {
  if constexpr (K == Kind::kSigmoid) {
    // s = 1 / (1 + e^-x) (E2 T1); s (1 - s) (E2): E4 T1
    const A s = TimesLogistic(A(1), x);
    return s * (A(1) - s);
  } else if constexpr (K == Kind::kSilu) {
    // s (E2 T1); s (1 + x (1 - s)) (E4): E6 T1
    const A s = TimesLogistic(A(1), x);
    return s * (A(1) + x * (A(1) - s));
  } else if constexpr (K == Kind::kGeluErf) {
    // 0.5 (1 + erf(x / sqrt 2)) (E3 T1) + x e^(-x^2 / 2) / sqrt(2 pi) (E4 T1) + (E1): E8 T2
    return A(0.5) * ErfcT(-x * A(kInvSqrt2)) + x * A(kInvSqrt2Pi) * ExpT(A(-0.5) * (x * x));
  } else if constexpr (K == Kind::kGeluTanh) {
    // x2 = x x (E1); t = tanh(c (x + a x2 x)) (E4 T1);
    // 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x2) (E11): E16 T1.
    // Evaluated with s = (1 + t) / 2 = 1 / (1 + e^-2u): s + x s (1 - s) 2c (1 + 3a x2).
    const A x2 = x * x;
    const A u = A(kSqrt2OverPi) * (x + A(kGeluCubic) * x2 * x);
    const A s = TimesLogistic(A(1), A(2) * u);
    return s + x * s * (A(1) - s) * (A(2 * kSqrt2OverPi) * (A(1) + A(3 * kGeluCubic) * x2));
  } else if constexpr (K == Kind::kQuickGelu) {
    // kx = 1.702 x (E1); s = 1 / (1 + e^-kx) (E2 T1); s (1 + kx (1 - s)) (E4): E7 T1
    const A kx = A(kQuickGelu) * x;
    const A s = TimesLogistic(A(1), kx);
    return s * (A(1) + kx * (A(1) - s));
  } else if constexpr (K == Kind::kLeakyRelu) {
    // x > 0 ? 1 : p: E1
    return x > A(0) ? A(1) : p;
  } else {
    // elu: x > 0 ? 1 : p e^x: E2 T1
    return x > A(0) ? A(1) : p * ExpT(x);
  }
}

// Operation counts per element of Forward and Derivative above.
struct Count {
  int e, t;
};
constexpr Count ForwardCount(Kind k) {
  switch (k) {
    case Kind::kSigmoid: return {2, 1};
    case Kind::kSilu: return {2, 1};
    case Kind::kGeluErf: return {4, 1};
    case Kind::kGeluTanh: return {8, 1};
    case Kind::kQuickGelu: return {3, 1};
    case Kind::kLeakyRelu: return {2, 0};
    case Kind::kElu: return {3, 1};
  }
  return {0, 0};
}
constexpr Count DerivativeCount(Kind k) {
  switch (k) {
    case Kind::kSigmoid: return {4, 1};
    case Kind::kSilu: return {6, 1};
    case Kind::kGeluErf: return {8, 2};
    case Kind::kGeluTanh: return {16, 1};
    case Kind::kQuickGelu: return {7, 1};
    case Kind::kLeakyRelu: return {1, 0};
    case Kind::kElu: return {2, 1};
  }
  return {0, 0};
}

}  // namespace cf::act
