// Device helpers of the norm family's kernels, written against
// runtime/kdev/kdev.h (nvcc: the built-ins; host compiler: the CPU
// interpreter, tests/ops/norm_interp_test.cc): 4-wide vector loads and
// stores in f32, warp and column sums, and the chunk-sum kernel. The host
// helpers that need CUDA (launch, workspace) are in norm_cuda.cuh.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>

#include "runtime/kdev/kdev.h"

namespace cf::norm_cuda {

// Four consecutive elements at p (16-byte aligned for f32, 8-byte for
// f16/bf16) as floats.
KD_DEVICE void Load4(kd::Ptr<const float> p, float v[4]) {
  const kd::float4 a = kd::ptr_cast<const kd::float4>(p)[0];
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
}
KD_DEVICE void Load4(kd::Ptr<const kd::half> p, float v[4]) {
  alignas(8) kd::half2 h[2];
  const kd::uint2 u = kd::ptr_cast<const kd::uint2>(p)[0];
  std::memcpy(static_cast<void*>(h), &u, sizeof(u));
  const kd::float2 a = kd::half22float2(h[0]), b = kd::half22float2(h[1]);
  v[0] = a.x, v[1] = a.y, v[2] = b.x, v[3] = b.y;
}
KD_DEVICE void Load4(kd::Ptr<const kd::bfloat16> p, float v[4]) {
  alignas(8) kd::bfloat162 h[2];
  const kd::uint2 u = kd::ptr_cast<const kd::uint2>(p)[0];
  std::memcpy(static_cast<void*>(h), &u, sizeof(u));
  const kd::float2 a = kd::bfloat1622float2(h[0]), b = kd::bfloat1622float2(h[1]);
  v[0] = a.x, v[1] = a.y, v[2] = b.x, v[3] = b.y;
}
KD_DEVICE void Store4(kd::Ptr<float> p, const float v[4]) {
  kd::ptr_cast<kd::float4>(p)[0] = kd::make_float4(v[0], v[1], v[2], v[3]);
}
KD_DEVICE void Store4(kd::Ptr<kd::half> p, const float v[4]) {
  alignas(8) kd::half2 h[2] = {kd::floats2half2_rn(v[0], v[1]), kd::floats2half2_rn(v[2], v[3])};
  kd::uint2 u;
  std::memcpy(&u, static_cast<const void*>(h), sizeof(u));
  kd::ptr_cast<kd::uint2>(p)[0] = u;
}
KD_DEVICE void Store4(kd::Ptr<kd::bfloat16> p, const float v[4]) {
  alignas(8) kd::bfloat162 h[2] = {kd::floats2bfloat162_rn(v[0], v[1]), kd::floats2bfloat162_rn(v[2], v[3])};
  kd::uint2 u;
  std::memcpy(&u, static_cast<const void*>(h), sizeof(u));
  kd::ptr_cast<kd::uint2>(p)[0] = u;
}

// True when every pointer allows 4-wide accesses of T at multiples of 4 elements.
template <typename T>
inline bool Aligned4(std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (p != nullptr && reinterpret_cast<uintptr_t>(p) % (4 * sizeof(T)) != 0) return false;
  return true;
}

KD_DEVICE float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += kd::shfl_xor_sync(kd::kFullMask, v, o);
  return v;
}

// Block (32, 8): a and b summed over the 8 thread-rows of each column; the
// sums are valid in thread-row 0 (added in order of the thread-rows).
KD_DEVICE void SumThreadRows(float& a, float& b) {
  KD_SHARED(float, sa, [8][32]);
  KD_SHARED(float, sb, [8][32]);
  sa[kd::threadIdx.y][kd::threadIdx.x] = a;
  sb[kd::threadIdx.y][kd::threadIdx.x] = b;
  kd::syncthreads();
  if (kd::threadIdx.y == 0) {
    for (int j = 1; j < 8; ++j) {
      a += float(sa[j][kd::threadIdx.x]);
      b += float(sb[j][kd::threadIdx.x]);
    }
  }
}

// The second stage of the per-channel sums: part_a, part_b [B, chunks, C]
// (f32 partial sums per chunk) -> out_a, out_b [B, C] of T.
// Grid (ceil(C / 32), B), block (32, 8): the 8 thread-rows split the chunks.
template <typename T>
KD_GLOBAL void SumChunksKernel(kd::Ptr<const float> KD_RESTRICT part_a, kd::Ptr<const float> KD_RESTRICT part_b,
                               int64_t chunks, int C, kd::Ptr<T> KD_RESTRICT out_a, kd::Ptr<T> KD_RESTRICT out_b) {
  const int c = kd::blockIdx.x * 32 + kd::threadIdx.x;
  const int64_t b = kd::blockIdx.y;
  float a = 0.f, s = 0.f;
  if (c < C) {
    KD_UNROLL_N(4)
    for (int64_t k = kd::threadIdx.y; k < chunks; k += 8) {
      a += part_a[(b * chunks + k) * C + c];
      s += part_b[(b * chunks + k) * C + c];
    }
  }
  SumThreadRows(a, s);
  if (kd::threadIdx.y == 0 && c < C) {
    kd::StoreF(out_a, b * C + c, a);
    kd::StoreF(out_b, b * C + c, s);
  }
}

// SumChunksKernel's grid for B sums of C channels (block (32, 8)).
inline kd::Dim3 SumChunksGrid(int64_t B, int C) { return kd::Dim3(static_cast<unsigned>((C + 31) / 32), static_cast<unsigned>(B)); }

}  // namespace cf::norm_cuda
