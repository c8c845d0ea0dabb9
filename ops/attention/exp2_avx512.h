// 2^x on 16 floats with AVX-512F, shared by the attention CPU kernels
// (sdpa_cpu.cc, neighborhood_cpu.cc), which pre-scale scores by log2(e) so
// that the softmax's exponential is this exp2. Compiled for AVX-512 by the
// target attribute only; call it from code that checked the CPU first.
#pragma once

#include <immintrin.h>

namespace cf::attention_simd {

// GCC 12's AVX-512 headers pass _mm512_undefined_ps() as the unused source of
// unmasked max / roundscale / scalef, which -W(maybe-)uninitialized reports
// (a false positive in the system header).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// 2^x for x <= 128: x = n + f with |f| <= 1/2, 2^f by its degree-6 Taylor
// polynomial (relative error < 1.2e-7), times 2^n by vscalefps. x is first
// raised to -200 so that exp2(-inf) (a masked score) underflows to exactly 0;
// maxps returns its second operand when one is NaN, so NaN stays NaN.
__attribute__((target("avx512f"))) inline __m512 Exp2Avx512(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-200.0f), x);
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(1.5403530393381608e-4f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076284772e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108664821580e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650695910071e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718055994531e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

#pragma GCC diagnostic pop

}  // namespace cf::attention_simd
