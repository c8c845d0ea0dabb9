// Internal to the CPU GEMM (cpu_gemm.cc, cpu_gemm_bf16.cc): how the packers
// read an operand (a strided view or indirect rows) and the pieces the bf16
// k-pair path shares with the driver. Not an API.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ops/matmul/cpu_gemm.h"

namespace cf::gemm::internal {

// The MR x 32 f32 accumulators of an AVX-512 micro-kernel (f32 or k-pair) to
// C (row stride ldc): stored when `first`, added to C otherwise.
template <int MR>
__attribute__((target("avx512f"))) inline void StoreAccumulators(const __m512 (&acc)[MR][2], float* c, int64_t ldc,
                                                                 bool first) {
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    __m512 lo = acc[i][0], hi = acc[i][1];
    if (!first) {
      lo = _mm512_add_ps(lo, _mm512_loadu_ps(ci));
      hi = _mm512_add_ps(hi, _mm512_loadu_ps(ci + 16));
    }
    _mm512_storeu_ps(ci, lo);
    _mm512_storeu_ps(ci + 16, hi);
  }
}

// An operand as the packers see it: a strided view, or indirect rows (when
// ind.rows is set). "Rows" are A's M rows, or B's K rows.
template <typename T> struct Src {
  MatRef<T> m;
  IndirectRef<T> ind;
  bool indirect() const { return ind.rows != nullptr; }
  // Rows whose elements are contiguous (unit column stride, or indirect).
  bool row_contiguous() const { return indirect() || m.cs == 1; }
};
template <typename T> Src<T> SrcOf(MatRef<T> m) { return {m, {}}; }
template <typename T> Src<T> SrcOf(IndirectRef<T> ind) { return {{}, ind}; }

// Row i of a row-contiguous source from column j: a pointer to *run
// contiguous elements (null: that many zeros, a padding tap), *run <= len.
// For indirect rows the run ends at the segment's end, the same for every row.
template <typename T> inline const T* RowRun(const Src<T>& s, int64_t i, int64_t j, int64_t len, int64_t* run) {
  if (!s.indirect()) {
    *run = len;
    return s.m.p + i * s.m.rs + j;
  }
  const int64_t t = j / s.ind.seg, c = j - t * s.ind.seg;
  *run = std::min(len, s.ind.seg - c);
  const T* row = s.ind.rows[i * s.ind.taps + t];
  return row != nullptr ? row + c : nullptr;
}

// At least n zero elements of T (all-zero bits are +0 in every storage type),
// per thread, kept.
template <typename T> const T* Zeros(int64_t n) {
  thread_local std::vector<T> z;
  if (static_cast<int64_t>(z.size()) < n) z.assign(static_cast<size_t>(n), T{});
  return z.data();
}

// Has AVX-512F/BW and AVX512-BF16 (what the bf16 k-pair kernel and its
// packers are compiled for).
bool HasAvx512Bf16();

// The VDPBF16PS micro-kernel, 14 x 32: a: kp x 14 words (a[q * 14 + i] = A's
// k-pair q of row i), b: kp x 32 words, c: 14 x 32 f32 tile with row stride
// ldc. first: c = a·b, otherwise c += a·b.
void MicroBf16_14x32(int64_t kp, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, bool first);

// A[i0 : i0+mc, p0 : p0+kc] into ceil(mc / 14) panels of ceil(kc / 2) x 14
// k-pair words, zero past mc and kc. Non-bf16 A is rounded to bf16.
template <typename TA> void PackAPairs(const Src<TA>& a, int64_t i0, int64_t mc, int64_t p0, int64_t kc, uint32_t* dst);

// B[pc : pc+kc, j0 : j0+cols] into one panel of ceil(kc / 2) x nr k-pair
// words (PackedB::pair_panel), zero past kc and cols.
void PackBPairs(const Src<bf16_t>& b, int64_t pc, int64_t kc, int64_t j0, int cols, int nr, uint32_t* d);

// 14 pointers, n steps: d[s * 14 + i] = 32-bit word s of ptr[i] (AVX-512
// loads and a 16 x 16 in-register transpose per 16 steps); shared by the f32
// A packer and the k-pair one.
void GatherWords14(const void* const* ptr, int64_t n, uint32_t* d);

}  // namespace cf::gemm::internal
