// CUDA launchers of gather and embedding_backward (definitions in
// embed_gather.cc; kernels in embed_kernels.cuh).
#include <cstdint>
#include <cstring>

#include "ops/cuda_util.cuh"
#include "ops/embed/embed_kernels.cuh"

namespace cf {
namespace {

template <int V, typename IdxT>
Status LaunchGather(KernelContext& ctx, const embed::GatherLaunch& g, const uint8_t* nan_pattern) {
  using W = typename embed::GWord<V>::T;
  const Tensor& table = ctx.inputs[0];
  const Tensor& indices = ctx.inputs[1];
  Tensor& out = ctx.outputs[0];
  if (g.total == 0) return absl::OkStatus();
  W fill;
  std::memcpy(&fill, nan_pattern, sizeof(W));
  embed::GatherKernel<W, IdxT><<<g.grid, g.block, 0, CudaStreamOf(ctx)>>>(
      out.data_as<W>(), table.data_as<W>(), indices.data<IdxT>(), g.total, g.row_words, table.shape()[0], fill);
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

template <typename IdxT>
Status GatherTyped(KernelContext& ctx) {
  const Tensor& table = ctx.inputs[0];
  Tensor& out = ctx.outputs[0];
  const int64_t es = DTypeSize(table.dtype());
  uint8_t pattern[16];
  embed::GatherNanPattern(table.dtype(), pattern);
  const embed::GatherLaunch g =
      embed::GatherGeometry(ctx.inputs[1].numel(), table.shape()[1] * es, es, reinterpret_cast<uintptr_t>(table.raw()),
                            reinterpret_cast<uintptr_t>(out.raw()));
  switch (g.word_bytes) {
    case 2: return LaunchGather<2, IdxT>(ctx, g, pattern);
    case 4: return LaunchGather<4, IdxT>(ctx, g, pattern);
    case 8: return LaunchGather<8, IdxT>(ctx, g, pattern);
    default: return LaunchGather<16, IdxT>(ctx, g, pattern);
  }
}

Status GatherCuda(KernelContext& ctx) {
  const DType t = ctx.inputs[0].dtype();
  if (t != DType::f32 && t != DType::f16 && t != DType::bf16)
    return absl::InvalidArgumentError(absl::StrCat("gather: table dtype ", DTypeName(t), " has no CUDA kernel"));
  if (ctx.inputs[1].dtype() == DType::i32) return GatherTyped<int32_t>(ctx);
  return GatherTyped<int64_t>(ctx);
}

Status EmbeddingBackwardCuda(KernelContext& ctx) {
  const Tensor& grad = ctx.inputs[0];
  const Tensor& indices = ctx.inputs[1];
  Tensor& out = ctx.outputs[0];
  const int64_t V = out.shape()[0], D = out.shape()[1], N = indices.numel();
  if (V * D == 0) return absl::OkStatus();
  return DispatchCudaFloat(grad.dtype(), "embedding_backward", [&](auto tag) -> Status {
    using T = decltype(tag);
    float* acc = nullptr;
    if constexpr (std::is_same_v<T, float>) {
      acc = out.data<float>();
    } else {
      CF_ASSIGN_OR_RETURN(void* ws, ctx.workspace(V * D * static_cast<int64_t>(sizeof(float))));
      acc = static_cast<float*>(ws);
    }
    const embed::EmbedBackwardLaunch g = embed::EmbedBackwardGeometry(V, D);
    if (indices.dtype() == DType::i32) {
      embed::EmbeddingBackwardKernel<T, int32_t><<<g.grid, g.block, 0, CudaStreamOf(ctx)>>>(
          acc, out.data<T>(), grad.data<T>(), indices.data<int32_t>(), N, V, D, g.rows_per_part);
    } else {
      embed::EmbeddingBackwardKernel<T, int64_t><<<g.grid, g.block, 0, CudaStreamOf(ctx)>>>(
          acc, out.data<T>(), grad.data<T>(), indices.data<int64_t>(), N, V, D, g.rows_per_part);
    }
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

}  // namespace

CF_REGISTER_KERNEL("gather", kCUDA, GatherCuda);
CF_REGISTER_KERNEL("embedding_backward", kCUDA, EmbeddingBackwardCuda);

}  // namespace cf
