// CUDA kernels of "attention", "attention_backward" and "attention_probs"
// (contracts: attention.h): dtype and head-dim dispatch to the per-TU
// launchers (sdpa_cuda.h), the probs launch, and the registrations. The
// kernels and their launch geometry are in sdpa_kernels.cuh.
#include <vector>

#include "ops/attention/sdpa_cuda.h"
#include "ops/attention/sdpa_kernels.cuh"
#include "ops/cuda_util.cuh"

namespace cf {
namespace {

using namespace sdpa_kernels;

TensorType TypeOf(const Tensor& t) { return TensorType{t.shape(), t.dtype()}; }
const uint8_t* MaskPtr(const KernelContext& ctx, size_t index) {
  return ctx.inputs.size() > index ? static_cast<const uint8_t*>(ctx.inputs[index].raw()) : nullptr;
}

// q, k, v[, key_mask] -> out, lse.
Status AttentionCuda(KernelContext& ctx) {
  const Tensor &q = ctx.inputs[0], &k = ctx.inputs[1], &v = ctx.inputs[2];
  const TensorType mt = ctx.inputs.size() > 3 ? TypeOf(ctx.inputs[3]) : TensorType{};
  CF_ASSIGN_OR_RETURN(SdpaParams p, SdpaParamsOf("attention", ctx.attrs, TypeOf(q), TypeOf(k), TypeOf(v),
                                                 ctx.inputs.size() > 3 ? &mt : nullptr));
  CF_RETURN_IF_ERROR(SdpaCheckHeadDim("attention", p.head_dim));
  SdpaFwdArgs a;
  a.q = q.raw();
  a.k = k.raw();
  a.v = v.raw();
  a.mask = MaskPtr(ctx, 3);
  a.out = ctx.outputs[0].raw();
  a.lse = static_cast<float*>(ctx.outputs[1].raw());
  cudaStream_t stream = CudaStreamOf(ctx);
  return DispatchCudaFloat(q.dtype(), "attention", [&](auto tag) {
    using T = decltype(tag);
    return WithHeadDim(p.head_dim, [&](auto d) { return SdpaForwardCuda<T, decltype(d)::value>(p, a, stream); });
  });
}

// q, k, v, out, lse, dout[, key_mask] -> dq, dk, dv.
Status AttentionBackwardCuda(KernelContext& ctx) {
  const Tensor &q = ctx.inputs[0], &k = ctx.inputs[1], &v = ctx.inputs[2];
  const TensorType mt = ctx.inputs.size() > 6 ? TypeOf(ctx.inputs[6]) : TensorType{};
  CF_ASSIGN_OR_RETURN(SdpaParams p, SdpaParamsOf("attention_backward", ctx.attrs, TypeOf(q), TypeOf(k), TypeOf(v),
                                                 ctx.inputs.size() > 6 ? &mt : nullptr));
  CF_RETURN_IF_ERROR(SdpaCheckHeadDim("attention_backward", p.head_dim));
  SdpaBwdArgs a;
  a.q = q.raw();
  a.k = k.raw();
  a.v = v.raw();
  a.out = ctx.inputs[3].raw();
  a.lse = static_cast<const float*>(ctx.inputs[4].raw());
  a.dout = ctx.inputs[5].raw();
  a.mask = MaskPtr(ctx, 6);
  a.dq = ctx.outputs[0].raw();
  a.dk = ctx.outputs[1].raw();
  a.dv = ctx.outputs[2].raw();
  const int64_t rows = p.batch * p.heads * p.nq;
  if (rows > 0) {
    if (!ctx.workspace) return absl::InternalError("attention_backward: the CUDA kernel needs a workspace and got none");
    CF_ASSIGN_OR_RETURN(void* ws, ctx.workspace(rows * int64_t(sizeof(float))));
    a.dvec = static_cast<float*>(ws);
  }
  cudaStream_t stream = CudaStreamOf(ctx);
  return DispatchCudaFloat(q.dtype(), "attention_backward", [&](auto tag) {
    using T = decltype(tag);
    return WithHeadDim(p.head_dim, [&](auto d) { return SdpaBackwardCuda<T, decltype(d)::value>(p, a, stream); });
  });
}

// q, k[, key_mask] -> probs [B, heads, Q, Nkv] f32 for the attribute `queries`.
Status AttentionProbsCuda(KernelContext& ctx) {
  const Tensor &q = ctx.inputs[0], &k = ctx.inputs[1];
  const TensorType mt = ctx.inputs.size() > 2 ? TypeOf(ctx.inputs[2]) : TensorType{};
  CF_ASSIGN_OR_RETURN(SdpaParams p, SdpaParamsOf("attention_probs", ctx.attrs, TypeOf(q), TypeOf(k), TypeOf(k),
                                                 ctx.inputs.size() > 2 ? &mt : nullptr));
  const std::vector<int64_t> queries = ctx.attrs.Ints("queries", {});
  for (int64_t i : queries)
    CF_CHECK_ARG(i >= 0 && i < p.nq, "attention_probs: query ", i, " is outside [0, ", p.nq, ")");
  const int64_t nqueries = static_cast<int64_t>(queries.size());
  if (p.batch == 0 || nqueries == 0 || p.nkv == 0) return absl::OkStatus();
  CF_ASSIGN_OR_RETURN(SdpaLaunch l, SdpaProbsPlanFor(p, nqueries));
  if (!ctx.workspace) return absl::InternalError("attention_probs: the CUDA kernel needs a workspace and got none");
  CF_ASSIGN_OR_RETURN(void* ws, ctx.workspace(nqueries * int64_t(sizeof(int64_t))));
  cudaStream_t stream = CudaStreamOf(ctx);
  // From pageable memory: returns once the host vector has been staged.
  CF_CUDA_CHECK(cudaMemcpyAsync(ws, queries.data(), queries.size() * sizeof(int64_t), cudaMemcpyHostToDevice, stream));
  const SdpaDev dev = DevOf(p);
  const uint8_t* mask = MaskPtr(ctx, 2);
  float* probs = static_cast<float*>(ctx.outputs[0].raw());
  return DispatchCudaFloat(q.dtype(), "attention_probs", [&](auto tag) -> Status {
    using T = decltype(tag);
    SdpaProbsKernel<T><<<l.grid, l.block, l.smem, stream>>>(static_cast<const T*>(q.raw()),
                                                            static_cast<const T*>(k.raw()), mask,
                                                            static_cast<const int64_t*>(ws), probs, dev,
                                                            static_cast<int>(nqueries));
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

}  // namespace

CF_REGISTER_KERNEL("attention", kCUDA, AttentionCuda);
CF_REGISTER_KERNEL("attention_backward", kCUDA, AttentionBackwardCuda);
CF_REGISTER_KERNEL("attention_probs", kCUDA, AttentionProbsCuda);

}  // namespace cf
