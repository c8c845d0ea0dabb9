// The CUDA reduction engine (sum, mean, sum_to) and the sum / mean kernels.
// Layouts come from PlanReduce: [A, R] rows, [A, R, B] columns, or a general
// pattern. Every output is a block (or warp) reduction in f32; when there are
// too few outputs to fill the GPU the reduced range is split into S chunks
// whose f32 partial sums go to the workspace, and a second pass of the same
// kernels sums the partials (deterministic, no atomics).
#include <algorithm>

#include "ops/cuda_util.cuh"
#include "ops/reduce/block_reduce.cuh"
#include "ops/reduce/reduce.h"
#include "ops/reduce/reduce_plan.h"
#include "ops/reduce/reduce_sum_cuda.h"

namespace cf {
namespace {

// x: [A, R] of TI; out[a] = scale * sum_r x[a, r], one warp per row.
template <typename TI, typename TO>
__global__ void RowSumWarpKernel(const TI* x, TO* out, int64_t A, int64_t R, float scale) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t a = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; a < A; a += warps) {
    const TI* row = x + a * R;
    float s = 0.f;
    for (int64_t r = lane; r < R; r += 32) s += LoadF(row, r);
    s = WarpSum(s);
    if (lane == 0) StoreF(out, a, s * scale);
  }
}

// x: [A, R] of TI split into S chunks of `chunk`; out: [A, S] of TO,
// out[a, s] = scale * sum of chunk s of row a. One block per (a, s).
template <typename TI, typename TO>
__global__ void RowSumBlockKernel(const TI* x, TO* out, int64_t A, int64_t R, int64_t S, int64_t chunk,
                                  float scale) {
  __shared__ float scratch[32];
  for (int64_t item = blockIdx.x; item < A * S; item += gridDim.x) {
    const int64_t a = item / S, s = item % S;
    const int64_t r0 = s * chunk, r1 = min(R, r0 + chunk);
    const TI* row = x + a * R;
    float v = 0.f;
    for (int64_t r = r0 + threadIdx.x; r < r1; r += blockDim.x) v += LoadF(row, r);
    v = BlockSum(v, scratch);
    if (threadIdx.x == 0) StoreF(out, item, v * scale);
  }
}

// x: [A, R, B] of TI, R split into S chunks; out: [A, S, B] of TO,
// out[a, s, b] = scale * sum over chunk s of x[a, r, b]. Block (32, 8): x
// threads walk 32 adjacent columns (coalesced), y threads split the rows.
constexpr int kColX = 32, kColY = 8;
template <typename TI, typename TO>
__global__ void ColSumKernel(const TI* x, TO* out, int64_t A, int64_t R, int64_t B, int64_t S, int64_t chunk,
                             float scale) {
  __shared__ float part[kColY][kColX + 1];
  const int64_t tiles = (B + kColX - 1) / kColX;
  for (int64_t item = blockIdx.x; item < A * S * tiles; item += gridDim.x) {
    const int64_t t = item % tiles, s = (item / tiles) % S, a = item / (tiles * S);
    const int64_t b = t * kColX + threadIdx.x;
    const int64_t r0 = s * chunk, r1 = min(R, r0 + chunk);
    float v = 0.f;
    if (b < B)
      for (int64_t r = r0 + threadIdx.y; r < r1; r += kColY) v += LoadF(x, (a * R + r) * B + b);
    part[threadIdx.y][threadIdx.x] = v;
    __syncthreads();
    if (threadIdx.y == 0 && b < B) {
      float total = 0.f;
#pragma unroll
      for (int y = 0; y < kColY; ++y) total += part[y][threadIdx.x];
      StoreF(out, (a * S + s) * B + b, total * scale);
    }
    __syncthreads();
  }
}

// Any layout: kept and reduced dimensions of the collapsed input with their
// element strides. One block per output.
struct GeneralReduce {
  int nk = 0, nr = 0;
  int64_t kdim[Shape::kMaxRank], kstride[Shape::kMaxRank];
  int64_t rdim[Shape::kMaxRank], rstride[Shape::kMaxRank];
};
template <typename T>
__global__ void GeneralSumKernel(const T* x, T* out, GeneralReduce g, int64_t num_out, int64_t num_reduce,
                                 float scale) {
  __shared__ float scratch[32];
  for (int64_t o = blockIdx.x; o < num_out; o += gridDim.x) {
    int64_t base = 0, rem = o;
    for (int k = g.nk - 1; k >= 0; --k) {
      base += (rem % g.kdim[k]) * g.kstride[k];
      rem /= g.kdim[k];
    }
    float v = 0.f;
    for (int64_t j = threadIdx.x; j < num_reduce; j += blockDim.x) {
      int64_t off = base, q = j;
      for (int k = g.nr - 1; k >= 0; --k) {
        off += (q % g.rdim[k]) * g.rstride[k];
        q /= g.rdim[k];
      }
      v += LoadF(x, off);
    }
    v = BlockSum(v, scratch);
    if (threadIdx.x == 0) StoreF(out, o, v * scale);
  }
}

unsigned Blocks(int64_t items) { return static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(items, 1), 65535LL * 16)); }

// Chunks to split a reduced range of r into so that `items` blocks become
// about four per SM, with at least min_chunk rows per chunk.
int64_t SplitFor(int64_t items, int64_t r, int64_t min_chunk, bool have_workspace) {
  const int64_t target = 4LL * NumSms();
  if (!have_workspace || items >= target) return 1;
  return std::max<int64_t>(1, std::min((target + items - 1) / items, r / min_chunk));
}

template <typename T>
Status Reduce(const T* x, T* out, const ReducePlan& p, float scale, KernelContext& ctx) {
  cudaStream_t st = CudaStreamOf(ctx);
  const bool have_ws = static_cast<bool>(ctx.workspace);
  if (!p.is_3d) {
    GeneralReduce g;
    int64_t stride[Shape::kMaxRank], s = 1;
    for (int d = p.rank - 1; d >= 0; --d) {
      stride[d] = s;
      s *= p.dims[d];
    }
    for (int d = 0; d < p.rank; ++d) {
      if (p.reduced[d]) {
        g.rdim[g.nr] = p.dims[d];
        g.rstride[g.nr++] = stride[d];
      } else {
        g.kdim[g.nk] = p.dims[d];
        g.kstride[g.nk++] = stride[d];
      }
    }
    GeneralSumKernel<<<Blocks(p.num_out), 256, 0, st>>>(x, out, g, p.num_out, p.num_reduce, scale);
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  }
  const int64_t A = p.outer, R = p.r, B = p.inner;
  if (B == 1) {
    if (R <= 4096 && A >= 4LL * NumSms()) {
      RowSumWarpKernel<<<Blocks((A + 7) / 8), 256, 0, st>>>(x, out, A, R, scale);
      CF_CUDA_CHECK_LAUNCH();
      return absl::OkStatus();
    }
    const int64_t S = SplitFor(A, R, 4096, have_ws);
    const int64_t chunk = (R + S - 1) / S;
    if (S == 1) {
      RowSumBlockKernel<<<Blocks(A), 256, 0, st>>>(x, out, A, R, 1, chunk, scale);
      CF_CUDA_CHECK_LAUNCH();
      return absl::OkStatus();
    }
    CF_ASSIGN_OR_RETURN(void* ws, ctx.workspace(A * S * int64_t(sizeof(float))));
    float* partial = static_cast<float*>(ws);
    RowSumBlockKernel<<<Blocks(A * S), 256, 0, st>>>(x, partial, A, R, S, chunk, 1.f);
    CF_CUDA_CHECK_LAUNCH();
    RowSumWarpKernel<<<Blocks((A + 7) / 8), 256, 0, st>>>(partial, out, A, S, scale);
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  }
  const int64_t tiles = (B + kColX - 1) / kColX;
  const int64_t S = SplitFor(A * tiles, R, 64, have_ws);
  const int64_t chunk = (R + S - 1) / S;
  const dim3 block(kColX, kColY);
  if (S == 1) {
    ColSumKernel<<<Blocks(A * tiles), block, 0, st>>>(x, out, A, R, B, 1, chunk, scale);
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  }
  CF_ASSIGN_OR_RETURN(void* ws, ctx.workspace(A * S * B * int64_t(sizeof(float))));
  float* partial = static_cast<float*>(ws);
  ColSumKernel<<<Blocks(A * S * tiles), block, 0, st>>>(x, partial, A, R, B, S, chunk, 1.f);
  CF_CUDA_CHECK_LAUNCH();
  ColSumKernel<<<Blocks(A * tiles), block, 0, st>>>(static_cast<const float*>(partial), out, A, S, B, 1, S, scale);
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
