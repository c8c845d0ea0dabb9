// CUDA kernels of silu, gelu, quick_gelu, leaky_relu, elu, sigmoid and their
// backward ops (definitions in activation.cc), f32 arithmetic, 16-byte vector
// access when the pointers are aligned.
#include "ops/activation/activation_ops.h"
#include "ops/cuda_util.cuh"
#include "ops/elementwise/elementwise_cuda.cuh"

namespace cf {
namespace {

using act::Kind;

// x, out: [n] of T; out = f(x); out may be x.
template <typename T, Kind K>
__global__ void ActivationKernel(const T* x, T* out, int64_t n, float p, bool vec) {
  ew::MapElementwise(out, n, vec, [=](float v) { return act::Forward<K>(v, p); }, x);
}

// x, dy, dx: [n] of T; dx = dy * f'(x); dx may be x.
template <typename T, Kind K>
__global__ void ActivationBackwardKernel(const T* x, const T* dy, T* dx, int64_t n, float p, bool vec) {
  ew::MapElementwise(dx, n, vec, [=](float v, float g) { return g * act::Derivative<K>(v, p); }, x, dy);
}

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
      bool vec = ew::Aligned16(x.raw()) && ew::Aligned16(out.raw());
      if (backward) vec = vec && ew::Aligned16(ctx.inputs[1].raw());
      const unsigned grid = GridFor(vec ? n / ew::kPack<T> + 1 : n);
      if (backward) {
        ActivationBackwardKernel<T, KT::value><<<grid, 256, 0, CudaStreamOf(ctx)>>>(
            x.data<T>(), ctx.inputs[1].data<T>(), out.data<T>(), n, p, vec);
      } else {
        ActivationKernel<T, KT::value><<<grid, 256, 0, CudaStreamOf(ctx)>>>(x.data<T>(), out.data<T>(), n, p, vec);
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
