// CUDA launcher of `full` (definition in full.cc; kernel in full_kernel.cuh).
#include "ops/core/full_kernel.cuh"
#include "ops/cuda_util.cuh"

namespace cf {
namespace {

Status FullCuda(KernelContext& ctx) {
  Tensor& out = ctx.outputs[0];
  const int64_t n = out.numel();
  if (n == 0) return absl::OkStatus();
  const float v = static_cast<float>(ctx.attrs.Float("value", 0.0));
  return DispatchCudaFloat(out.dtype(), "full", [&](auto tag) -> Status {
    using T = decltype(tag);
    const GridStride g = core::FullGeometry(n);
    core::FullKernel<T><<<g.grid, g.block, 0, CudaStreamOf(ctx)>>>(out.data<T>(), n, v);
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

}  // namespace

CF_REGISTER_KERNEL("full", kCUDA, FullCuda);

}  // namespace cf
