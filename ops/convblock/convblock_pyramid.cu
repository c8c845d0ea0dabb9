// CUDA kernel of convblock_pyramid (definition, cost, VJP and CPU kernel in
// convblock_pyramid.cc; contract in convblock.h): the plan of
// convblock_pyramid_kernels.cuh run with real launches on the op's stream —
// the adaptive pool of ops/pool, the gated depthwise of ops/conv
// (DepthwiseGateForwardCuda) and the channel-slice bilinear resize of
// ops/pool. f32 / f16 / bf16, f32 accumulation. Not yet run on a GPU.
#include <string>
#include <utility>
#include <vector>

#include "ops/conv/conv_depthwise_cuda.h"
#include "ops/convblock/convblock_pyramid_kernels.cuh"
#include "ops/cuda_util.cuh"
#include "ops/pool/pool_kernels.cuh"

namespace cf {
namespace {

template <typename T>
struct CudaPyramidOps {
  cudaStream_t stream;

  Status Pool(const T* u, T* pooled, int64_t total, int64_t H, int64_t W, int64_t C, int64_t h, int64_t w) {
    const pool_internal::PoolLaunch l = pool_internal::PoolLaunchFor(total);
    if (l.empty()) return absl::OkStatus();
    adaptive_pool_kernels::AdaptiveKernel<T><<<l.grid, l.block, 0, stream>>>(u, pooled, total, H, W, C, h, w);
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  }
  template <typename TOut>
  Status Gate(const T* x, const T* w, const T* b, TOut* y, const dwconv::TiledShape& s, const dwconv::TiledEpilogue& e) {
    return DepthwiseGateForwardCuda<T, TOut>(DwGateShape{s.n, s.ih, s.iw, s.c, s.kw}, x, w, b, e.factor, e.gate, y,
                                             e.out_stride, stream);
  }
  Status Resize(const float* g, T* slice, int64_t total, int64_t h, int64_t w, int64_t C, int64_t H, int64_t W, float sh,
                float sw, int64_t stride) {
    const pool_internal::PoolLaunch l = pool_internal::PoolLaunchFor(total);
    if (l.empty()) return absl::OkStatus();
    resize_kernels::ResizeIntoKernel<float, T>
        <<<l.grid, l.block, 0, stream>>>(g, slice, total, h, w, C, H, W, sh, sw, stride);
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  }
};

// The attributes as the plan's numbers (the op's shape rule has checked them).
StatusOr<pyramid::Plan> PlanOf(const KernelContext& ctx, int64_t elem_bytes) {
  const Shape& u = ctx.inputs[0].shape();
  CF_ASSIGN_OR_RETURN(const std::vector<int64_t> sizes, ctx.attrs.RequireInts("sizes"));
  CF_ASSIGN_OR_RETURN(const int64_t k, ctx.attrs.RequireInt("kernel"));
  const std::string gate = ctx.attrs.Str("gate", "");
  if (gate != "product" && gate != "sigmoid")
    return absl::InvalidArgumentError(absl::StrCat(ctx.op, " (CUDA): gate '", gate, "' is not product or sigmoid"));
  if (sizes.empty() || sizes.size() % 2 != 0)
    return absl::InvalidArgumentError(absl::StrCat(ctx.op, " (CUDA): sizes needs 2 per stage, got ", sizes.size()));
  std::vector<std::pair<int64_t, int64_t>> hw;
  for (size_t i = 0; i < sizes.size(); i += 2) hw.emplace_back(sizes[i], sizes[i + 1]);
  return pyramid::PlanFor(u[0], u[1], u[2], u[3], int(k), gate == "sigmoid" ? dwconv::kGateSigmoid : dwconv::kGateProduct,
                          float(ctx.attrs.Float("factor", 1.0)), ctx.attrs.Bool("has_bias", false), std::move(hw),
                          elem_bytes);
}

template <typename T>
Status PyramidCudaT(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(const pyramid::Plan p, PlanOf(ctx, int64_t(sizeof(T))));
  const int64_t S = p.stages();
  if (int64_t(ctx.inputs.size()) != 1 + S * (p.has_bias ? 2 : 1))
    return absl::InvalidArgumentError(absl::StrCat(ctx.op, " (CUDA): ", ctx.inputs.size(), " inputs for ", S, " stages"));
  if (ctx.outputs[0].numel() == 0) return absl::OkStatus();
  std::vector<const T*> w, b;
  for (int64_t n = 0; n < S; ++n) {
    w.push_back(ctx.inputs[1 + n].data<T>());
    if (p.has_bias) b.push_back(ctx.inputs[1 + S + n].data<T>());
  }
  char* ws = nullptr;
  if (p.workspace_bytes() > 0) {
    CF_ASSIGN_OR_RETURN(void* v, ctx.workspace(p.workspace_bytes()));
    ws = static_cast<char*>(v);
  }
  CudaPyramidOps<T> ops{CudaStreamOf(ctx)};
  return pyramid::RunPlan(p, ops, static_cast<const T*>(ctx.inputs[0].data<T>()), w, b, ctx.outputs[0].data<T>(), reinterpret_cast<T*>(ws),
                          ws ? reinterpret_cast<float*>(ws + p.gated_offset) : static_cast<float*>(nullptr));
}

Status ConvBlockPyramidCuda(KernelContext& ctx) {
  return DispatchCudaFloat(ctx.inputs[0].dtype(), ctx.op, [&](auto tag) { return PyramidCudaT<decltype(tag)>(ctx); });
}

}  // namespace

CF_REGISTER_KERNEL("convblock_pyramid", kCUDA, ConvBlockPyramidCuda);

}  // namespace cf
