// CUDA kernels of softmax and softmax_backward over the last axis
// (definitions in softmax.cc). Rows of up to 1024 elements get one warp each;
// longer rows one block each. The forward pass is "online": one read keeps a
// running maximum m and a sum s of exp(x - m) (rescaled when m grows), the
// lanes' (m, s) are combined, and a second read writes exp(x - M) / S.
#include <cmath>

#include "ops/cuda_util.cuh"
#include "ops/reduce/block_reduce.cuh"

namespace cf {
namespace {

constexpr int64_t kWarpRowMax = 1024;

// Adds v to the running (m, s). NaN propagates: a NaN v makes s NaN, and so
// the whole row NaN, as on the CPU (the lanes' maxima are combined with fmaxf,
// which drops NaN, so s must carry it).
__device__ __forceinline__ void OnlineAdd(float v, float& m, float& s) {
  if (v > m) {
    s = s * expf(m - v) + 1.f;  // m = -inf, s = 0 the first time: 0 * 0 + 1
    m = v;
  } else if (m != -INFINITY) {
    s += expf(v - m);  // NaN in v (or already in m) gives NaN
  } else if (isnan(v)) {
    m = v;  // a NaN first: v > -inf is false for it, so it must be kept here
    s = v;
  }
}
// This thread's s rescaled to the combined maximum M.
__device__ __forceinline__ float Rescale(float m, float s, float M) { return m == -INFINITY ? 0.f : s * expf(m - M); }

// x, y: [rows, L] of T, L <= 1024; one warp per row.
template <typename T>
__global__ void SoftmaxWarpKernel(const T* x, T* y, int64_t rows, int64_t L) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t r = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; r < rows; r += warps) {
    const T* xr = x + r * L;
    float m = -INFINITY, s = 0.f;
    for (int64_t i = lane; i < L; i += 32) OnlineAdd(LoadF(xr, i), m, s);
    const float M = WarpMax(m);
    const float inv = 1.f / WarpSum(Rescale(m, s, M));
    T* yr = y + r * L;
    for (int64_t i = lane; i < L; i += 32) StoreF(yr, i, expf(LoadF(xr, i) - M) * inv);
  }
}

// x, y: [rows, L] of T; one block per row.
template <typename T>
__global__ void SoftmaxBlockKernel(const T* x, T* y, int64_t rows, int64_t L) {
  __shared__ float scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * L;
    float m = -INFINITY, s = 0.f;
    for (int64_t i = threadIdx.x; i < L; i += blockDim.x) OnlineAdd(LoadF(xr, i), m, s);
    const float M = BlockMax(m, scratch);
    const float inv = 1.f / BlockSum(Rescale(m, s, M), scratch);
    T* yr = y + r * L;
    for (int64_t i = threadIdx.x; i < L; i += blockDim.x) StoreF(yr, i, expf(LoadF(xr, i) - M) * inv);
  }
}

// y, dy, dx: [rows, L] of T; dx = y * (dy - sum(y * dy)); one warp per row.
template <typename T>
__global__ void SoftmaxBackwardWarpKernel(const T* y, const T* dy, T* dx, int64_t rows, int64_t L) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t r = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; r < rows; r += warps) {
    const T *yr = y + r * L, *dyr = dy + r * L;
    float dot = 0.f;
    for (int64_t i = lane; i < L; i += 32) dot += LoadF(yr, i) * LoadF(dyr, i);
    dot = WarpSum(dot);
    T* dxr = dx + r * L;
    for (int64_t i = lane; i < L; i += 32) StoreF(dxr, i, LoadF(yr, i) * (LoadF(dyr, i) - dot));
  }
}

// The same with one block per row.
template <typename T>
__global__ void SoftmaxBackwardBlockKernel(const T* y, const T* dy, T* dx, int64_t rows, int64_t L) {
  __shared__ float scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *yr = y + r * L, *dyr = dy + r * L;
    float dot = 0.f;
    for (int64_t i = threadIdx.x; i < L; i += blockDim.x) dot += LoadF(yr, i) * LoadF(dyr, i);
    dot = BlockSum(dot, scratch);
    T* dxr = dx + r * L;
    for (int64_t i = threadIdx.x; i < L; i += blockDim.x) StoreF(dxr, i, LoadF(yr, i) * (LoadF(dyr, i) - dot));
  }
}

unsigned RowBlocks(int64_t blocks) { return static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(blocks, 1), 65535LL * 16)); }

Status SoftmaxCuda(KernelContext& ctx) {
  const Tensor& x = ctx.inputs[0];
  const int64_t L = x.shape().dim(-1);
  if (x.numel() == 0) return absl::OkStatus();
  const int64_t rows = x.numel() / L;
  const bool backward = ctx.inputs.size() == 2;
  return DispatchCudaFloat(x.dtype(), ctx.op, [&](auto tag) -> Status {
    using T = decltype(tag);
    cudaStream_t st = CudaStreamOf(ctx);
    T* out = ctx.outputs[0].data<T>();
    if (L <= kWarpRowMax) {
      const unsigned grid = RowBlocks((rows + 7) / 8);  // 8 warps per 256-thread block
      if (backward) SoftmaxBackwardWarpKernel<<<grid, 256, 0, st>>>(x.data<T>(), ctx.inputs[1].data<T>(), out, rows, L);
      else SoftmaxWarpKernel<<<grid, 256, 0, st>>>(x.data<T>(), out, rows, L);
    } else {
      const int threads = L >= 8192 ? 1024 : 256;
      if (backward) {
        SoftmaxBackwardBlockKernel<<<RowBlocks(rows), threads, 0, st>>>(x.data<T>(), ctx.inputs[1].data<T>(), out,
                                                                        rows, L);
      } else {
        SoftmaxBlockKernel<<<RowBlocks(rows), threads, 0, st>>>(x.data<T>(), out, rows, L);
      }
    }
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

}  // namespace

CF_REGISTER_KERNEL("softmax", kCUDA, SoftmaxCuda);
CF_REGISTER_KERNEL("softmax_backward", kCUDA, SoftmaxCuda);

}  // namespace cf
