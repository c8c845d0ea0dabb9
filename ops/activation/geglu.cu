// CUDA launchers of geglu and geglu_backward (definitions in geglu.cc; kernels
// in activation_kernels.cuh).
#include "ops/activation/activation_kernels.cuh"
#include "ops/activation/activation_ops.h"
#include "ops/cuda_util.cuh"

namespace cf {
namespace {

using act::Kind;

Status GegluCuda(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(act::Selected sel, act::Select(ctx.op, ctx.attrs));
  const Tensor& x = ctx.inputs[0];
  const int64_t D = x.shape().dim(-1) / 2, rows = D ? x.numel() / (2 * D) : 0;
  if (rows * D == 0) return absl::OkStatus();
  const bool backward = ctx.inputs.size() == 2;
  // Only the two GELU forms occur here.
  auto launch = [&](auto kind) -> Status {
    using KT = decltype(kind);
    return DispatchCudaFloat(x.dtype(), ctx.op, [&](auto tag) -> Status {
      using T = decltype(tag);
      const GridStride g = act::GegluGeometry(rows, D);
      if (backward) {
        act::GegluBackwardKernel<T, KT::value><<<g.grid, g.block, 0, CudaStreamOf(ctx)>>>(
            x.data<T>(), ctx.inputs[1].data<T>(), ctx.outputs[0].data<T>(), rows, D);
      } else {
        act::GegluKernel<T, KT::value><<<g.grid, g.block, 0, CudaStreamOf(ctx)>>>(x.data<T>(), ctx.outputs[0].data<T>(),
                                                                                   rows, D);
      }
      CF_CUDA_CHECK_LAUNCH();
      return absl::OkStatus();
    });
  };
  if (sel.kind == Kind::kGeluTanh) return launch(std::integral_constant<Kind, Kind::kGeluTanh>{});
  return launch(std::integral_constant<Kind, Kind::kGeluErf>{});
}

}  // namespace

CF_REGISTER_KERNEL("geglu", kCUDA, GegluCuda);
CF_REGISTER_KERNEL("geglu_backward", kCUDA, GegluCuda);

}  // namespace cf
