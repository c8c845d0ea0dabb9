// CUDA launchers of add, sub, mul, div and broadcast_to (definitions in
// elementwise_binary.cc and broadcast_to.cc; kernels in elementwise_cuda.cuh).
//
// v1: one grid-stride kernel decoding every element's broadcast index.
// v2 (this): operands that are not broadcast go through 16-byte vector loads
//     and stores (4 f32 or 8 f16/bf16 per thread); broadcast indexing uses
//     32-bit division when the output has < 2^31 elements and no division at
//     all for collapsed rank 1 (a scalar operand).
#include "ops/cuda_util.cuh"
#include "ops/elementwise/broadcast.h"
#include "ops/elementwise/broadcast_to.h"
#include "ops/elementwise/elementwise_cuda.cuh"

namespace cf {
namespace {

using ew::BinaryKind;

template <typename T, typename F>
void LaunchBroadcast(const T* a, const T* b, T* out, const BroadcastPlan& p, cudaStream_t s, F f) {
  const int64_t n = p.numel();
  const ew::BinaryLaunch g =
      ew::BinaryGeometry(p, sizeof(T), ew::Aligned16(a) && ew::Aligned16(b) && ew::Aligned16(out));
  switch (g.path) {
    case ew::BinaryPath::kFlat: ew::BinaryFlatKernel<<<g.grid, g.block, 0, s>>>(a, b, out, n, f); break;
    case ew::BinaryPath::kBroadcast32:
      ew::BinaryBroadcastKernel<T, uint32_t><<<g.grid, g.block, 0, s>>>(a, b, out, p, uint32_t(n), f);
      break;
    case ew::BinaryPath::kBroadcast64:
      ew::BinaryBroadcastKernel<T, int64_t><<<g.grid, g.block, 0, s>>>(a, b, out, p, n, f);
      break;
  }
}

template <BinaryKind K>
Status BinaryCuda(KernelContext& ctx) {
  const Tensor &a = ctx.inputs[0], &b = ctx.inputs[1];
  Tensor& out = ctx.outputs[0];
  if (out.numel() == 0) return absl::OkStatus();
  const BroadcastPlan plan = PlanBroadcast(out.shape(), a.shape(), b.shape());
  return DispatchCudaFloat(out.dtype(), ctx.op, [&](auto tag) -> Status {
    using T = decltype(tag);
    LaunchBroadcast(a.data<T>(), b.data<T>(), out.data<T>(), plan, CudaStreamOf(ctx), ew::BinaryF<K>{});
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

Status BroadcastToCuda(KernelContext& ctx) {
  const Tensor& x = ctx.inputs[0];
  Tensor& out = ctx.outputs[0];
  if (out.numel() == 0) return absl::OkStatus();
  CF_ASSIGN_OR_RETURN(Shape xs, BroadcastOperandShape(x.shape(), out.shape(), ctx.attrs.Ints("axes")));
  const BroadcastPlan plan = PlanBroadcast(out.shape(), xs, xs);
  return DispatchCudaFloat(out.dtype(), ctx.op, [&](auto tag) -> Status {
    using T = decltype(tag);
    LaunchBroadcast(x.data<T>(), x.data<T>(), out.data<T>(), plan, CudaStreamOf(ctx), ew::TakeFirst{});
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

}  // namespace

CF_REGISTER_KERNEL("add", kCUDA, BinaryCuda<BinaryKind::kAdd>);
CF_REGISTER_KERNEL("sub", kCUDA, BinaryCuda<BinaryKind::kSub>);
CF_REGISTER_KERNEL("mul", kCUDA, BinaryCuda<BinaryKind::kMul>);
CF_REGISTER_KERNEL("div", kCUDA, BinaryCuda<BinaryKind::kDiv>);
CF_REGISTER_KERNEL("broadcast_to", kCUDA, BroadcastToCuda);

}  // namespace cf
