// CUDA launcher of softmax and softmax_backward over the last axis
// (definitions in softmax.cc; kernels and launch geometry in
// softmax_kernels.cuh).
#include "ops/cuda_util.cuh"
#include "ops/reduce/softmax_kernels.cuh"

namespace cf {
namespace {

using namespace softmax_kernels;

Status SoftmaxCuda(KernelContext& ctx) {
  const Tensor& x = ctx.inputs[0];
  const int64_t L = x.shape().dim(-1);
  if (x.numel() == 0) return absl::OkStatus();
  const int64_t rows = x.numel() / L;
  const bool backward = ctx.inputs.size() == 2;
  return DispatchCudaFloat(x.dtype(), ctx.op, [&](auto tag) -> Status {
    using T = decltype(tag);
    cudaStream_t st = CudaStreamOf(ctx);
    T* out = ctx.outputs[0].data<T>();
    const SoftmaxLaunch ls = SoftmaxLaunchFor(rows, L);
    if (ls.empty()) return absl::OkStatus();
    if (ls.warp_per_row) {
      if (backward) SoftmaxBackwardWarpKernel<<<ls.grid, ls.block, 0, st>>>(x.data<T>(), ctx.inputs[1].data<T>(), out, rows, L);
      else SoftmaxWarpKernel<<<ls.grid, ls.block, 0, st>>>(x.data<T>(), out, rows, L);
    } else {
      if (backward) {
        SoftmaxBackwardBlockKernel<<<ls.grid, ls.block, 0, st>>>(x.data<T>(), ctx.inputs[1].data<T>(), out, rows, L);
      } else {
        SoftmaxBlockKernel<<<ls.grid, ls.block, 0, st>>>(x.data<T>(), out, rows, L);
      }
    }
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

}  // namespace

CF_REGISTER_KERNEL("softmax", kCUDA, SoftmaxCuda);
CF_REGISTER_KERNEL("softmax_backward", kCUDA, SoftmaxCuda);

}  // namespace cf
