// Helpers for CUDA kernels: storage types, f32 load/store, dtype dispatch and
// launch shapes. Arithmetic is in f32 for f16/bf16/f32 storage.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "ops/grid_for.h"
#include "ops/op.h"
#include "runtime/cuda_check.h"

namespace cf {

// Tensor::data<__half>() and data<__nv_bfloat16>() in CUDA code.
template <> struct DTypeOf<__half> { static constexpr DType value = DType::f16; };
template <> struct DTypeOf<__nv_bfloat16> { static constexpr DType value = DType::bf16; };

__device__ __forceinline__ float LoadF(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float LoadF(const __half* p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ float LoadF(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void StoreF(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void StoreF(__half* p, int64_t i, float v) { p[i] = __float2half_rn(v); }
__device__ __forceinline__ void StoreF(__nv_bfloat16* p, int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }

// Calls fn(T{}) with T in {float, __half, __nv_bfloat16} for `t`.
template <typename F>
Status DispatchCudaFloat(DType t, absl::string_view op, F&& fn) {
  switch (t) {
    case DType::f32: return fn(float{});
    case DType::f16: return fn(__half{});
    case DType::bf16: return fn(__nv_bfloat16{});
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(op, ": dtype ", DTypeName(t), " has no CUDA kernel (f32, f16, bf16 only)"));
  }
}

inline cudaStream_t CudaStreamOf(const KernelContext& ctx);

// Multiprocessors of the current device (cached per device ordinal; 132 when
// the query fails), for sizing grids to fill the GPU.
int NumSms();

// GridFor(n, threads): blocks for a grid-stride loop over n elements
// (ops/grid_for.h, shared with the kdev launch-geometry functions).

}  // namespace cf

#include "runtime/stream.h"
inline cudaStream_t cf::CudaStreamOf(const KernelContext& ctx) {
  return ctx.stream ? static_cast<cudaStream_t>(ctx.stream->native()) : nullptr;
}
