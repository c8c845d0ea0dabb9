// CUDA launchers of timestep_embedding (embed_timestep.cc) and
// sincos_pos_embed_2d (embed_sincos.cc); the kernels (embed_kernels.cuh) use
// one thread per output element, the float64 formulas of embed_formulas.h,
// stored in the output dtype. Both are tiny ([B, dim] and a [h*w, D]
// constant), so float64 costs nothing here.
#include "ops/cuda_util.cuh"
#include "ops/embed/embed_formulas.h"
#include "ops/embed/embed_kernels.cuh"

namespace cf {
namespace {

using embed_internal::SinCosParams;
using embed_internal::TimestepParams;

template <typename T>
Status LaunchTimestep(KernelContext& ctx, const TimestepParams& p) {
  const Tensor& ts = ctx.inputs[0];
  Tensor& out = ctx.outputs[0];
  const int64_t B = ts.shape()[0], n = B * p.dim;
  if (n == 0) return absl::OkStatus();
  const GridStride g = embed::SinusoidalGeometry(n);
  cudaStream_t s = CudaStreamOf(ctx);
  switch (ts.dtype()) {
    case DType::f32: embed::TimestepKernel<<<g.grid, g.block, 0, s>>>(out.data<T>(), ts.data<float>(), B, p); break;
    case DType::f16: embed::TimestepKernel<<<g.grid, g.block, 0, s>>>(out.data<T>(), ts.data<__half>(), B, p); break;
    case DType::bf16: embed::TimestepKernel<<<g.grid, g.block, 0, s>>>(out.data<T>(), ts.data<__nv_bfloat16>(), B, p); break;
    case DType::i32: embed::TimestepKernel<<<g.grid, g.block, 0, s>>>(out.data<T>(), ts.data<int32_t>(), B, p); break;
    case DType::i64: embed::TimestepKernel<<<g.grid, g.block, 0, s>>>(out.data<T>(), ts.data<int64_t>(), B, p); break;
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

Status SinCosCuda(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(SinCosParams p, embed_internal::SinCosParamsOf(ctx.attrs));
  Tensor& out = ctx.outputs[0];
  return DispatchCudaFloat(out.dtype(), "sincos_pos_embed_2d", [&](auto tag) -> Status {
    using T = decltype(tag);
    const int64_t n = out.numel();
    const GridStride g = embed::SinusoidalGeometry(n);
    embed::SinCosKernel<T><<<g.grid, g.block, 0, CudaStreamOf(ctx)>>>(out.data<T>(), p);
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

}  // namespace

CF_REGISTER_KERNEL("timestep_embedding", kCUDA, TimestepCuda);
CF_REGISTER_KERNEL("sincos_pos_embed_2d", kCUDA, SinCosCuda);

}  // namespace cf
