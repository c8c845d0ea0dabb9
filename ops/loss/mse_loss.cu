// CUDA launchers of mse_loss and mse_loss_backward (definitions and formulas
// in mse_loss.cc; kernels and launch geometry in mse_loss_kernels.cuh). The
// forward is a two-pass block reduction: per (sample, chunk) partial sums of
// (p - t)^2 into the workspace, then one block sums them with the sample
// weights (deterministic, no atomics).
#include "ops/cuda_util.cuh"
#include "ops/loss/mse_loss_kernels.cuh"

namespace cf {
namespace {

Status MseCuda(KernelContext& ctx) {
  const Tensor &p = ctx.inputs[0], &t = ctx.inputs[1];
  const bool weighted = ctx.inputs.size() == 3;
  const int64_t n = p.numel();
  const int64_t B = weighted && n > 0 ? p.shape()[0] : 1, M = n / B;
  const loss::MseLaunch g = loss::MseGeometry(n, B, NumSms());
  if (!ctx.workspace) return absl::InternalError("mse_loss: the CUDA kernel needs a workspace");
  CF_ASSIGN_OR_RETURN(void* ws, ctx.workspace(g.partials * int64_t(sizeof(float))));
  float* partial = static_cast<float*>(ws);
  return DispatchCudaFloat(p.dtype(), ctx.op, [&](auto tag) -> Status {
    using T = decltype(tag);
    cudaStream_t st = CudaStreamOf(ctx);
    loss::MsePartialKernel<<<g.blocks, g.block, 0, st>>>(p.data<T>(), t.data<T>(), partial, B, M, g.S, g.chunk);
    CF_CUDA_CHECK_LAUNCH();
    // n == 0: 0 * inf = NaN, the mean of nothing (as on the CPU); the weights
    // are not read then (they may be an empty tensor).
    const T* w = weighted && n > 0 ? ctx.inputs[2].data<T>() : nullptr;
    loss::MseFinishKernel<<<1, g.finish_block, 0, st>>>(partial, w, ctx.outputs[0].data<T>(), B, g.S,
                                                         1.f / static_cast<float>(n));
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

Status MseBackwardCuda(KernelContext& ctx) {
  const Tensor &p = ctx.inputs[0], &t = ctx.inputs[1], &dy = ctx.inputs[2];
  const bool weighted = ctx.inputs.size() == 4;
  const int64_t n = p.numel();
  if (n == 0) return absl::OkStatus();
  const int64_t M = weighted ? n / p.shape()[0] : n;
  return DispatchCudaFloat(p.dtype(), ctx.op, [&](auto tag) -> Status {
    using T = decltype(tag);
    const T* w = weighted ? ctx.inputs[3].data<T>() : nullptr;
    const GridStride g = loss::MseBackwardGeometry(n);
    loss::MseBackwardKernel<<<g.grid, g.block, 0, CudaStreamOf(ctx)>>>(p.data<T>(), t.data<T>(), dy.data<T>(), w,
                                                                       ctx.outputs[0].data<T>(), n, M,
                                                                       2.f / static_cast<float>(n));
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

}  // namespace

CF_REGISTER_KERNEL("mse_loss", kCUDA, MseCuda);
CF_REGISTER_KERNEL("mse_loss_backward", kCUDA, MseBackwardCuda);

}  // namespace cf
