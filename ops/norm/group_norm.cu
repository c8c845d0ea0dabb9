// CUDA launchers of group_norm and group_norm_backward (definitions and the
// math in group_norm.cc; kernels, the two-stage statistics and the launch
// geometry in group_norm_kernels.cuh).
#include <algorithm>
#include <type_traits>

#include "ops/norm/group_norm_kernels.cuh"
#include "ops/norm/norm_cuda.cuh"
#include "ops/norm/norm_internal.h"

namespace cf {
namespace {

using namespace group_norm_kernels;

StatusOr<GnPlan> PlanGn(const GnDims& d, int64_t min_rows_per_thread_row, const char* op) {
  CF_CHECK_ARG(d.C * 2 * int64_t{sizeof(float)} <= kSmemBytes, op, ": C = ", d.C,
               " channels exceed the CUDA kernel's limit of ", kSmemBytes / 8);
  CF_CHECK_ARG(d.N <= 65535, op, ": batch ", d.N, " exceeds the CUDA grid limit 65535");
  return GnPlanFor(d, min_rows_per_thread_row, NumSms());
}

// Calls f(std::integral_constant<int, cpt>{}).
template <typename F>
void WithCpt(int cpt, F&& f) {
  switch (cpt) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 8: f(std::integral_constant<int, 8>{}); break;
    default: f(std::integral_constant<int, 16>{}); break;
  }
}

template <typename T>
Status GnStats(const T* x, const GnDims& d, float eps, const GnPlan& p, float* partial, float* stats,
               cudaStream_t stream) {
  WithCpt(p.cpt, [&](auto k) {
    GnStatsPartialKernel<T, decltype(k)::value><<<p.grid, p.block, p.smem, stream>>>(
        x, d.P, static_cast<int>(d.C), static_cast<int>(d.G), static_cast<int>(d.Cg), p.rows, partial);
  });
  CF_CUDA_CHECK_LAUNCH();
  const int ng = static_cast<int>(d.N * d.G);
  GnStatsFinalKernel<<<GnFinalGrid(ng), 256, 0, stream>>>(partial, p.chunks, ng, static_cast<int>(d.G), eps,
                                                                 stats);
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

template <typename T>
Status GroupNormCudaT(KernelContext& ctx) {
  const Tensor& xt = ctx.inputs[0];
  const GnDims d = norm_internal::GnDimsOf(xt.shape(), ctx.attrs);
  if (xt.numel() == 0) return absl::OkStatus();
  const float eps = static_cast<float>(norm_internal::EpsOf(ctx.attrs));
  const bool affine = ctx.inputs.size() == 3;
  CF_ASSIGN_OR_RETURN(const GnPlan p, PlanGn(d, 2, "group_norm"));
  CF_ASSIGN_OR_RETURN(void* ws, norm_cuda::Workspace(ctx, "group_norm",
                                                      norm_cuda::Carver::Bytes({d.N * p.chunks * d.G * 3, d.N * d.G * 2})));
  norm_cuda::Carver carve(ws);
  float* partial = carve.Take(d.N * p.chunks * d.G * 3);
  float* stats = carve.Take(d.N * d.G * 2);
  cudaStream_t stream = CudaStreamOf(ctx);
  const T* x = xt.data<T>();
  CF_RETURN_IF_ERROR(GnStats(x, d, eps, p, partial, stats, stream));

  const T* gamma = affine ? ctx.inputs[1].data<T>() : nullptr;
  const T* beta = affine ? ctx.inputs[2].data<T>() : nullptr;
  T* y = ctx.outputs[0].data<T>();
  const int64_t pc = d.P * d.C;
  const int c = static_cast<int>(d.C), g = static_cast<int>(d.G), cg = static_cast<int>(d.Cg);
  const bool silu = norm_internal::SiluOf(ctx.attrs);
  const GnEltLaunch l = GnEltLaunchFor(d, norm_cuda::Aligned4<T>({x, y}));
  if (l.vec == 4) {
    GnNormalizeKernel<T, 4><<<l.grid, l.block, 0, stream>>>(x, stats, gamma, beta, y, l.total, pc, c, g, cg, silu);
  } else {
    GnNormalizeKernel<T, 1><<<l.grid, l.block, 0, stream>>>(x, stats, gamma, beta, y, l.total, pc, c, g, cg, silu);
  }
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

template <typename T>
Status GroupNormBackwardCudaT(KernelContext& ctx) {
  const Tensor& xt = ctx.inputs[0];
  const GnDims d = norm_internal::GnDimsOf(xt.shape(), ctx.attrs);
  const bool affine = ctx.inputs.size() == 3;
  cudaStream_t stream = CudaStreamOf(ctx);
  if (xt.numel() == 0) return norm_cuda::ZeroOutputs(ctx, 1);  // no positions: dgamma = dbeta = 0
  const float eps = static_cast<float>(norm_internal::EpsOf(ctx.attrs));
  CF_ASSIGN_OR_RETURN(const GnPlan ps, PlanGn(d, 2, "group_norm_backward"));
  // Fewer, larger chunks for the per-channel partial sums: each chunk writes
  // 2 C floats, so >= 8 rows per thread-row keep that traffic small.
  CF_ASSIGN_OR_RETURN(const GnPlan pb, PlanGn(d, 8, "group_norm_backward"));
  const int64_t n_ps = d.N * ps.chunks * d.G * 3, n_st = d.N * d.G * 2, n_pb = d.N * pb.chunks * d.C,
                n_s = d.N * d.C;
  CF_ASSIGN_OR_RETURN(void* ws, norm_cuda::Workspace(ctx, "group_norm_backward",
                                                      norm_cuda::Carver::Bytes({n_ps, n_st, n_pb, n_pb, n_s, n_s, n_st})));
  norm_cuda::Carver carve(ws);
  float* partial = carve.Take(n_ps);
  float* stats = carve.Take(n_st);
  float* part_dy = carve.Take(n_pb);
  float* part_dyxh = carve.Take(n_pb);
  float* s_dy = carve.Take(n_s);
  float* s_dyxh = carve.Take(n_s);
  float* coef = carve.Take(n_st);

  const T* x = xt.data<T>();
  const T* dy = ctx.inputs[1].data<T>();
  const T* gamma = affine ? ctx.inputs[2].data<T>() : nullptr;
  T* dx = ctx.outputs[0].data<T>();
  T* dgamma = affine ? ctx.outputs[1].data<T>() : nullptr;
  T* dbeta = affine ? ctx.outputs[2].data<T>() : nullptr;
  const int c = static_cast<int>(d.C), g = static_cast<int>(d.G), cg = static_cast<int>(d.Cg);
  CF_RETURN_IF_ERROR(GnStats(x, d, eps, ps, partial, stats, stream));

  {
    WithCpt(pb.cpt, [&](auto k) {
      GnBwdPartialKernel<T, decltype(k)::value><<<pb.grid, pb.block, pb.smem, stream>>>(x, dy, stats, d.P, c, g, cg, pb.rows,
                                                                                part_dy, part_dyxh);
    });
    CF_CUDA_CHECK_LAUNCH();
  }
  CF_RETURN_IF_ERROR(norm_cuda::LaunchSumChunks(part_dy, part_dyxh, d.N, pb.chunks, c, s_dy, s_dyxh, stream));
  GnBwdGroupKernel<T><<<GnGroupGrid(d), 256, 0, stream>>>(
      s_dy, s_dyxh, gamma, static_cast<int>(d.N), c, g, cg, 1.f / static_cast<float>(d.P * d.Cg), coef, dgamma, dbeta);
  CF_CUDA_CHECK_LAUNCH();
  const int64_t pc = d.P * d.C;
  const GnEltLaunch l = GnEltLaunchFor(d, norm_cuda::Aligned4<T>({x, dy, dx}));
  if (l.vec == 4) {
    GnBwdDxKernel<T, 4><<<l.grid, l.block, 0, stream>>>(x, dy, stats, coef, gamma, dx, l.total, pc, c, g, cg);
  } else {
    GnBwdDxKernel<T, 1><<<l.grid, l.block, 0, stream>>>(x, dy, stats, coef, gamma, dx, l.total, pc, c, g, cg);
  }
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

Status GroupNormCuda(KernelContext& ctx) {
  return DispatchCudaFloat(ctx.inputs[0].dtype(), "group_norm",
                           [&](auto tag) { return GroupNormCudaT<decltype(tag)>(ctx); });
}
Status GroupNormBackwardCuda(KernelContext& ctx) {
  return DispatchCudaFloat(ctx.inputs[0].dtype(), "group_norm_backward",
                           [&](auto tag) { return GroupNormBackwardCudaT<decltype(tag)>(ctx); });
}

}  // namespace

CF_REGISTER_KERNEL("group_norm", kCUDA, GroupNormCuda);
CF_REGISTER_KERNEL("group_norm_backward", kCUDA, GroupNormBackwardCuda);

}  // namespace cf
