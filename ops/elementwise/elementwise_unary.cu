// CUDA launchers of scale, exp, sqrt, rsqrt, neg, square (definitions in
// elementwise_unary.cc; kernels in elementwise_cuda.cuh): 16-byte vector
// loads when aligned, f32 arithmetic.
#include "ops/cuda_util.cuh"
#include "ops/elementwise/elementwise_cuda.cuh"

namespace cf {
namespace {

using ew::UnaryKind;

template <UnaryKind K>
Status UnaryCuda(KernelContext& ctx) {
  const Tensor& x = ctx.inputs[0];
  Tensor& out = ctx.outputs[0];
  const int64_t n = out.numel();
  if (n == 0) return absl::OkStatus();
  const float p0 = static_cast<float>(ctx.attrs.Float("mul", 1.0));
  const float p1 = static_cast<float>(ctx.attrs.Float("add", 0.0));
  return DispatchCudaFloat(out.dtype(), ctx.op, [&](auto tag) -> Status {
    using T = decltype(tag);
    const ew::MapLaunch g = ew::MapGeometry(n, sizeof(T), ew::Aligned16(x.raw()) && ew::Aligned16(out.raw()));
    ew::UnaryKernel<T, K><<<g.grid, g.block, 0, CudaStreamOf(ctx)>>>(x.data<T>(), out.data<T>(), n, p0, p1, g.vec);
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

}  // namespace

CF_REGISTER_KERNEL("scale", kCUDA, UnaryCuda<UnaryKind::kScale>);
CF_REGISTER_KERNEL("exp", kCUDA, UnaryCuda<UnaryKind::kExp>);
CF_REGISTER_KERNEL("sqrt", kCUDA, UnaryCuda<UnaryKind::kSqrt>);
CF_REGISTER_KERNEL("rsqrt", kCUDA, UnaryCuda<UnaryKind::kRsqrt>);
CF_REGISTER_KERNEL("neg", kCUDA, UnaryCuda<UnaryKind::kNeg>);
CF_REGISTER_KERNEL("square", kCUDA, UnaryCuda<UnaryKind::kSquare>);

}  // namespace cf
