// Device helpers of the norm family's CUDA kernels: 4-wide vector loads and
// stores in f32, warp and column sums, and the workspace carve-up.
#pragma once

#include <cstdint>

#include "ops/cuda_util.cuh"

namespace cf::norm_cuda {

// Four consecutive elements at p (16-byte aligned for f32, 8-byte for
// f16/bf16) as floats.
__device__ __forceinline__ void Load4(const float* p, float v[4]) {
  const float4 a = *reinterpret_cast<const float4*>(p);
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
}
__device__ __forceinline__ void Load4(const __half* p, float v[4]) {
  alignas(8) __half2 h[2];
  *reinterpret_cast<uint2*>(h) = *reinterpret_cast<const uint2*>(p);
  const float2 a = __half22float2(h[0]), b = __half22float2(h[1]);
  v[0] = a.x, v[1] = a.y, v[2] = b.x, v[3] = b.y;
}
__device__ __forceinline__ void Load4(const __nv_bfloat16* p, float v[4]) {
  alignas(8) __nv_bfloat162 h[2];
  *reinterpret_cast<uint2*>(h) = *reinterpret_cast<const uint2*>(p);
  const float2 a = __bfloat1622float2(h[0]), b = __bfloat1622float2(h[1]);
  v[0] = a.x, v[1] = a.y, v[2] = b.x, v[3] = b.y;
}
__device__ __forceinline__ void Store4(float* p, const float v[4]) {
  *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
}
__device__ __forceinline__ void Store4(__half* p, const float v[4]) {
  alignas(8) __half2 h[2] = {__floats2half2_rn(v[0], v[1]), __floats2half2_rn(v[2], v[3])};
  *reinterpret_cast<uint2*>(p) = *reinterpret_cast<const uint2*>(h);
}
__device__ __forceinline__ void Store4(__nv_bfloat16* p, const float v[4]) {
  alignas(8) __nv_bfloat162 h[2] = {__floats2bfloat162_rn(v[0], v[1]), __floats2bfloat162_rn(v[2], v[3])};
  *reinterpret_cast<uint2*>(p) = *reinterpret_cast<const uint2*>(h);
}

// True when every pointer allows 4-wide accesses of T at multiples of 4 elements.
template <typename T>
inline bool Aligned4(std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (p != nullptr && reinterpret_cast<uintptr_t>(p) % (4 * sizeof(T)) != 0) return false;
  return true;
}

__device__ __forceinline__ float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Block (32, 8): a and b summed over the 8 thread-rows of each column; the
// sums are valid in thread-row 0 (added in order of the thread-rows).
__device__ __forceinline__ void SumThreadRows(float& a, float& b) {
  __shared__ float sa[8][32], sb[8][32];
  sa[threadIdx.y][threadIdx.x] = a;
  sb[threadIdx.y][threadIdx.x] = b;
  __syncthreads();
  if (threadIdx.y == 0) {
    for (int j = 1; j < 8; ++j) {
      a += sa[j][threadIdx.x];
      b += sb[j][threadIdx.x];
    }
  }
}

// The second stage of the per-channel sums: part_a, part_b [B, chunks, C]
// (f32 partial sums per chunk) -> out_a, out_b [B, C] of T.
// Grid (ceil(C / 32), B), block (32, 8): the 8 thread-rows split the chunks.
template <typename T>
__global__ void SumChunksKernel(const float* __restrict__ part_a, const float* __restrict__ part_b, int64_t chunks,
                                int C, T* __restrict__ out_a, T* __restrict__ out_b) {
  const int c = blockIdx.x * 32 + threadIdx.x;
  const int64_t b = blockIdx.y;
  float a = 0.f, s = 0.f;
  if (c < C) {
#pragma unroll 4
    for (int64_t k = threadIdx.y; k < chunks; k += 8) {
      a += part_a[(b * chunks + k) * C + c];
      s += part_b[(b * chunks + k) * C + c];
    }
  }
  SumThreadRows(a, s);
  if (threadIdx.y == 0 && c < C) {
    StoreF(out_a, b * C + c, a);
    StoreF(out_b, b * C + c, s);
  }
}

template <typename T>
Status LaunchSumChunks(const float* part_a, const float* part_b, int64_t B, int64_t chunks, int C, T* out_a, T* out_b,
                       cudaStream_t stream) {
  SumChunksKernel<T><<<dim3(static_cast<unsigned>((C + 31) / 32), static_cast<unsigned>(B)), dim3(32, 8), 0, stream>>>(
      part_a, part_b, chunks, C, out_a, out_b);
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

// Zeroes outputs k >= first of the context (parameter gradients when there
// is nothing to sum).
Status ZeroOutputs(KernelContext& ctx, int first);

// Hands out float slices of one workspace allocation.
class Carver {
 public:
  explicit Carver(void* base) : base_(static_cast<float*>(base)) {}
  float* Take(int64_t floats) {
    float* p = base_ + used_;
    used_ += (floats + 63) / 64 * 64;  // 256-byte aligned slices
    return p;
  }
  static int64_t Bytes(std::initializer_list<int64_t> floats) {
    int64_t total = 0;
    for (int64_t f : floats) total += (f + 63) / 64 * 64;
    return total * 4;
  }

 private:
  float* base_;
  int64_t used_ = 0;
};

// The workspace of `bytes` from the kernel context, or an error naming `op`.
StatusOr<void*> Workspace(KernelContext& ctx, const char* op, int64_t bytes);

}  // namespace cf::norm_cuda
