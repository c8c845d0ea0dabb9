// Internal to the AVX-512 depthwise kernels (conv_depthwise_tiled_avx512.cc
// and conv_depthwise_winograd_avx512.cc): one channel block of 16 as a zmm
// of f32, loaded from and stored to storage type T, and the epilogue on it.
// Include only from translation units that call these after HasAvx512().
#pragma once

#include <immintrin.h>

#include <type_traits>

#include "ops/attention/exp2_avx512.h"
#include "ops/conv/conv_depthwise_tiled_kernels.h"
#include "runtime/dtype.h"

#define CF_DW_TARGET __attribute__((target("avx512f,avx512bw,avx512vl")))

namespace cf::dw::avx512 {

CF_DW_TARGET inline __mmask16 LaneMask(int nc) {
  return static_cast<__mmask16>(nc >= kLanes ? 0xffffu : (1u << nc) - 1u);
}

// 16 channels of T as f32 (masked-out lanes 0, never read).
template <typename T> CF_DW_TARGET inline __m512 LoadVec(const T* p, __mmask16 m) {
  if constexpr (std::is_same_v<T, float>) {
    return _mm512_maskz_loadu_ps(m, p);
  } else if constexpr (std::is_same_v<T, f16_t>) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  } else {
    const __m512i u = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
  }
}

// The f32 -> T rounding of runtime/dtype.h (nearest even; NaN quiet).
template <typename T> CF_DW_TARGET inline void StoreVec(T* p, __mmask16 m, __m512 v) {
  if constexpr (std::is_same_v<T, float>) {
    _mm512_mask_storeu_ps(p, m, v);
  } else if constexpr (std::is_same_v<T, f16_t>) {
    _mm256_mask_storeu_epi16(p, m, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  } else {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                  _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
    _mm512_mask_cvtepi32_storeu_epi16(p, m, r);
  }
}

// The epilogue of one vector: a (kNone), a·b·factor (kProduct) or
// a·sigmoid(b) = a / (1 + 2^(-b·log2 e)) (kSigmoid); b is the gate's second half.
template <DwEpilogue E> CF_DW_TARGET inline __m512 Epilogue(__m512 a, __m512 b, __m512 factor) {
  if constexpr (E == DwEpilogue::kNone) {
    return a;
  } else if constexpr (E == DwEpilogue::kProduct) {
    return _mm512_mul_ps(_mm512_mul_ps(a, b), factor);
  } else {
    const __m512 e = attention_simd::Exp2Avx512(_mm512_mul_ps(b, _mm512_set1_ps(-1.4426950408889634f)));
    return _mm512_div_ps(a, _mm512_add_ps(_mm512_set1_ps(1.f), e));
  }
}

}  // namespace cf::dw::avx512
