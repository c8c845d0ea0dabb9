// CUDA kernels of mse_loss and mse_loss_backward (definitions and formulas in
// mse_loss.cc). The forward is a two-pass block reduction: per (sample,
// chunk) partial sums of (p - t)^2 into the workspace, then one block sums
// them with the sample weights (deterministic, no atomics).
#include <algorithm>

#include "ops/cuda_util.cuh"
#include "ops/reduce/block_reduce.cuh"

namespace cf {
namespace {

// p, t: [B, M] of T; partial: [B, S] f32, partial[b, s] = sum over chunk s
// of sample b of (p - t)^2. One block per (b, s).
template <typename T>
__global__ void MsePartialKernel(const T* p, const T* t, float* partial, int64_t B, int64_t M, int64_t S,
                                 int64_t chunk) {
  __shared__ float scratch[32];
  for (int64_t item = blockIdx.x; item < B * S; item += gridDim.x) {
    const int64_t b = item / S, s = item % S;
    const int64_t i0 = b * M + s * chunk, i1 = b * M + min(M, (s + 1) * chunk);
    float v = 0.f;
    for (int64_t i = i0 + threadIdx.x; i < i1; i += blockDim.x) {
      const float d = LoadF(p, i) - LoadF(t, i);
      v += d * d;
    }
    v = BlockSum(v, scratch);
    if (threadIdx.x == 0) partial[item] = v;
  }
}

// partial: [B, S] f32; w: [B] of T or null; out: [] of T =
// inv_n * sum_{b, s} w_b partial[b, s]. One block.
template <typename T>
__global__ void MseFinishKernel(const float* partial, const T* w, T* out, int64_t B, int64_t S, float inv_n) {
  __shared__ float scratch[32];
  float v = 0.f;
  for (int64_t j = threadIdx.x; j < B * S; j += blockDim.x) v += w ? partial[j] * LoadF(w, j / S) : partial[j];
  v = BlockSum(v, scratch);
  if (threadIdx.x == 0) StoreF(out, 0, v * inv_n);
}

// p, t, dp: [B, M] of T; dy: [1]; w: [B] or null;
// dp = (p - t) * dy * (2 / n) * w_b.
template <typename T>
__global__ void MseBackwardKernel(const T* p, const T* t, const T* dy, const T* w, T* dp, int64_t n, int64_t M,
                                  float two_over_n) {
  const float c = LoadF(dy, 0) * two_over_n;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float cb = w ? c * LoadF(w, i / M) : c;
    StoreF(dp, i, (LoadF(p, i) - LoadF(t, i)) * cb);
  }
}

Status MseCuda(KernelContext& ctx) {
  const Tensor &p = ctx.inputs[0], &t = ctx.inputs[1];
  const bool weighted = ctx.inputs.size() == 3;
  const int64_t n = p.numel();
  const int64_t B = weighted && n > 0 ? p.shape()[0] : 1, M = n / B;
  // Chunks of >= 4096 elements, about four blocks per SM in all.
  const int64_t S = std::max<int64_t>(1, std::min<int64_t>((4LL * NumSms() + B - 1) / B, M / 4096));
  const int64_t chunk = std::max<int64_t>(1, (M + S - 1) / S);
  if (!ctx.workspace) return absl::InternalError("mse_loss: the CUDA kernel needs a workspace");
  CF_ASSIGN_OR_RETURN(void* ws, ctx.workspace(B * S * int64_t(sizeof(float))));
  float* partial = static_cast<float*>(ws);
  return DispatchCudaFloat(p.dtype(), ctx.op, [&](auto tag) -> Status {
    using T = decltype(tag);
    cudaStream_t st = CudaStreamOf(ctx);
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(B * S, 65535LL * 16));
    MsePartialKernel<<<blocks, 256, 0, st>>>(p.data<T>(), t.data<T>(), partial, B, M, S, chunk);
    CF_CUDA_CHECK_LAUNCH();
    // n == 0: 0 * inf = NaN, the mean of nothing (as on the CPU); the weights
    // are not read then (they may be an empty tensor).
    const T* w = weighted && n > 0 ? ctx.inputs[2].data<T>() : nullptr;
    MseFinishKernel<<<1, 1024, 0, st>>>(partial, w, ctx.outputs[0].data<T>(), B, S, 1.f / static_cast<float>(n));
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

Status MseBackwardCuda(KernelContext& ctx) {
  const Tensor &p = ctx.inputs[0], &t = ctx.inputs[1], &dy = ctx.inputs[2];
  const bool weighted = ctx.inputs.size() == 4;
  const int64_t n = p.numel();
  if (n == 0) return absl::OkStatus();
  const int64_t M = weighted ? n / p.shape()[0] : n;
  return DispatchCudaFloat(p.dtype(), ctx.op, [&](auto tag) -> Status {
    using T = decltype(tag);
    const T* w = weighted ? ctx.inputs[3].data<T>() : nullptr;
    MseBackwardKernel<<<GridFor(n), 256, 0, CudaStreamOf(ctx)>>>(p.data<T>(), t.data<T>(), dy.data<T>(), w,
                                                                 ctx.outputs[0].data<T>(), n, M,
                                                                 2.f / static_cast<float>(n));
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

}  // namespace

CF_REGISTER_KERNEL("mse_loss", kCUDA, MseCuda);
CF_REGISTER_KERNEL("mse_loss_backward", kCUDA, MseBackwardCuda);

}  // namespace cf
