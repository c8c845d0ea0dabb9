// CUDA launchers of silu, gelu, quick_gelu, leaky_relu, elu, sigmoid and their
// backward ops (definitions in activation.cc; kernels in activation_kernels.cuh),
// f32 arithmetic, 16-byte vector access when the pointers are aligned.
#include "ops/activation/activation_kernels.cuh"
#include "ops/activation/activation_ops.h"
#include "ops/cuda_util.cuh"

namespace cf {
namespace {

using act::Kind;

Status ActivationCuda(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(act::Selected sel, act::Select(ctx.op, ctx.attrs));
  const Tensor& x = ctx.inputs[0];
  Tensor& out = ctx.outputs[0];
  const int64_t n = out.numel();
  if (n == 0) return absl::OkStatus();
  const bool backward = ctx.inputs.size() == 2;
  const float p = static_cast<float>(sel.param);
  return act::DispatchKind(sel.kind, [&](auto kind) -> Status {
    using KT = decltype(kind);  // the kind as a type (usable in nested lambdas)
    return DispatchCudaFloat(out.dtype(), ctx.op, [&](auto tag) -> Status {
      using T = decltype(tag);
      bool aligned = ew::Aligned16(x.raw()) && ew::Aligned16(out.raw());
      if (backward) aligned = aligned && ew::Aligned16(ctx.inputs[1].raw());
      const ew::MapLaunch g = ew::MapGeometry(n, sizeof(T), aligned);
      if (backward) {
        act::ActivationBackwardKernel<T, KT::value><<<g.grid, g.block, 0, CudaStreamOf(ctx)>>>(
            x.data<T>(), ctx.inputs[1].data<T>(), out.data<T>(), n, p, g.vec);
      } else {
        act::ActivationKernel<T, KT::value><<<g.grid, g.block, 0, CudaStreamOf(ctx)>>>(x.data<T>(), out.data<T>(), n,
                                                                                        p, g.vec);
      }
      CF_CUDA_CHECK_LAUNCH();
      return absl::OkStatus();
    });
  });
}

}  // namespace

#define CF_ACTIVATION_CUDA(name)                          \
  CF_REGISTER_KERNEL(name, kCUDA, ActivationCuda);        \
  CF_REGISTER_KERNEL(name "_backward", kCUDA, ActivationCuda)
CF_ACTIVATION_CUDA("silu");
CF_ACTIVATION_CUDA("gelu");
CF_ACTIVATION_CUDA("quick_gelu");
CF_ACTIVATION_CUDA("leaky_relu");
CF_ACTIVATION_CUDA("elu");
CF_ACTIVATION_CUDA("sigmoid");
#undef CF_ACTIVATION_CUDA

}  // namespace cf
