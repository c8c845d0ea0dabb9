// The activations of activation_math.h on 16 f32 lanes (ops/vec_math_avx512.h),
// for the CPU kernels of activation.cc and geglu.cc: forward and derivative
// of silu, gelu (both forms), quick_gelu and sigmoid. The others
// (leaky_relu, elu) and f64 storage keep the scalar formulas.
#pragma once

#include "ops/activation/activation_math.h"
#include "ops/vec_math_avx512.h"

namespace cf::act {

template <Kind K>
constexpr bool kHasVec = K == Kind::kSilu || K == Kind::kGeluErf || K == Kind::kGeluTanh ||
                         K == Kind::kQuickGelu || K == Kind::kSigmoid;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

template <Kind K>
CF_VM_TARGET inline __m512 VecForward(__m512 x) {
  static_assert(kHasVec<K>);
  if constexpr (K == Kind::kSilu) return vm::Silu(x);
  else if constexpr (K == Kind::kGeluErf) return vm::GeluErf(x);
  else if constexpr (K == Kind::kGeluTanh) return vm::GeluTanh(x);
  else if constexpr (K == Kind::kQuickGelu) return vm::TimesLogistic(x, _mm512_mul_ps(vm::Set(float(kQuickGelu)), x));
  else return vm::Sigmoid(x);
}

// f'(x), the formulas of Derivative<K> in activation_math.h.
template <Kind K>
CF_VM_TARGET inline __m512 VecDerivative(__m512 x) {
  static_assert(kHasVec<K>);
  const __m512 one = vm::Set(1.0f);
  if constexpr (K == Kind::kSigmoid) {
    const __m512 s = vm::Sigmoid(x);
    return _mm512_mul_ps(s, _mm512_sub_ps(one, s));
  } else if constexpr (K == Kind::kSilu || K == Kind::kQuickGelu) {
    const __m512 kx = K == Kind::kSilu ? x : _mm512_mul_ps(vm::Set(float(kQuickGelu)), x);
    const __m512 s = vm::Sigmoid(kx);
    return _mm512_mul_ps(s, _mm512_fmadd_ps(kx, _mm512_sub_ps(one, s), one));
  } else if constexpr (K == Kind::kGeluErf) {
    const __m512 cdf = _mm512_mul_ps(vm::Set(0.5f), vm::Erfc(_mm512_mul_ps(x, vm::Set(-float(kInvSqrt2)))));
    const __m512 pdf = vm::Exp(_mm512_mul_ps(vm::Set(-0.5f), _mm512_mul_ps(x, x)));
    return _mm512_fmadd_ps(_mm512_mul_ps(x, vm::Set(float(kInvSqrt2Pi))), pdf, cdf);
  } else {
    const __m512 x2 = _mm512_mul_ps(x, x);
    const __m512 u = _mm512_mul_ps(vm::Set(float(kSqrt2OverPi)), _mm512_fmadd_ps(_mm512_mul_ps(vm::Set(float(kGeluCubic)), x2), x, x));
    const __m512 s = vm::Sigmoid(_mm512_add_ps(u, u));
    const __m512 k = _mm512_mul_ps(vm::Set(float(2 * kSqrt2OverPi)), _mm512_fmadd_ps(vm::Set(float(3 * kGeluCubic)), x2, one));
    return _mm512_fmadd_ps(_mm512_mul_ps(_mm512_mul_ps(x, s), _mm512_sub_ps(one, s)), k, s);
  }
}

#pragma GCC diagnostic pop

}  // namespace cf::act
