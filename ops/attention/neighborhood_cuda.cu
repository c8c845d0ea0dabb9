// CUDA kernels of "neighborhood_attention" and its backward (contracts:
// attention.h): the dtype dispatch to the per-dtype launchers
// (neighborhood_cuda_<dtype>.cu, declared in neighborhood_kernels.cuh), the
// backward's workspace, and the registrations.
#include "ops/attention/neighborhood_kernels.cuh"
#include "ops/cuda_util.cuh"

namespace cf {
namespace {

TensorType TypeOf(const Tensor& t) { return TensorType{t.shape(), t.dtype()}; }

// q, k, v -> out, lse.
Status NeighborhoodCuda(KernelContext& ctx) {
  const Tensor &q = ctx.inputs[0], &k = ctx.inputs[1], &v = ctx.inputs[2];
  CF_ASSIGN_OR_RETURN(NaParams p, NaParamsOf("neighborhood_attention", ctx.attrs, TypeOf(q), TypeOf(k), TypeOf(v)));
  NaFwdArgs a;
  a.q = q.raw();
  a.k = k.raw();
  a.v = v.raw();
  a.out = ctx.outputs[0].raw();
  a.lse = static_cast<float*>(ctx.outputs[1].raw());
  cudaStream_t stream = CudaStreamOf(ctx);
  return DispatchCudaFloat(q.dtype(), "neighborhood_attention", [&](auto tag) {
    return NaForwardCuda<decltype(tag)>(p, a, stream);
  });
}

// q, k, v, out, lse, dout[, dlse] -> dq, dk, dv.
Status NeighborhoodBackwardCuda(KernelContext& ctx) {
  constexpr char kOp[] = "neighborhood_attention_backward";
  const Tensor &q = ctx.inputs[0], &k = ctx.inputs[1], &v = ctx.inputs[2];
  CF_ASSIGN_OR_RETURN(NaParams p, NaParamsOf(kOp, ctx.attrs, TypeOf(q), TypeOf(k), TypeOf(v)));
  NaBwdArgs a;
  a.q = q.raw();
  a.k = k.raw();
  a.v = v.raw();
  a.out = ctx.inputs[3].raw();
  a.lse = static_cast<const float*>(ctx.inputs[4].raw());
  a.dout = ctx.inputs[5].raw();
  a.dlse = ctx.inputs.size() > 6 ? static_cast<const float*>(ctx.inputs[6].raw()) : nullptr;
  a.dq = ctx.outputs[0].raw();
  a.dk = ctx.outputs[1].raw();
  a.dv = ctx.outputs[2].raw();
  const int64_t rows = p.batch * p.tokens() * p.heads;
  if (rows > 0) {
    if (!ctx.workspace) return absl::InternalError(absl::StrCat(kOp, ": the CUDA kernel needs a workspace and got none"));
    CF_ASSIGN_OR_RETURN(void* ws, ctx.workspace(rows * int64_t(sizeof(float))));
    a.dvec = static_cast<float*>(ws);
  }
  cudaStream_t stream = CudaStreamOf(ctx);
  return DispatchCudaFloat(q.dtype(), kOp, [&](auto tag) { return NaBackwardCuda<decltype(tag)>(p, a, stream); });
}

}  // namespace

CF_REGISTER_KERNEL("neighborhood_attention", kCUDA, NeighborhoodCuda);
CF_REGISTER_KERNEL("neighborhood_attention_backward", kCUDA, NeighborhoodBackwardCuda);

}  // namespace cf
