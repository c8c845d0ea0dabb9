// The CUDA reduction engine (sum, mean, sum_to) and the sum / mean kernels'
// launcher; kernels and launch plan in reduce_sum_kernels.cuh.
#include <algorithm>

#include "ops/cuda_util.cuh"
#include "ops/reduce/reduce_sum_kernels.cuh"
#include "ops/reduce/reduce.h"
#include "ops/reduce/reduce_plan.h"
#include "ops/reduce/reduce_sum_cuda.h"

namespace cf {
namespace {

using namespace reduce_kernels;

template <typename T>
Status Reduce(const T* x, T* out, const ReducePlan& p, float scale, KernelContext& ctx) {
  cudaStream_t st = CudaStreamOf(ctx);
  const ReduceLaunch l = ReduceLaunchFor(p, NumSms(), static_cast<bool>(ctx.workspace));
  const int64_t A = p.outer, R = p.r, B = p.inner;
  const dim3 col_block(kColX, kColY);
  float* partial = nullptr;
  if (l.workspace_floats > 0) {
    CF_ASSIGN_OR_RETURN(void* ws, ctx.workspace(l.workspace_floats * int64_t(sizeof(float))));
    partial = static_cast<float*>(ws);
  }
  switch (l.kind) {
    case ReduceLaunch::kGeneral:
      GeneralSumKernel<<<l.grid1, 256, 0, st>>>(x, out, GeneralReduceOf(p), p.num_out, p.num_reduce, scale);
      break;
    case ReduceLaunch::kRowWarp:
      RowSumWarpKernel<<<l.grid1, 256, 0, st>>>(x, out, A, R, scale);
      break;
    case ReduceLaunch::kRowBlock:
      RowSumBlockKernel<<<l.grid1, 256, 0, st>>>(x, out, A, R, 1, l.chunk, scale);
      break;
    case ReduceLaunch::kRowSplit:
      RowSumBlockKernel<<<l.grid1, 256, 0, st>>>(x, partial, A, R, l.S, l.chunk, 1.f);
      CF_CUDA_CHECK_LAUNCH();
      RowSumWarpKernel<<<l.grid2, 256, 0, st>>>(static_cast<const float*>(partial), out, A, l.S, scale);
      break;
    case ReduceLaunch::kCol:
      ColSumKernel<<<l.grid1, col_block, 0, st>>>(x, out, A, R, B, 1, l.chunk, scale);
      break;
    case ReduceLaunch::kColSplit:
      ColSumKernel<<<l.grid1, col_block, 0, st>>>(x, partial, A, R, B, l.S, l.chunk, 1.f);
      CF_CUDA_CHECK_LAUNCH();
      ColSumKernel<<<l.grid2, col_block, 0, st>>>(static_cast<const float*>(partial), out, A, l.S, B, 1, l.S, scale);
      break;
  }
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

template <bool kMean>
Status ReduceCuda(KernelContext& ctx) {
  const Tensor& x = ctx.inputs[0];
  CF_ASSIGN_OR_RETURN(uint32_t mask, ReduceMask(ctx.attrs.Ints("axes"), x.shape().rank()));
  const double scale = kMean ? MeanScale(x.numel(), ctx.outputs[0].numel()) : 1.0;
  return ReduceSumCuda(x, mask, scale, ctx.outputs[0], ctx);
}

}  // namespace

Status ReduceSumCuda(const Tensor& x, uint32_t mask, double scale, Tensor& out, KernelContext& ctx) {
  const ReducePlan p = PlanReduce(x.shape(), mask);
  if (out.numel() != p.num_out) {
    return absl::InternalError(absl::StrCat("reduction of ", x.shape().ToString(), " into ",
                                            out.shape().ToString(), ": expected ", p.num_out, " outputs"));
  }
  if (p.num_out == 0) return absl::OkStatus();
  if (p.num_reduce == 0) {
    CF_CUDA_CHECK(cudaMemsetAsync(out.raw(), 0, out.nbytes(), CudaStreamOf(ctx)));  // 0.0 in every float type
    return absl::OkStatus();
  }
  return DispatchCudaFloat(x.dtype(), ctx.op, [&](auto tag) -> Status {
    using T = decltype(tag);
    return Reduce(x.data<T>(), out.data<T>(), p, static_cast<float>(scale), ctx);
  });
}

CF_REGISTER_KERNEL("sum", kCUDA, ReduceCuda<false>);
CF_REGISTER_KERNEL("mean", kCUDA, ReduceCuda<true>);

}  // namespace cf
