// CUDA launcher of fused_elementwise (definition in fused_elementwise.cc;
// kernel in fused_elementwise_kernels.cuh).
#include "ops/cuda_util.cuh"
#include "ops/fused/fused_elementwise.h"
#include "ops/fused/fused_elementwise_kernels.cuh"

namespace cf {
namespace {

Status FusedCuda(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(FusedProgram prog, FusedProgram::FromAttrs(ctx.attrs));
  Tensor& out = ctx.outputs[0];
  const int64_t n = out.numel();
  if (n == 0) return absl::OkStatus();
  std::vector<Shape> shapes;
  for (const Tensor& t : ctx.inputs) shapes.push_back(t.shape());
  return DispatchCudaFloat(out.dtype(), ctx.op, [&](auto tag) -> Status {
    using T = decltype(tag);
    fused::Args<T> args;
    args.plan = fused::MakePlan(out.shape(), shapes);
    for (size_t k = 0; k < ctx.inputs.size(); ++k) args.in[k] = ctx.inputs[k].data<T>();
    args.out = out.data<T>();
    args.num_code = static_cast<int>(prog.code().size());
    for (int j = 0; j < args.num_code; ++j) args.code[j] = prog.code()[j];
    for (int j = 0; j <= fused::kMaxConsts; ++j)
      args.consts[j] = j < static_cast<int>(prog.consts().size()) ? static_cast<float>(prog.consts()[j]) : 0.f;
    const fused::Launch g = fused::Geometry(n);
    if (g.index64) {
      fused::FusedElementwiseKernel<T, int64_t><<<g.g.grid, g.g.block, 0, CudaStreamOf(ctx)>>>(args, n);
    } else {
      fused::FusedElementwiseKernel<T, uint32_t><<<g.g.grid, g.g.block, 0, CudaStreamOf(ctx)>>>(args, uint32_t(n));
    }
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

}  // namespace

CF_REGISTER_KERNEL("fused_elementwise", kCUDA, FusedCuda);

}  // namespace cf
