// Tensor-core building blocks shared by the flash-style attention kernels
// (sdpa_kernels.cuh and neighborhood_kernels.cuh), on runtime/kdev so that
// they run under nvcc and the CPU interpreter alike.
//
// A warp's 16 x BN score tile lives in mma.m16n8k16 accumulators: s[n][e] is
// row (lane >> 2) + 8 * (e >> 1), column 8 n + 2 (lane & 3) + (e & 1); the
// four lanes of a quad share a row. Scores are in log2 units (the softmax
// scale is pre-multiplied by log2 e), so the exponential is exp2f.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "runtime/kdev/kdev.h"

namespace cf::attention_mma {

// d += a b with f32 accumulators, for f16 or bf16 fragments.
template <class T> KD_DEVICE void MmaAcc(float d[4], const uint32_t a[4], const uint32_t b[2]) {
  if constexpr (std::is_same_v<T, kd::bfloat16>) {
    kd::mma_m16n8k16_f32_bf16(d, a, b, d);
  } else {
    kd::mma_m16n8k16_f32_f16(d, a, b, d);
  }
}

// Two f32 values rounded into one f16x2 / bf16x2 register (lo in the low half).
template <class T> KD_DEVICE uint32_t Pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, kd::bfloat16>) {
    return kd::pack_bf16x2(lo, hi);
  } else {
    return kd::pack_f16x2(lo, hi);
  }
}

// One online-softmax step over a masked score tile s (masked scores -inf):
// the new row maxima over the quad, the rescale of the running sums l and of
// the NT output tiles o by 2^(m_old - m_new), then s <- 2^(s - m_new) (the
// unnormalised probabilities) added into l. A row that has seen no visible
// key yet keeps p = 0 rather than NaN (its max stays -inf).
template <int BN, int NT>
KD_DEVICE void OnlineSoftmaxStep(float (&s)[BN / 8][4], float (&m)[2], float (&l)[2], float (&o)[NT][4]) {
  float mt[2] = {m[0], m[1]}, mu[2];
  KD_UNROLL
  for (int n = 0; n < BN / 8; ++n) {
    mt[0] = fmaxf(mt[0], fmaxf(s[n][0], s[n][1]));
    mt[1] = fmaxf(mt[1], fmaxf(s[n][2], s[n][3]));
  }
  KD_UNROLL
  for (int r = 0; r < 2; ++r) {
    mt[r] = fmaxf(mt[r], kd::shfl_xor_sync(kd::kFullMask, mt[r], 1));
    mt[r] = fmaxf(mt[r], kd::shfl_xor_sync(kd::kFullMask, mt[r], 2));
    mu[r] = mt[r] == -INFINITY ? 0.f : mt[r];
    const float alpha = exp2f(m[r] - mu[r]);
    m[r] = mt[r];
    l[r] *= alpha;
    KD_UNROLL
    for (int n = 0; n < NT; ++n) {
      o[n][2 * r] *= alpha;
      o[n][2 * r + 1] *= alpha;
    }
  }
  KD_UNROLL
  for (int n = 0; n < BN / 8; ++n) {
    KD_UNROLL
    for (int e = 0; e < 4; ++e) {
      s[n][e] = exp2f(s[n][e] - mu[e >> 1]);
      l[e >> 1] += s[n][e];
    }
  }
}

}  // namespace cf::attention_mma
