// CUDA launchers of adaln_modulate and adaln_modulate_backward (definitions
// in adaln_modulate.cc; kernels and launch geometry in
// adaln_modulate_kernels.cuh). x: [B, T, C]; shift, scale: [B, C] (or [B, 1, C]).
#include <algorithm>

#include "ops/norm/adaln_modulate_kernels.cuh"
#include "ops/norm/norm_cuda.cuh"

namespace cf {
namespace {

using namespace adaln_kernels;

template <typename T>
Status AdaLnCudaT(KernelContext& ctx) {
  const Shape& s = ctx.inputs[0].shape();
  const int64_t numel = s.numel(), c = s[2];
  if (numel == 0) return absl::OkStatus();
  const T* x = ctx.inputs[0].data<T>();
  const T* shift = ctx.inputs[1].data<T>();
  const T* scale = ctx.inputs[2].data<T>();
  T* y = ctx.outputs[0].data<T>();
  cudaStream_t stream = CudaStreamOf(ctx);
  const int ci = static_cast<int>(c);
  const AdaLnLaunch l = AdaLnLaunchFor(numel, c, norm_cuda::Aligned4<T>({x, shift, scale, y}));
  if (l.vec == 4) {
    AdaLnKernel<T, 4><<<l.grid, l.block, 0, stream>>>(x, shift, scale, y, l.total, s[1] * c, ci);
  } else {
    AdaLnKernel<T, 1><<<l.grid, l.block, 0, stream>>>(x, shift, scale, y, l.total, s[1] * c, ci);
  }
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

template <typename T>
Status AdaLnBackwardCudaT(KernelContext& ctx) {
  const Shape& s = ctx.inputs[0].shape();
  const int64_t bn = s[0], tn = s[1], c = s[2];
  cudaStream_t stream = CudaStreamOf(ctx);
  if (s.numel() == 0) return norm_cuda::ZeroOutputs(ctx, 1);  // no tokens: dshift = dscale = 0
  CF_CHECK_ARG(bn <= 65535, "adaln_modulate_backward: batch ", bn, " exceeds the CUDA grid limit 65535");
  // Chunks of tokens: about four blocks per SM in all, >= 32 tokens each.
  const AdaLnBwdPlan p = AdaLnBwdPlanFor(bn, tn, c, NumSms());
  const int64_t chunks = p.chunks;
  CF_CHECK_ARG(chunks <= 65535, "adaln_modulate_backward: T = ", tn, " exceeds the CUDA grid limit");
  const int64_t n_part = bn * chunks * c;
  CF_ASSIGN_OR_RETURN(void* ws,
                      norm_cuda::Workspace(ctx, "adaln_modulate_backward", norm_cuda::Carver::Bytes({n_part, n_part})));
  norm_cuda::Carver carve(ws);
  float* part_shift = carve.Take(n_part);
  float* part_scale = carve.Take(n_part);
  const int ci = static_cast<int>(c);
  AdaLnBwdPartialKernel<T><<<p.grid, p.block, 0, stream>>>(ctx.inputs[0].data<T>(), ctx.inputs[1].data<T>(),
                                                           ctx.inputs[2].data<T>(), ctx.outputs[0].data<T>(), tn, ci,
                                                           p.rows, part_shift, part_scale);
  CF_CUDA_CHECK_LAUNCH();
  return norm_cuda::LaunchSumChunks(part_shift, part_scale, bn, chunks, ci, ctx.outputs[1].data<T>(),
                                   ctx.outputs[2].data<T>(), stream);
}

Status AdaLnCuda(KernelContext& ctx) {
  return DispatchCudaFloat(ctx.inputs[0].dtype(), "adaln_modulate",
                           [&](auto tag) { return AdaLnCudaT<decltype(tag)>(ctx); });
}
Status AdaLnBackwardCuda(KernelContext& ctx) {
  return DispatchCudaFloat(ctx.inputs[0].dtype(), "adaln_modulate_backward",
                           [&](auto tag) { return AdaLnBackwardCudaT<decltype(tag)>(ctx); });
}

}  // namespace

CF_REGISTER_KERNEL("adaln_modulate", kCUDA, AdaLnCuda);
CF_REGISTER_KERNEL("adaln_modulate_backward", kCUDA, AdaLnBackwardCuda);

}  // namespace cf
