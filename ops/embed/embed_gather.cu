// CUDA kernels of gather and embedding_backward (definitions in embed_gather.cc).
#include <cstdint>
#include <cstring>

#include "ops/cuda_util.cuh"

namespace cf {
namespace {

// out: [N, row_words] of W; table: [V, row_words]; idx: [N]. A row whose index
// is outside [0, V) becomes `nan_fill` (NaN in the table's dtype): the error is
// visible in the result without a device sync.
template <typename W, typename IdxT>
__global__ void GatherKernel(W* __restrict__ out, const W* __restrict__ table, const IdxT* __restrict__ idx,
                             int64_t total, int64_t row_words, int64_t V, W nan_fill) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / row_words, c = i - n * row_words;
    const int64_t v = static_cast<int64_t>(idx[n]);
    out[i] = (v >= 0 && v < V) ? table[v * row_words + c] : nan_fill;
  }
}

template <int V> struct GWord;
template <> struct GWord<2> { using T = uint16_t; };
template <> struct GWord<4> { using T = uint32_t; };
template <> struct GWord<8> { using T = uint2; };
template <> struct GWord<16> { using T = uint4; };

template <int V, typename IdxT>
Status LaunchGather(KernelContext& ctx, int64_t row_bytes, const uint8_t* nan_pattern) {
  using W = typename GWord<V>::T;
  const Tensor& table = ctx.inputs[0];
  const Tensor& indices = ctx.inputs[1];
  Tensor& out = ctx.outputs[0];
  const int64_t row_words = row_bytes / V, total = indices.numel() * row_words;
  if (total == 0) return absl::OkStatus();
  W fill;
  std::memcpy(&fill, nan_pattern, sizeof(W));
  GatherKernel<W, IdxT><<<GridFor(total), 256, 0, CudaStreamOf(ctx)>>>(
      out.data_as<W>(), table.data_as<W>(), indices.data<IdxT>(), total, row_words, table.shape()[0], fill);
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

template <typename IdxT>
Status GatherTyped(KernelContext& ctx) {
  const Tensor& table = ctx.inputs[0];
  Tensor& out = ctx.outputs[0];
  const int64_t es = DTypeSize(table.dtype());
  const int64_t row_bytes = table.shape()[1] * es;
  uint16_t nan_bits16 = table.dtype() == DType::bf16 ? 0x7fc0 : 0x7e00;
  uint32_t nan_bits32 = 0x7fc00000u;
  uint8_t pattern[16];
  for (int b = 0; b < 16; ++b)
    pattern[b] = es == 4 ? reinterpret_cast<uint8_t*>(&nan_bits32)[b % 4] : reinterpret_cast<uint8_t*>(&nan_bits16)[b % 2];
  int64_t v = 16;
  for (; v > es; v /= 2)
    if (row_bytes % v == 0 && reinterpret_cast<uintptr_t>(table.raw()) % v == 0 &&
        reinterpret_cast<uintptr_t>(out.raw()) % v == 0)
      break;
  switch (v > es ? v : es) {
    case 2: return LaunchGather<2, IdxT>(ctx, row_bytes, pattern);
    case 4: return LaunchGather<4, IdxT>(ctx, row_bytes, pattern);
    case 8: return LaunchGather<8, IdxT>(ctx, row_bytes, pattern);
    default: return LaunchGather<16, IdxT>(ctx, row_bytes, pattern);
  }
}

Status GatherCuda(KernelContext& ctx) {
  const DType t = ctx.inputs[0].dtype();
  if (t != DType::f32 && t != DType::f16 && t != DType::bf16)
    return absl::InvalidArgumentError(absl::StrCat("gather: table dtype ", DTypeName(t), " has no CUDA kernel"));
  if (ctx.inputs[1].dtype() == DType::i32) return GatherTyped<int32_t>(ctx);
  return GatherTyped<int64_t>(ctx);
}

// Deterministic scatter-add without sorting or atomics. Block (x, y) owns
// columns [x * blockDim.x, +blockDim.x) of rows [y * rows_per_part, +rows_per_part):
// each of its threads owns one column of those rows, zeroes it, then walks
// all N tokens in order (indices staged through shared memory) and adds the
// gradient of the tokens whose row it owns. Every (row, column) has one owner
// and a fixed summation order; out-of-range indices match no owner.
// acc: [V, D] f32 (the output itself when T is float); grad: [N, D]; idx: [N].
constexpr int kIdxChunk = 1024;
template <typename T, typename IdxT>
__global__ void EmbeddingBackwardKernel(float* __restrict__ acc, T* __restrict__ out, const T* __restrict__ grad,
                                        const IdxT* __restrict__ idx, int64_t N, int64_t V, int64_t D,
                                        int64_t rows_per_part) {
  __shared__ int64_t sidx[kIdxChunk];
  const int64_t d = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t v0 = blockIdx.y * rows_per_part;
  const int64_t v1 = v0 + rows_per_part < V ? v0 + rows_per_part : V;
  const bool active = d < D;
  if (active)
    for (int64_t v = v0; v < v1; ++v) acc[v * D + d] = 0.f;
  for (int64_t base = 0; base < N; base += kIdxChunk) {
    const int64_t m = N - base < kIdxChunk ? N - base : kIdxChunk;
    __syncthreads();  // the previous chunk is consumed
    for (int64_t t = threadIdx.x; t < m; t += blockDim.x) sidx[t] = static_cast<int64_t>(idx[base + t]);
    __syncthreads();
    if (!active) continue;
    for (int64_t t = 0; t < m; ++t) {
      const int64_t v = sidx[t];
      if (v >= v0 && v < v1) acc[v * D + d] += LoadF(grad, (base + t) * D + d);
    }
  }
  if (active && static_cast<void*>(acc) != static_cast<void*>(out))
    for (int64_t v = v0; v < v1; ++v) StoreF(out, v * D + d, acc[v * D + d]);
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
    const int threads = D >= 256 ? 256 : static_cast<int>((D + 31) / 32 * 32);
    const int64_t col_blocks = (D + threads - 1) / threads;
    // About 1024 blocks in all: enough to fill an H100 several times over.
    int64_t parts = 1024 / col_blocks;
    parts = parts < 1 ? 1 : (parts > V ? V : parts);
    const int64_t rows_per_part = (V + parts - 1) / parts;
    parts = (V + rows_per_part - 1) / rows_per_part;
    dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(parts));
    if (indices.dtype() == DType::i32) {
      EmbeddingBackwardKernel<T, int32_t><<<grid, threads, 0, CudaStreamOf(ctx)>>>(
          acc, out.data<T>(), grad.data<T>(), indices.data<int32_t>(), N, V, D, rows_per_part);
    } else {
      EmbeddingBackwardKernel<T, int64_t><<<grid, threads, 0, CudaStreamOf(ctx)>>>(
          acc, out.data<T>(), grad.data<T>(), indices.data<int64_t>(), N, V, D, rows_per_part);
    }
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

}  // namespace

CF_REGISTER_KERNEL("gather", kCUDA, GatherCuda);
CF_REGISTER_KERNEL("embedding_backward", kCUDA, EmbeddingBackwardCuda);

}  // namespace cf
