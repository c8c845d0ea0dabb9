// CUDA kernel of `full` (definition in full.cc).
#include "ops/cuda_util.cuh"

namespace cf {
namespace {

// out: [n] of T, every element set to v.
template <typename T>
__global__ void FullKernel(T* out, int64_t n, float v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    StoreF(out, i, v);
}

Status FullCuda(KernelContext& ctx) {
  Tensor& out = ctx.outputs[0];
  const int64_t n = out.numel();
  if (n == 0) return absl::OkStatus();
  const float v = static_cast<float>(ctx.attrs.Float("value", 0.0));
  return DispatchCudaFloat(out.dtype(), "full", [&](auto tag) -> Status {
    using T = decltype(tag);
    FullKernel<T><<<GridFor(n), 256, 0, CudaStreamOf(ctx)>>>(out.data<T>(), n, v);
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

}  // namespace

CF_REGISTER_KERNEL("full", kCUDA, FullCuda);

}  // namespace cf
