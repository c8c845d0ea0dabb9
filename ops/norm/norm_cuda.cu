// Host helpers of the norm family's CUDA kernels (see norm_cuda.cuh).
#include "ops/norm/norm_cuda.cuh"

namespace cf::norm_cuda {

StatusOr<void*> Workspace(KernelContext& ctx, const char* op, int64_t bytes) {
  if (!ctx.workspace) return absl::InternalError(absl::StrCat(op, ": the CUDA kernel needs a workspace and got none"));
  return ctx.workspace(bytes);
}

Status ZeroOutputs(KernelContext& ctx, int first) {
  for (size_t k = first; k < ctx.outputs.size(); ++k)
    if (ctx.outputs[k].nbytes() > 0)
      CF_CUDA_CHECK(cudaMemsetAsync(ctx.outputs[k].raw(), 0, ctx.outputs[k].nbytes(), CudaStreamOf(ctx)));
  return absl::OkStatus();
}

}  // namespace cf::norm_cuda
