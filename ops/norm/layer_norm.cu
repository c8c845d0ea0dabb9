// CUDA launchers of layer_norm and layer_norm_backward (definitions and the
// math in layer_norm.cc; kernels and launch geometry in layer_norm_kernels.cuh).
#include <algorithm>
#include <type_traits>

#include "ops/norm/layer_norm_kernels.cuh"
#include "ops/norm/norm_cuda.cuh"
#include "ops/norm/norm_internal.h"

namespace cf {
namespace {

using namespace layer_norm_kernels;

// Calls f(std::integral_constant<int, k>{}) for k in 1..kMaxVecs.
template <typename F>
void WithVecs(int k, F&& f) {
  switch (k) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 5: f(std::integral_constant<int, 5>{}); break;
    case 6: f(std::integral_constant<int, 6>{}); break;
    case 7: f(std::integral_constant<int, 7>{}); break;
    case 8: f(std::integral_constant<int, 8>{}); break;
    default: f(std::integral_constant<int, 9>{}); break;
  }
}

Status CheckC(int64_t c, const char* op) {
  CF_CHECK_ARG(c <= (int64_t{1} << 30), op, ": C = ", c, " is too large for the CUDA kernel");
  return absl::OkStatus();
}

template <typename T>
Status LayerNormCudaT(KernelContext& ctx) {
  const Tensor& xt = ctx.inputs[0];
  const int64_t c = xt.shape().dim(-1), rows = norm_internal::RowsOf(xt.shape());
  if (xt.numel() == 0) return absl::OkStatus();
  CF_RETURN_IF_ERROR(CheckC(c, "layer_norm"));
  const float eps = static_cast<float>(norm_internal::EpsOf(ctx.attrs));
  const bool affine = ctx.inputs.size() == 3;
  const T* x = xt.data<T>();
  const T* gamma = affine ? ctx.inputs[1].data<T>() : nullptr;
  const T* beta = affine ? ctx.inputs[2].data<T>() : nullptr;
  T* y = ctx.outputs[0].data<T>();
  cudaStream_t stream = CudaStreamOf(ctx);
  const int ci = static_cast<int>(c);
  const LnForwardLaunch l = LnForwardLaunchFor(rows, c, norm_cuda::Aligned4<T>({x, y, gamma, beta}));
  if (l.vecs > 0) {
    WithVecs(l.vecs, [&](auto k) {
      LnWarpVecKernel<T, decltype(k)::value><<<l.grid, l.block, 0, stream>>>(x, gamma, beta, y, rows, ci, eps);
    });
  } else {
    LnWarpGenericKernel<T><<<l.grid, l.block, 0, stream>>>(x, gamma, beta, y, rows, ci, eps);
  }
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

template <typename T>
Status LayerNormBackwardCudaT(KernelContext& ctx) {
  const Tensor& xt = ctx.inputs[0];
  const int64_t c = xt.shape().dim(-1), rows = norm_internal::RowsOf(xt.shape());
  const bool affine = ctx.inputs.size() == 3;
  cudaStream_t stream = CudaStreamOf(ctx);
  if (xt.numel() == 0) return norm_cuda::ZeroOutputs(ctx, 1);  // no rows: dgamma = dbeta = 0
  CF_RETURN_IF_ERROR(CheckC(c, "layer_norm_backward"));
  const float eps = static_cast<float>(norm_internal::EpsOf(ctx.attrs));
  const int ci = static_cast<int>(c);
  const LnBackwardPlan lp = LnBackwardPlanFor(rows, c, NumSms());
  const int64_t chunks = lp.chunks;
  CF_CHECK_ARG(chunks <= 65535, "layer_norm_backward: ", rows, " rows exceed the CUDA grid limit");
  CF_ASSIGN_OR_RETURN(void* ws, norm_cuda::Workspace(ctx, "layer_norm_backward",
                                                      norm_cuda::Carver::Bytes({2 * rows, chunks * c, chunks * c})));
  norm_cuda::Carver carve(ws);
  float* row_stats = carve.Take(2 * rows);
  float* part_g = carve.Take(chunks * c);
  float* part_b = carve.Take(chunks * c);
  const T* x = xt.data<T>();
  const T* dy = ctx.inputs[1].data<T>();
  const T* gamma = affine ? ctx.inputs[2].data<T>() : nullptr;
  T* dx = ctx.outputs[0].data<T>();
  LnBwdDxKernel<T><<<lp.dx_grid, lp.block, 0, stream>>>(x, dy, gamma, dx, row_stats, rows, ci, eps);
  CF_CUDA_CHECK_LAUNCH();
  if (!affine) return absl::OkStatus();
  LnBwdParamPartialKernel<T><<<lp.param_grid, lp.block, 0, stream>>>(x, dy, row_stats, rows, ci, lp.chunk_rows, part_g,
                                                                      part_b);
  CF_CUDA_CHECK_LAUNCH();
  return norm_cuda::LaunchSumChunks(part_g, part_b, 1, chunks, ci, ctx.outputs[1].data<T>(), ctx.outputs[2].data<T>(),
                                   stream);
}

Status LayerNormCuda(KernelContext& ctx) {
  return DispatchCudaFloat(ctx.inputs[0].dtype(), "layer_norm",
                           [&](auto tag) { return LayerNormCudaT<decltype(tag)>(ctx); });
}
Status LayerNormBackwardCuda(KernelContext& ctx) {
  return DispatchCudaFloat(ctx.inputs[0].dtype(), "layer_norm_backward",
                           [&](auto tag) { return LayerNormBackwardCudaT<decltype(tag)>(ctx); });
}

}  // namespace

CF_REGISTER_KERNEL("layer_norm", kCUDA, LayerNormCuda);
CF_REGISTER_KERNEL("layer_norm_backward", kCUDA, LayerNormBackwardCuda);

}  // namespace cf
