// CUDA kernels of layer_norm and layer_norm_backward (definitions and the
// math in layer_norm.cc). x is viewed as rows [R, C].
//
// Forward: one warp per row. v1 (LnWarpVecKernel) for C % 4 == 0 and
// C <= 1152 (every model width up to PixArt's 1152): the row lives in
// registers, loaded with 4-wide vector loads, so x is read once and the
// variance is two-pass over registers. v0 (LnWarpGenericKernel), any C: the
// same math reading the row from global memory (L1) three times.
// Backward: LnBwdDxKernel (one warp per row; also saves each row's mean and
// rstd), then LnBwdParamPartialKernel / norm_cuda::SumChunksKernel reduce
// dgamma and dbeta over rows in two stages.
#include <algorithm>
#include <type_traits>

#include "ops/norm/norm_cuda.cuh"
#include "ops/norm/norm_internal.h"

namespace cf {
namespace {

using norm_cuda::Load4;
using norm_cuda::Store4;
using norm_cuda::WarpSum;

constexpr int kRowsPerBlock = 8;  // warps per 256-thread block, one row each
constexpr int kMaxVecs = 9;       // 4-vectors per lane in v1: C <= 32 * 4 * 9 = 1152

// x, y: [R, C] with C % 4 == 0, C <= 128 * kVecs, 4-aligned rows; gamma,
// beta: [C] or null. Block (32, 8): warp threadIdx.y handles one row; lane l
// holds the 4-vectors l, l + 32, ... of the row.
template <typename T, int kVecs>
__global__ void LnWarpVecKernel(const T* __restrict__ x, const T* __restrict__ gamma, const T* __restrict__ beta,
                                T* __restrict__ y, int64_t R, int C, float eps) {
  const int64_t row = blockIdx.x * int64_t(kRowsPerBlock) + threadIdx.y;
  if (row >= R) return;  // the whole warp
  const int lane = threadIdx.x, nv = C / 4;
  const T* xr = x + row * C;
  float v[kVecs][4];
  float s = 0.f;
#pragma unroll
  for (int k = 0; k < kVecs; ++k) {
    const int vi = lane + 32 * k;
    if (vi < nv) {
      Load4(xr + 4 * vi, v[k]);
      s += (v[k][0] + v[k][1]) + (v[k][2] + v[k][3]);
    }
  }
  const float mean = WarpSum(s) / static_cast<float>(C);
  float q = 0.f;
#pragma unroll
  for (int k = 0; k < kVecs; ++k) {
    if (lane + 32 * k < nv) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float d = v[k][j] - mean;
        q = fmaf(d, d, q);
      }
    }
  }
  const float rstd = rsqrtf(WarpSum(q) / static_cast<float>(C) + eps);
  T* yr = y + row * C;
#pragma unroll
  for (int k = 0; k < kVecs; ++k) {
    const int vi = lane + 32 * k;
    if (vi < nv) {
      float o[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) o[j] = (v[k][j] - mean) * rstd;
      if (gamma != nullptr) {
        float g[4], b[4];
        Load4(gamma + 4 * vi, g);
        Load4(beta + 4 * vi, b);
#pragma unroll
        for (int j = 0; j < 4; ++j) o[j] = fmaf(o[j], g[j], b[j]);
      }
      Store4(yr + 4 * vi, o);
    }
  }
}

// Mean and rstd of a row xr [C] by one warp (lane = threadIdx.x), two passes
// reading the row from global memory (L1).
template <typename T>
__device__ __forceinline__ void WarpRowStats(const T* xr, int C, float eps, float& mean, float& rstd) {
  const int lane = threadIdx.x;
  float s = 0.f;
  for (int i = lane; i < C; i += 32) s += LoadF(xr, i);
  mean = WarpSum(s) / static_cast<float>(C);
  float q = 0.f;
  for (int i = lane; i < C; i += 32) {
    const float d = LoadF(xr, i) - mean;
    q = fmaf(d, d, q);
  }
  rstd = rsqrtf(WarpSum(q) / static_cast<float>(C) + eps);
}

// x, y: [R, C], any C; gamma, beta: [C] or null. Block (32, 8), a warp per row.
template <typename T>
__global__ void LnWarpGenericKernel(const T* __restrict__ x, const T* __restrict__ gamma, const T* __restrict__ beta,
                                    T* __restrict__ y, int64_t R, int C, float eps) {
  const int64_t row = blockIdx.x * int64_t(kRowsPerBlock) + threadIdx.y;
  if (row >= R) return;
  const int lane = threadIdx.x;
  const T* xr = x + row * C;
  float mean, rstd;
  WarpRowStats(xr, C, eps, mean, rstd);
  T* yr = y + row * C;
  for (int i = lane; i < C; i += 32) {
    float o = (LoadF(xr, i) - mean) * rstd;
    if (gamma != nullptr) o = fmaf(o, LoadF(gamma, i), LoadF(beta, i));
    StoreF(yr, i, o);
  }
}

// x, dy, dx: [R, C]; gamma: [C] or null; row_stats: [R] x {mean, rstd} (out).
// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = gamma * dy.
// Block (32, 8), a warp per row.
template <typename T>
__global__ void LnBwdDxKernel(const T* __restrict__ x, const T* __restrict__ dy, const T* __restrict__ gamma,
                              T* __restrict__ dx, float* __restrict__ row_stats, int64_t R, int C, float eps) {
  const int64_t row = blockIdx.x * int64_t(kRowsPerBlock) + threadIdx.y;
  if (row >= R) return;
  const int lane = threadIdx.x;
  const T* xr = x + row * C;
  const T* dyr = dy + row * C;
  float mean, rstd;
  WarpRowStats(xr, C, eps, mean, rstd);
  float sa = 0.f, sb = 0.f;
  for (int i = lane; i < C; i += 32) {
    const float g = LoadF(dyr, i) * (gamma != nullptr ? LoadF(gamma, i) : 1.f);
    sa += g;
    sb = fmaf(g, (LoadF(xr, i) - mean) * rstd, sb);
  }
  sa = WarpSum(sa) / static_cast<float>(C);
  sb = WarpSum(sb) / static_cast<float>(C);
  T* dxr = dx + row * C;
  for (int i = lane; i < C; i += 32) {
    const float g = LoadF(dyr, i) * (gamma != nullptr ? LoadF(gamma, i) : 1.f);
    const float xh = (LoadF(xr, i) - mean) * rstd;
    StoreF(dxr, i, rstd * (g - sa - xh * sb));
  }
  if (lane == 0) {
    row_stats[2 * row] = mean;
    row_stats[2 * row + 1] = rstd;
  }
}

// x, dy: [R, C]; row_stats: [R] x {mean, rstd} -> part_g, part_b: [chunks, C],
// sums of dy * xhat and dy over each chunk of `rows` rows.
// Grid (ceil(C / 32), chunks), block (32, 8): the 8 thread-rows split the rows.
template <typename T>
__global__ void LnBwdParamPartialKernel(const T* __restrict__ x, const T* __restrict__ dy,
                                        const float* __restrict__ row_stats, int64_t R, int C, int64_t rows,
                                        float* __restrict__ part_g, float* __restrict__ part_b) {
  const int c = blockIdx.x * 32 + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  const int64_t r0 = chunk * rows, r1 = r0 + rows < R ? r0 + rows : R;
  float a = 0.f, b = 0.f;
  if (c < C) {
#pragma unroll 4
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) {
      const float d = LoadF(dy, r * C + c);
      const float xh = (LoadF(x, r * C + c) - row_stats[2 * r]) * row_stats[2 * r + 1];
      a = fmaf(d, xh, a);
      b += d;
    }
  }
  norm_cuda::SumThreadRows(a, b);
  if (threadIdx.y == 0 && c < C) {
    part_g[chunk * C + c] = a;
    part_b[chunk * C + c] = b;
  }
}

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
  const dim3 block(32, kRowsPerBlock);
  const unsigned grid = static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  cudaStream_t stream = CudaStreamOf(ctx);
  const int ci = static_cast<int>(c);
  if (c % 4 == 0 && c <= 128 * kMaxVecs && norm_cuda::Aligned4<T>({x, y, gamma, beta})) {
    WithVecs(static_cast<int>((c + 127) / 128), [&](auto k) {
      LnWarpVecKernel<T, decltype(k)::value><<<grid, block, 0, stream>>>(x, gamma, beta, y, rows, ci, eps);
    });
  } else {
    LnWarpGenericKernel<T><<<grid, block, 0, stream>>>(x, gamma, beta, y, rows, ci, eps);
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
  // Chunks of rows for dgamma / dbeta: about four blocks per SM, >= 64 rows each.
  const int64_t col_blocks = (c + 31) / 32;
  const int64_t want_chunks = std::max<int64_t>(1, 4 * NumSms() / col_blocks);
  const int64_t chunk_rows = std::max<int64_t>(64, (rows + want_chunks - 1) / want_chunks);
  const int64_t chunks = (rows + chunk_rows - 1) / chunk_rows;
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
  const unsigned grid = static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  LnBwdDxKernel<T><<<grid, dim3(32, kRowsPerBlock), 0, stream>>>(x, dy, gamma, dx, row_stats, rows, ci, eps);
  CF_CUDA_CHECK_LAUNCH();
  if (!affine) return absl::OkStatus();
  LnBwdParamPartialKernel<T><<<dim3(static_cast<unsigned>(col_blocks), static_cast<unsigned>(chunks)), dim3(32, 8), 0,
                               stream>>>(x, dy, row_stats, rows, ci, chunk_rows, part_g, part_b);
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
