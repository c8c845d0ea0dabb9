// The bf16 x bf16 path of the CPU GEMM: A and B packed as bf16 k-pairs and a
// 14 x 32 micro-kernel on VDPBF16PS (AVX512-BF16) with f32 accumulators
// (docs/cpu-performance.md, "GEMM"). Compiled with target attributes only, so
// the rest of the project stays baseline x86-64; called after
// HasAvx512Bf16() said yes.
//
// VDPBF16PS (Intel SDM, "VDPBF16PS"): for each f32 lane i,
//   c[i] += a[2i+1]·b[2i+1] + a[2i]·b[2i]
// with the bf16 inputs widened to f32 exactly, denormal inputs and outputs
// flushed to zero (DAZ/FTZ regardless of MXCSR) and round-to-nearest-even;
// the two products of a pair are not rounded in the same way as two FMAs, so
// results differ from the f32-packing path by a few f32 ulps per pair, far
// below bf16's own rounding of the output.
#include <immintrin.h>

#include <cstring>

#include "ops/cpu_util.h"
#include "ops/matmul/cpu_gemm_pack.h"

namespace cf::gemm::internal {

bool HasAvx512Bf16() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512bf16");
  return has;
}

// Same register use as the f32 14 x 32 kernel: 28 zmm accumulators, 2 zmm of
// B per k-pair, A's pair broadcast from memory ({1to16}): 28 VDPBF16PS (56
// multiply-adds per lane... 896 in all) per 2 B loads.
__attribute__((target("avx512f,avx512bf16"))) void MicroBf16_14x32(int64_t kp, const uint32_t* __restrict a,
                                                                   const uint32_t* __restrict b, float* __restrict c,
                                                                   int64_t ldc, bool first) {
  constexpr int MR = 14;
  __m512 acc[MR][2];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t q = 0; q < kp; ++q) {
    const __m512bh b0 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(b));
    const __m512bh b1 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(b + 16));
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512bh ai = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(a[i])));
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
    }
    a += MR;
    b += 32;
  }
  StoreAccumulators<MR>(acc, c, ldc, first);
}

// In-register transpose instead of gathers (Zen 4: the two vpgatherqd per
// step cost ~50 cycles): 16 steps at a time, one 16-word load per row (rows
// 14 and 15 zero), a 16 x 16 transpose of 32-bit words (unpack ps, unpack pd,
// two rounds of 128-bit lane shuffles: 64 shuffles), 14 words stored per step.
__attribute__((target("avx512f"))) static inline void Transpose16x16(__m512* r) {
  // (Masked forms with all lanes set: GCC 12's unmasked ones trip
  // -Wmaybe-uninitialized on their undefined source.)
  constexpr __mmask16 kAll = 0xFFFF;
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_maskz_unpacklo_ps(kAll, r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_maskz_unpackhi_ps(kAll, r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 2]), e = _mm512_castps_pd(t[4 * i + 3]);
    u[4 * i] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(0xFF, a, c));
    u[4 * i + 1] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(0xFF, a, c));
    u[4 * i + 2] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(0xFF, b, e));
    u[4 * i + 3] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(0xFF, b, e));
  }
  for (int m = 0; m < 4; ++m) {
    const __m512 v0 = _mm512_maskz_shuffle_f32x4(kAll, u[m], u[4 + m], 0x44), v1 = _mm512_maskz_shuffle_f32x4(kAll, u[m], u[4 + m], 0xEE);
    const __m512 v2 = _mm512_maskz_shuffle_f32x4(kAll, u[8 + m], u[12 + m], 0x44);
    const __m512 v3 = _mm512_maskz_shuffle_f32x4(kAll, u[8 + m], u[12 + m], 0xEE);
    r[m] = _mm512_maskz_shuffle_f32x4(kAll, v0, v2, 0x88);
    r[4 + m] = _mm512_maskz_shuffle_f32x4(kAll, v0, v2, 0xDD);
    r[8 + m] = _mm512_maskz_shuffle_f32x4(kAll, v1, v3, 0x88);
    r[12 + m] = _mm512_maskz_shuffle_f32x4(kAll, v1, v3, 0xDD);
  }
}

__attribute__((target("avx512f"))) void GatherWords14(const void* const* ptr, int64_t n, uint32_t* d) {
  const float* p[14];
  for (int i = 0; i < 14; ++i) p[i] = static_cast<const float*>(ptr[i]);
  float* out = reinterpret_cast<float*>(d);
  constexpr __mmask16 kRows = 0x3FFF;
  __m512 r[16];
  int64_t s = 0;
  for (; s + 16 <= n; s += 16) {
    for (int i = 0; i < 14; ++i) r[i] = _mm512_loadu_ps(p[i] + s);
    r[14] = r[15] = _mm512_setzero_ps();
    Transpose16x16(r);
    // Full 16-word stores in increasing order: each one's last two words are
    // overwritten by the next; the last store is masked to the panel.
    for (int j = 0; j < 15; ++j) _mm512_storeu_ps(out + (s + j) * 14, r[j]);
    _mm512_mask_storeu_ps(out + (s + 15) * 14, kRows, r[15]);
  }
  if (s < n) {
    const int left = static_cast<int>(n - s);
    const __mmask16 m = static_cast<__mmask16>((1u << left) - 1);
    for (int i = 0; i < 14; ++i) r[i] = _mm512_maskz_loadu_ps(m, p[i] + s);
    r[14] = r[15] = _mm512_setzero_ps();
    Transpose16x16(r);
    for (int j = 0; j < left; ++j) _mm512_mask_storeu_ps(out + (s + j) * 14, kRows, r[j]);
  }
}

namespace {

template <typename T> inline uint16_t Bf16Bits(const T* p, int64_t i) {
  if constexpr (std::is_same_v<T, bf16_t>) return p[i].bits;
  else return F32ToBF16Bits(static_cast<float>(Load(p, i)));
}

// Element (k, i) of a k-pair panel of MR rows, as 16-bit halves.
inline uint16_t& Half(uint32_t* d, int mr, int64_t k, int i) {
  return reinterpret_cast<uint16_t*>(d)[((k >> 1) * mr + i) * 2 + (k & 1)];
}

// Row k of B, columns [j0, j0 + cols), as bf16 bits into r (zeros past cols).
void ReadBRow(const Src<bf16_t>& b, int64_t k, int64_t j0, int cols, uint16_t* r) {
  if (b.row_contiguous()) {
    for (int j = 0; j < cols;) {
      int64_t run = 0;
      const bf16_t* p = RowRun(b, k, j0 + j, cols - j, &run);
      if (p != nullptr) std::memcpy(r + j, p, static_cast<size_t>(run) * 2);
      else std::memset(r + j, 0, static_cast<size_t>(run) * 2);
      j += static_cast<int>(run);
    }
  } else {
    const bf16_t* p = b.m.p + k * b.m.rs + j0 * b.m.cs;
    for (int j = 0; j < cols; ++j) r[j] = p[j * b.m.cs].bits;
  }
  for (int j = cols; j < 32; ++j) r[j] = 0;
}

// d[j] = r0[j] | r1[j] << 16 for 32 columns.
__attribute__((target("avx512f"))) void Interleave32(const uint16_t* r0, const uint16_t* r1, uint32_t* d) {
  for (int h = 0; h < 32; h += 16) {
    const __m512i lo = _mm512_maskz_cvtepu16_epi32(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r0 + h)));
    const __m512i hi = _mm512_maskz_cvtepu16_epi32(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r1 + h)));
    _mm512_storeu_si512(d + h, _mm512_or_si512(lo, _mm512_maskz_slli_epi32(0xFFFF, hi, 16)));
  }
}

}  // namespace

template <typename TA> void PackAPairs(const Src<TA>& a, int64_t i0, int64_t mc, int64_t p0, int64_t kc, uint32_t* dst) {
  constexpr int MR = 14;
  const int64_t kp = (kc + 1) / 2;
  for (int64_t ir = 0; ir < mc; ir += MR) {
    const int rows = static_cast<int>(std::min<int64_t>(MR, mc - ir));
    uint32_t* d = dst + ir * kp;
    if (!a.row_contiguous()) {  // A transposed in memory: k outer, contiguous writes
      for (int64_t k = 0; k < kc; ++k) {
        const TA* s = a.m.p + (i0 + ir) * a.m.rs + (p0 + k) * a.m.cs;
        for (int i = 0; i < MR; ++i) Half(d, MR, k, i) = i < rows ? Bf16Bits(s, i * a.m.rs) : 0;
      }
    } else {
      for (int64_t k = 0; k < kc;) {
        int64_t run = 0;
        const TA* ptr[MR];
        ptr[0] = RowRun(a, i0 + ir, p0 + k, kc - k, &run);
        for (int i = 1; i < rows; ++i) {
          int64_t r = 0;
          ptr[i] = RowRun(a, i0 + ir + i, p0 + k, kc - k, &r);
        }
        const TA* z = Zeros<TA>(run + 1);
        for (int i = 0; i < MR; ++i)
          if (i >= rows || ptr[i] == nullptr) ptr[i] = z;
        int64_t done = 0;
        if constexpr (std::is_same_v<TA, bf16_t>) {
          if ((k & 1) == 0 && run >= 2) {  // whole pairs: one 32-bit word per row and pair
            const void* vp[MR];
            for (int i = 0; i < MR; ++i) vp[i] = ptr[i];
            GatherWords14(vp, run / 2, d + (k / 2) * MR);
            done = run / 2 * 2;
          }
        }
        for (int64_t kk = done; kk < run; ++kk)
          for (int i = 0; i < MR; ++i) Half(d, MR, k + kk, i) = Bf16Bits(ptr[i], kk);
        k += run;
      }
    }
    if (kc & 1)
      for (int i = 0; i < MR; ++i) Half(d, MR, kc, i) = 0;
  }
}

void PackBPairs(const Src<bf16_t>& b, int64_t pc, int64_t kc, int64_t j0, int cols, int nr, uint32_t* d) {
  const int64_t kp = (kc + 1) / 2;
  if (!b.row_contiguous() && b.m.rs == 1 && cols == nr) {
    // A weight [N, K] read transposed (linear): B's k-pair (2q, 2q+1) of
    // column j is one 32-bit word of the weight's row j.
    const bf16_t* p = b.m.p + pc + j0 * b.m.cs;
    for (int64_t q = 0; q < kp; ++q) {
      uint32_t* dq = d + q * nr;
      if (2 * q + 1 < kc) {
        for (int j = 0; j < nr; ++j) std::memcpy(dq + j, p + j * b.m.cs + 2 * q, 4);
      } else {
        for (int j = 0; j < nr; ++j) dq[j] = p[j * b.m.cs + 2 * q].bits;
      }
    }
    return;
  }
  alignas(64) uint16_t r0[32], r1[32];
  for (int64_t q = 0; q < kp; ++q) {
    ReadBRow(b, pc + 2 * q, j0, cols, r0);
    if (2 * q + 1 < kc) ReadBRow(b, pc + 2 * q + 1, j0, cols, r1);
    else std::memset(r1, 0, sizeof(r1));
    Interleave32(r0, r1, d + q * nr);
  }
}

template void PackAPairs<float>(const Src<float>&, int64_t, int64_t, int64_t, int64_t, uint32_t*);
template void PackAPairs<f16_t>(const Src<f16_t>&, int64_t, int64_t, int64_t, int64_t, uint32_t*);
template void PackAPairs<bf16_t>(const Src<bf16_t>&, int64_t, int64_t, int64_t, int64_t, uint32_t*);

}  // namespace cf::gemm::internal
