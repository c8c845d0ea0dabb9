// CUDA kernels of timestep_embedding (embed_timestep.cc) and
// sincos_pos_embed_2d (embed_sincos.cc): one thread per output element, the
// float64 formulas of embed_formulas.h, stored in the output dtype. Both are
// tiny ([B, dim] and a [h*w, D] constant), so float64 costs nothing here.
#include "ops/cuda_util.cuh"
#include "ops/embed/embed_formulas.h"

namespace cf {
namespace {

using embed_internal::SinCosParams;
using embed_internal::TimestepParams;

__device__ __forceinline__ double LoadTimestep(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ double LoadTimestep(const __half* p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ double LoadTimestep(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ double LoadTimestep(const int32_t* p, int64_t i) { return p[i]; }
__device__ __forceinline__ double LoadTimestep(const int64_t* p, int64_t i) { return static_cast<double>(p[i]); }

// out: [B, dim] of T; ts: [B] of S.
template <typename T, typename S>
__global__ void TimestepKernel(T* __restrict__ out, const S* __restrict__ ts, int64_t B, TimestepParams p) {
  const int64_t n = B * p.dim;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = i / p.dim, j = i - b * p.dim;
    StoreF(out, i, static_cast<float>(embed_internal::TimestepValue(p, LoadTimestep(ts, b), j)));
  }
}

template <typename T>
Status LaunchTimestep(KernelContext& ctx, const TimestepParams& p) {
  const Tensor& ts = ctx.inputs[0];
  Tensor& out = ctx.outputs[0];
  const int64_t B = ts.shape()[0], n = B * p.dim;
  if (n == 0) return absl::OkStatus();
  const unsigned grid = GridFor(n);
  cudaStream_t s = CudaStreamOf(ctx);
  switch (ts.dtype()) {
    case DType::f32: TimestepKernel<<<grid, 256, 0, s>>>(out.data<T>(), ts.data<float>(), B, p); break;
    case DType::f16: TimestepKernel<<<grid, 256, 0, s>>>(out.data<T>(), ts.data<__half>(), B, p); break;
    case DType::bf16: TimestepKernel<<<grid, 256, 0, s>>>(out.data<T>(), ts.data<__nv_bfloat16>(), B, p); break;
    case DType::i32: TimestepKernel<<<grid, 256, 0, s>>>(out.data<T>(), ts.data<int32_t>(), B, p); break;
    case DType::i64: TimestepKernel<<<grid, 256, 0, s>>>(out.data<T>(), ts.data<int64_t>(), B, p); break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("timestep_embedding: timesteps of dtype ", DTypeName(ts.dtype()), " have no CUDA kernel"));
  }
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

Status TimestepCuda(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(TimestepParams p, embed_internal::TimestepParamsOf(ctx.attrs));
  return DispatchCudaFloat(ctx.outputs[0].dtype(), "timestep_embedding",
                           [&](auto tag) { return LaunchTimestep<decltype(tag)>(ctx, p); });
}

// out: [h * w, dim] of T.
template <typename T>
__global__ void SinCosKernel(T* __restrict__ out, SinCosParams p) {
  const int64_t n = p.h * p.w * p.dim;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / p.dim, c = i - r * p.dim;
    StoreF(out, i, static_cast<float>(embed_internal::SinCosValue(p, r, c)));
  }
}

Status SinCosCuda(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(SinCosParams p, embed_internal::SinCosParamsOf(ctx.attrs));
  Tensor& out = ctx.outputs[0];
  return DispatchCudaFloat(out.dtype(), "sincos_pos_embed_2d", [&](auto tag) -> Status {
    using T = decltype(tag);
    const int64_t n = out.numel();
    SinCosKernel<T><<<GridFor(n), 256, 0, CudaStreamOf(ctx)>>>(out.data<T>(), p);
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

}  // namespace

CF_REGISTER_KERNEL("timestep_embedding", kCUDA, TimestepCuda);
CF_REGISTER_KERNEL("sincos_pos_embed_2d", kCUDA, SinCosCuda);

}  // namespace cf
