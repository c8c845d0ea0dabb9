// CUDA kernels of scale, exp, sqrt, rsqrt, neg, square (definitions in
// elementwise_unary.cc): 16-byte vector loads when aligned, f32 arithmetic.
#include "ops/cuda_util.cuh"
#include "ops/elementwise/elementwise_cuda.cuh"
#include "ops/elementwise/elementwise_math.h"

namespace cf {
namespace {

using ew::UnaryKind;

// x, out: [n] of T; out may be x. p0, p1: scale's mul and add.
template <typename T, UnaryKind K>
__global__ void UnaryKernel(const T* x, T* out, int64_t n, float p0, float p1, bool vec) {
  ew::MapElementwise(out, n, vec, [=](float v) { return ew::Unary<K>(v, p0, p1); }, x);
}

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
    const bool vec = ew::Aligned16(x.raw()) && ew::Aligned16(out.raw());
    const int64_t work = vec ? n / ew::kPack<T> + 1 : n;
    UnaryKernel<T, K><<<GridFor(work), 256, 0, CudaStreamOf(ctx)>>>(x.data<T>(), out.data<T>(), n, p0, p1, vec);
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
