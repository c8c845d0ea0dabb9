// Vector math on 16 floats with AVX-512: exp, exp2, erf, erfc, tanh,
// sigmoid and from them silu, gelu (erf form) and gelu (tanh form), plus the
// f32 / f16 / bf16 loads and stores of the CPU kernels. One implementation
// for every CPU kernel (activations, softmax, attention's exp2, ...).
//
// Everything here is compiled for AVX-512 by the target attribute only:
// call it from code that checked vm::HasAvx512() first (the callers keep a
// portable scalar path, the libm formulas of activation_math.h /
// elementwise_math.h, for other CPUs and for f64).
//
// Accuracy: max error in ulps of the f32 result against a float64 reference
// over the ranges of tests/ops/vec_math_test.cc (kCases there states each
// bound and the test holds each function to it; docs/vec-math.md has the
// numbers measured over every float).
// NaN in gives NaN out; +-inf and overflow / underflow give the limits.
//
// Polynomial coefficients: near-minimax fits (Lawson's iteration of weighted
// least squares on Chebyshev nodes, float64 against mpmath) made by
// ops/vec_math_fit.py, which prints each fit's error.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "runtime/dtype.h"

namespace cf::vm {

// True when the CPU has the AVX-512 subsets these functions use (F, BW, VL, DQ).
inline bool HasAvx512() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return has;
}

#define CF_VM_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

// GCC 12's AVX-512 headers pass _mm512_undefined_ps() as the unused source of
// unmasked max / roundscale / scalef, which -W(maybe-)uninitialized reports
// (a false positive in the system header).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

constexpr int kLanes = 16;

CF_VM_TARGET inline __m512 Set(float v) { return _mm512_set1_ps(v); }

// p(x) = c[0] + c[1] x + ... by Horner's rule.
template <int N>
CF_VM_TARGET inline __m512 Poly(__m512 x, const float (&c)[N]) {
  __m512 p = Set(c[N - 1]);
  for (int i = N - 2; i >= 0; --i) p = _mm512_fmadd_ps(p, x, Set(c[i]));
  return p;
}

// 2^x for x <= 128: x = n + f with |f| <= 1/2, 2^f = 1 + f q(f) with q a
// degree-5 fit, times 2^n by vscalefps. x is first raised to -200 so that
// exp2(-inf) (a masked score) underflows to exactly 0; maxps returns its
// second operand when one is NaN, so NaN stays NaN. The attention kernels'
// softmax (scores pre-scaled by log2 e).
CF_VM_TARGET inline __m512 Exp2(__m512 x) {
  x = _mm512_max_ps(Set(-200.0f), x);
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, n);
  static constexpr float q[] = {6.931472029e-01f, 2.402264791e-01f, 5.550332470e-02f,
                                9.618437366e-03f, 1.339887487e-03f, 1.535336063e-04f};
  return _mm512_scalef_ps(_mm512_fmadd_ps(f, Poly(f, q), Set(1.0f)), n);
}

// e^x: n = round(x log2 e), r = x - n ln 2 (two-constant Cody-Waite with
// FMA, |r| <= ln2 / 2), e^r = 1 + r q(r) with q a degree-5 fit, times 2^n by
// vscalefps (which also rounds subnormal results once and overflows to inf).
// x is clamped to [-104, 89] first, beyond which e^x is 0 or inf in f32.
CF_VM_TARGET inline __m512 Exp(__m512 x) {
  x = _mm512_min_ps(Set(89.0f), _mm512_max_ps(Set(-104.0f), x));  // NaN stays NaN (second operand)
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, Set(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, Set(6.93147182464599609375e-1f), x);  // ln 2 rounded to f32
  r = _mm512_fnmadd_ps(n, Set(-1.90465429995776804e-9f), r);          // ln 2 - that
  static constexpr float q[] = {1.000000032e+00f, 4.999999421e-01f, 1.666643126e-01f,
                                4.166800207e-02f, 8.374155595e-03f, 1.384365236e-03f};
  return _mm512_scalef_ps(_mm512_fmadd_ps(r, Poly(r, q), Set(1.0f)), n);
}

CF_VM_TARGET inline __m512 Abs(__m512 x) {
  return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
}
// x with the sign bit of s.
CF_VM_TARGET inline __m512 CopySign(__m512 x, __m512 s) {
  const __m512i m = _mm512_set1_epi32(int32_t(0x80000000u));
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_andnot_si512(m, _mm512_castps_si512(x)),
                                             _mm512_and_si512(m, _mm512_castps_si512(s))));
}

namespace detail {

// erf(a) / a for a^2 = s <= 1/4 (degree-4 fit in s).
CF_VM_TARGET inline __m512 ErfSmallOverA(__m512 s) {
  static constexpr float c[] = {1.128379166e+00f, -3.761260857e-01f, 1.128282281e-01f, -2.675718417e-02f,
                                4.717989866e-03f};
  return Poly(s, c);
}

// erfc(a) for a >= 1/2 given a^2 = hi + lo exactly (hi = round(a^2)):
// e^-a^2 P(t), t = 1 / (1 + a / 2), P a degree-9 fit of erfc(a) e^(a^2) on
// a in [1/2, 10.5]; e^-(hi + lo) = e^-hi (1 - lo). a is at most 10.5
// (erfc is 0 in f32 from about 10.06 on; the callers clamp).
CF_VM_TARGET inline __m512 ErfcLarge(__m512 a, __m512 hi, __m512 lo) {
  const __m512 t = _mm512_div_ps(Set(1.0f), _mm512_fmadd_ps(a, Set(0.5f), Set(1.0f)));
  static constexpr float c[] = {3.498275471e-06f, 2.819855203e-01f, 2.835836227e-01f,  2.351949846e-01f,
                                2.339743340e-01f, -1.045244859e-01f, 4.006798713e-01f, -6.053904601e-01f,
                                3.481692206e-01f, -7.368302736e-02f};
  const __m512 e = Exp(_mm512_sub_ps(_mm512_setzero_ps(), hi));
  return _mm512_mul_ps(_mm512_fnmadd_ps(e, lo, e), Poly(t, c));
}

// erfc(z) with a = |z| (<= 10.5) and a^2 = hi + lo: erfc(-a) = 2 - erfc(a).
CF_VM_TARGET inline __m512 ErfcOf(__m512 z, __m512 a, __m512 hi, __m512 lo) {
  const __mmask16 small = _mm512_cmp_ps_mask(a, Set(0.5f), _CMP_LT_OQ);
  const __m512 large = ErfcLarge(_mm512_max_ps(a, Set(0.5f)), hi, lo);  // erfc(a), a >= 1/2
  const __m512 erf_small = _mm512_mul_ps(a, ErfSmallOverA(hi));        // erf(a), a < 1/2
  const __mmask16 neg = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ);
  // a < 1/2: 1 -+ erf(a); a >= 1/2: erfc(a) or 2 - erfc(a).
  const __m512 r_small = _mm512_mask_add_ps(_mm512_sub_ps(Set(1.0f), erf_small), neg, Set(1.0f), erf_small);
  const __m512 r_large = _mm512_mask_sub_ps(large, neg, Set(2.0f), large);
  __m512 r = _mm512_mask_blend_ps(small, r_large, r_small);
  // NaN in: NaN out (the compares above are false for NaN).
  return _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(z, z, _CMP_UNORD_Q), z);
}

// erf(a) / a for a^2 = s <= 1 (degree-6 fit in s): Erf's wider small branch.
CF_VM_TARGET inline __m512 ErfBelowOneOverA(__m512 s) {
  static constexpr float c[] = {1.128379166e+00f,  -3.761262582e-01f, 1.128358515e-01f, -2.685381187e-02f,
                                5.188327560e-03f,  -8.010192520e-04f, 7.853857703e-05f};
  return Poly(s, c);
}

}  // namespace detail

// erfc(x).
CF_VM_TARGET inline __m512 Erfc(__m512 x) {
  const __m512 a = _mm512_min_ps(Set(10.5f), Abs(x));
  const __m512 hi = _mm512_mul_ps(a, a);
  return detail::ErfcOf(x, a, hi, _mm512_fmsub_ps(a, a, hi));
}

// erf(x): a P(a^2) below 1, else sign(x) (1 - erfc(|x|)) (erfc < 0.16
// there, so its error shrinks in the difference).
CF_VM_TARGET inline __m512 Erf(__m512 x) {
  const __m512 a = _mm512_min_ps(Set(10.5f), Abs(x));
  const __m512 hi = _mm512_mul_ps(a, a);
  const __m512 lo = _mm512_fmsub_ps(a, a, hi);
  const __m512 small = _mm512_mul_ps(a, detail::ErfBelowOneOverA(hi));
  const __m512 large = _mm512_sub_ps(Set(1.0f), detail::ErfcLarge(_mm512_max_ps(a, Set(1.0f)), hi, lo));
  const __m512 r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, Set(1.0f), _CMP_LT_OQ), large, small);
  return _mm512_mask_mov_ps(CopySign(r, x), _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

// tanh(x): a + a^3 P(a^2) below 0.55 (no cancellation near 0), else
// sign(x) (1 - 2 / (e^2a + 1)) (e^2a overflowing to inf gives 1).
CF_VM_TARGET inline __m512 Tanh(__m512 x) {
  const __m512 a = Abs(x);
  const __m512 s = _mm512_mul_ps(a, a);
  static constexpr float c[] = {-3.333331756e-01f, 1.333258612e-01f, -5.385230854e-02f, 2.107167397e-02f,
                                -6.274232911e-03f};
  const __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(a, s), Poly(s, c), a);
  const __m512 e = Exp(_mm512_add_ps(a, a));
  const __m512 large = _mm512_sub_ps(Set(1.0f), _mm512_div_ps(Set(2.0f), _mm512_add_ps(e, Set(1.0f))));
  const __m512 r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, Set(0.55f), _CMP_LT_OQ), large, small);
  return _mm512_mask_mov_ps(CopySign(r, x), _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

// x / (1 + e^-(z + zl)) without overflow, zl a small correction of z (0
// when z is exact): with e = e^-|z| (1 -+ zl) in (0, 1], x / (1 + e) for
// z > 0 and x e / (1 + e) otherwise (activation_math.h's TimesLogistic).
// x = -inf gives -0 (the limit), not -inf * 0.
CF_VM_TARGET inline __m512 TimesLogistic(__m512 x, __m512 z, __m512 zl) {
  const __mmask16 pos = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GT_OQ);
  __m512 e = Exp(_mm512_sub_ps(_mm512_setzero_ps(), Abs(z)));
  const __m512 corr = _mm512_mask_sub_ps(zl, pos, _mm512_setzero_ps(), zl);  // -zl for z > 0, else zl
  e = _mm512_fmadd_ps(corr, e, e);
  const __m512 xm = _mm512_max_ps(Set(-3.40282347e38f), x);  // -inf -> -FLT_MAX; NaN stays
  const __m512 num = _mm512_mask_mov_ps(_mm512_mul_ps(xm, e), pos, x);
  return _mm512_div_ps(num, _mm512_add_ps(Set(1.0f), e));
}
CF_VM_TARGET inline __m512 TimesLogistic(__m512 x, __m512 z) { return TimesLogistic(x, z, _mm512_setzero_ps()); }

CF_VM_TARGET inline __m512 Sigmoid(__m512 x) { return TimesLogistic(Set(1.0f), x); }
CF_VM_TARGET inline __m512 Silu(__m512 x) { return TimesLogistic(x, x); }

// 0.5 x erfc(-x / sqrt 2) (= 0.5 x (1 + erf(x / sqrt 2)) without the
// cancellation of the negative tail). The exponent (x / sqrt 2)^2 is formed
// from x^2 / 2 exactly (hi + lo), not from the rounded x / sqrt 2, whose
// rounding would be amplified by 2 (x / sqrt 2)^2 in the tail.
CF_VM_TARGET inline __m512 GeluErf(__m512 x) {
  const __m512 xc = _mm512_min_ps(Set(14.85f), _mm512_max_ps(Set(-14.85f), x));  // |x| / sqrt 2 <= 10.5
  const __m512 z = _mm512_mul_ps(xc, Set(-0.70710678118654752f));
  const __m512 a = Abs(z);
  const __m512 x2 = _mm512_mul_ps(xc, xc);
  const __m512 hi = _mm512_mul_ps(x2, Set(0.5f));
  const __m512 lo = _mm512_mul_ps(_mm512_fmsub_ps(xc, xc, x2), Set(0.5f));
  // Small |z|: a^2 only feeds the polynomial, so the rounded z is as good.
  const __m512 xm = _mm512_max_ps(Set(-3.40282347e38f), x);  // gelu(-inf) = -0
  return _mm512_mul_ps(_mm512_mul_ps(Set(0.5f), xm), detail::ErfcOf(z, a, hi, lo));
}

namespace detail {
// s + err = a + b exactly (Knuth's two-sum).
CF_VM_TARGET inline __m512 TwoSum(__m512 a, __m512 b, __m512& err) {
  const __m512 s = _mm512_add_ps(a, b);
  const __m512 bb = _mm512_sub_ps(s, a);
  err = _mm512_add_ps(_mm512_sub_ps(a, _mm512_sub_ps(s, bb)), _mm512_sub_ps(b, bb));
  return s;
}
}  // namespace detail

// 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), as x / (1 + e^-2u).
// 2u = x (k1 + k3 x^2) is formed in two floats (hi + lo, constants split
// likewise): the tail's e^2u would amplify the rounding of a plain f32 2u by
// |2u| (about 16 ulps at x = -3.4).
CF_VM_TARGET inline __m512 GeluTanh(__m512 x) {
  const __m512 k1h = Set(1.5957691669464111f), k1l = Set(-4.534068032135963e-08f);  // 2 sqrt(2/pi)
  const __m512 k3h = Set(0.07135481387376785f), k3l = Set(2.3988323966106506e-09f);  // that * 0.044715
  const __m512 x2 = _mm512_mul_ps(x, x), x2l = _mm512_fmsub_ps(x, x, x2);
  const __m512 t = _mm512_mul_ps(k3h, x2);
  const __m512 tl = _mm512_fmadd_ps(k3l, x2, _mm512_fmadd_ps(k3h, x2l, _mm512_fmsub_ps(k3h, x2, t)));
  __m512 wl;
  const __m512 w = detail::TwoSum(k1h, t, wl);
  wl = _mm512_add_ps(wl, _mm512_add_ps(tl, k1l));
  const __m512 v = _mm512_mul_ps(x, w);
  const __m512 vl = _mm512_fmadd_ps(x, wl, _mm512_fmsub_ps(x, w, v));
  // Large |x|: x^2 overflows and the correction is inf - inf; v alone decides there.
  const __m512 vl_ok = _mm512_mask_mov_ps(_mm512_setzero_ps(), _mm512_cmp_ps_mask(Abs(vl), Set(1.0f), _CMP_LT_OQ), vl);
  return TimesLogistic(x, v, vl_ok);
}

// ---- loads and stores of f32 / f16 / bf16 as f32 -------------------------------------------

// Lanes [0, n) for n in [0, 16].
CF_VM_TARGET inline __mmask16 FirstLanes(int64_t n) {
  return static_cast<__mmask16>(n >= kLanes ? 0xffffu : (1u << n) - 1u);
}

// 16 elements of T as f32; lanes outside m are 0 and are not read.
template <typename T>
CF_VM_TARGET inline __m512 Load(const T* p, __mmask16 m = 0xffff) {
  if constexpr (std::is_same_v<T, float>) {
    return _mm512_maskz_loadu_ps(m, p);
  } else if constexpr (std::is_same_v<T, f16_t>) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  } else {
    static_assert(std::is_same_v<T, bf16_t>, "vm::Load: f32, f16 or bf16");
    const __m512i u = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
  }
}

// Lanes m of v to p as T, rounded as runtime/dtype.h does (nearest even, NaN quiet).
template <typename T>
CF_VM_TARGET inline void Store(T* p, __m512 v, __mmask16 m = 0xffff) {
  if constexpr (std::is_same_v<T, float>) {
    _mm512_mask_storeu_ps(p, m, v);
  } else if constexpr (std::is_same_v<T, f16_t>) {
    _mm256_mask_storeu_epi16(p, m, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  } else {
    static_assert(std::is_same_v<T, bf16_t>, "vm::Store: f32, f16 or bf16");
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    const __mmask16 nan =
        _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
    _mm512_mask_cvtepi32_storeu_epi16(p, m, r);
  }
}

// Horizontal sums in f32 (and f64 for the accurate reductions).
CF_VM_TARGET inline float Sum(__m512 v) { return _mm512_reduce_add_ps(v); }
CF_VM_TARGET inline float Max(__m512 v) { return _mm512_reduce_max_ps(v); }

// ---- maps over arrays --------------------------------------------------------------------

// y[i] = f(x[i]) for i < n, f on 16 lanes of f32 (a functor or a capturing
// lambda marked CF_VM_TARGET); y may alias x.
template <typename T, typename F>
CF_VM_TARGET void Map(const T* x, T* y, int64_t n, F f) {
  int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {  // two independent vectors per step
    const __m512 a = f(Load(x + i)), b = f(Load(x + i + kLanes));
    Store(y + i, a);
    Store(y + i + kLanes, b);
  }
  for (; i < n; i += kLanes) {
    const __mmask16 m = FirstLanes(n - i);
    Store(y + i, f(Load(x + i, m)), m);
  }
}

// out[i] = f(a[i], b[i]) for i < n; out may alias a or b.
template <typename T, typename F>
CF_VM_TARGET void Map2(const T* a, const T* b, T* out, int64_t n, F f) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) Store(out + i, f(Load(a + i), Load(b + i)));
  if (i < n) {
    const __mmask16 m = FirstLanes(n - i);
    Store(out + i, f(Load(a + i, m), Load(b + i, m)), m);
  }
}

#pragma GCC diagnostic pop

}  // namespace cf::vm
