// The nvcc side of runtime/kdev/kdev.h: every name maps to the CUDA built-in
// or to inline PTX, so a kernel written against kdev.h compiles to the same
// code as one written with the built-ins (kernels include kdev.h, not this).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#define KD_INTERP 0
#define KD_GLOBAL __global__
#define KD_DEVICE __device__ __forceinline__
#define KD_HD __host__ __device__ __forceinline__
#define KD_LAUNCH_BOUNDS(n) __launch_bounds__(n)
#define KD_RESTRICT __restrict__
#define KD_PRAGMA_(x) _Pragma(#x)
#define KD_UNROLL KD_PRAGMA_(unroll)
#define KD_UNROLL_N(n) KD_PRAGMA_(unroll n)
#define KD_SHARED(T, name, dims) __shared__ __align__(16) T name dims
#define KD_DYNAMIC_SHARED(T, name)                                   \
  extern __shared__ __align__(16) unsigned char kd_dynamic_smem_[]; \
  T* const name = reinterpret_cast<T*>(kd_dynamic_smem_)

namespace cf::kd {

using ::blockDim;
using ::blockIdx;
using ::gridDim;
using ::threadIdx;
using Dim3 = ::dim3;
using Uint3 = ::uint3;
inline constexpr int warpSize = 32;

template <class T> using Ptr = T*;

using half = ::__half;
using half2 = ::__half2;
using bfloat16 = ::__nv_bfloat16;
using bfloat162 = ::__nv_bfloat162;
using ::float2;
using ::float4;
using ::int2;
using ::int4;
using ::make_float2;
using ::make_float4;
using ::make_int2;
using ::make_int4;
using ::make_uint2;
using ::make_uint4;
using ::uint2;
using ::uint4;

KD_DEVICE half float2half_rn(float f) { return __float2half_rn(f); }
KD_DEVICE float half2float(half h) { return __half2float(h); }
KD_DEVICE bfloat16 float2bfloat16_rn(float f) { return __float2bfloat16_rn(f); }
KD_DEVICE float bfloat162float(bfloat16 h) { return __bfloat162float(h); }
KD_DEVICE half2 floats2half2_rn(float lo, float hi) { return __floats2half2_rn(lo, hi); }
KD_DEVICE float2 half22float2(half2 h) { return __half22float2(h); }
KD_DEVICE bfloat162 floats2bfloat162_rn(float lo, float hi) { return __floats2bfloat162_rn(lo, hi); }
KD_DEVICE float2 bfloat1622float2(bfloat162 h) { return __bfloat1622float2(h); }
KD_DEVICE uint16_t half_as_ushort(half h) { return __half_as_ushort(h); }
KD_DEVICE half ushort_as_half(uint16_t b) { return __ushort_as_half(b); }
KD_DEVICE uint16_t bfloat16_as_ushort(bfloat16 h) { return __bfloat16_as_ushort(h); }
KD_DEVICE bfloat16 ushort_as_bfloat16(uint16_t b) { return __ushort_as_bfloat16(b); }

KD_DEVICE float rsqrtf(float x) { return ::rsqrtf(x); }
KD_DEVICE float fast_expf(float x) { return __expf(x); }
KD_DEVICE float fdividef(float a, float b) { return __fdividef(a, b); }

KD_DEVICE unsigned lane_id() {
  unsigned l;
  asm("mov.u32 %0, %%laneid;" : "=r"(l));
  return l;
}
KD_DEVICE unsigned thread_rank() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }
KD_DEVICE void syncthreads() { __syncthreads(); }
KD_DEVICE void syncwarp(unsigned mask = 0xffffffffu) { __syncwarp(mask); }
KD_DEVICE unsigned activemask() { return __activemask(); }
KD_DEVICE unsigned ballot_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred); }
KD_DEVICE int any_sync(unsigned mask, int pred) { return __any_sync(mask, pred); }
KD_DEVICE int all_sync(unsigned mask, int pred) { return __all_sync(mask, pred); }
KD_DEVICE void threadfence() { __threadfence(); }
KD_DEVICE void threadfence_block() { __threadfence_block(); }

template <class T> KD_DEVICE T shfl_sync(unsigned mask, T v, int src, int width = 32) {
  return __shfl_sync(mask, v, src, width);
}
template <class T> KD_DEVICE T shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return __shfl_up_sync(mask, v, delta, width);
}
template <class T> KD_DEVICE T shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return __shfl_down_sync(mask, v, delta, width);
}
template <class T> KD_DEVICE T shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return __shfl_xor_sync(mask, v, lane_mask, width);
}

template <class T> KD_DEVICE T ldg(const T* p) { return __ldg(p); }
template <class U, class T> KD_HD U* ptr_cast(T* p) { return reinterpret_cast<U*>(p); }
template <class A> KD_HD auto flat(A& a) { return reinterpret_cast<std::remove_all_extents_t<A>*>(&a); }

using ::atomicAdd;
using ::atomicAnd;
using ::atomicCAS;
using ::atomicExch;
using ::atomicMax;
using ::atomicMin;
using ::atomicOr;
using ::atomicSub;
using ::atomicXor;

// mma.sync m16n8k16, row.col, f32 accumulators (fragment layouts: kdev.h).
KD_DEVICE void mma_m16n8k16_f32_f16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
}
KD_DEVICE void mma_m16n8k16_f32_bf16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
}

KD_DEVICE unsigned SmemAddr(const void* p) { return static_cast<unsigned>(__cvta_generic_to_shared(p)); }

template <int N, bool Trans, class T> KD_DEVICE void ldmatrix(uint32_t* r, const T* row) {
  static_assert(N == 1 || N == 2 || N == 4, "ldmatrix loads 1, 2 or 4 matrices");
  const unsigned a = SmemAddr(row);
  if constexpr (N == 1 && !Trans) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(a));
  } else if constexpr (N == 1) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(a));
  } else if constexpr (N == 2 && !Trans) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
  } else if constexpr (N == 2) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
  } else if constexpr (!Trans) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
  }
}
template <class T> KD_DEVICE void ldmatrix_x1(uint32_t r[1], const T* p) { ldmatrix<1, false>(r, p); }
template <class T> KD_DEVICE void ldmatrix_x2(uint32_t r[2], const T* p) { ldmatrix<2, false>(r, p); }
template <class T> KD_DEVICE void ldmatrix_x4(uint32_t r[4], const T* p) { ldmatrix<4, false>(r, p); }
template <class T> KD_DEVICE void ldmatrix_x1_trans(uint32_t r[1], const T* p) { ldmatrix<1, true>(r, p); }
template <class T> KD_DEVICE void ldmatrix_x2_trans(uint32_t r[2], const T* p) { ldmatrix<2, true>(r, p); }
template <class T> KD_DEVICE void ldmatrix_x4_trans(uint32_t r[4], const T* p) { ldmatrix<4, true>(r, p); }

// cp.async: 16 bytes bypass L1 (.cg), 4 and 8 bytes go through it (.ca; .cg takes 16 only).
template <int Bytes, class D, class S> KD_DEVICE void cp_async(D* dst, const S* src) {
  static_assert(Bytes == 4 || Bytes == 8 || Bytes == 16, "cp.async copies 4, 8 or 16 bytes");
  const unsigned d = SmemAddr(dst);
  const size_t s = __cvta_generic_to_global(src);
  if constexpr (Bytes == 16) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(d), "l"(s) : "memory");
  } else {
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n" ::"r"(d), "l"(s), "n"(Bytes) : "memory");
  }
}
template <int Bytes, class D, class S> KD_DEVICE void cp_async_zfill(D* dst, const S* src, int src_bytes) {
  static_assert(Bytes == 4 || Bytes == 8 || Bytes == 16, "cp.async copies 4, 8 or 16 bytes");
  const unsigned d = SmemAddr(dst);
  const size_t s = __cvta_generic_to_global(src);
  if constexpr (Bytes == 16) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(s), "r"(src_bytes) : "memory");
  } else {
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(d), "l"(s), "n"(Bytes), "r"(src_bytes)
                 : "memory");
  }
}
KD_DEVICE void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> KD_DEVICE void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }
KD_DEVICE void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

}  // namespace cf::kd
