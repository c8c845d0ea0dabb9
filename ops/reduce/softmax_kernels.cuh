// Softmax and softmax_backward kernels over the last axis, written against
// runtime/kdev/kdev.h: launched by softmax.cu and run on the CPU interpreter
// by tests/ops/reduce_interp_test.cc, both with SoftmaxLaunchFor's geometry.
// Rows of up to 1024 elements get one warp each; longer rows one block each.
// The forward pass is "online": one read keeps a running maximum m and a sum
// s of exp(x - m) (rescaled when m grows), the lanes' (m, s) are combined,
// and a second read writes exp(x - M) / S.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "ops/reduce/block_reduce.cuh"
#include "runtime/kdev/kdev.h"

namespace cf {
namespace softmax_kernels {

constexpr int64_t kWarpRowMax = 1024;

// Adds v to the running (m, s). NaN propagates: a NaN v makes s NaN, and so
// the whole row NaN, as on the CPU (the lanes' maxima are combined with fmaxf,
// which drops NaN, so s must carry it).
KD_DEVICE void OnlineAdd(float v, float& m, float& s) {
  if (v > m) {
    s = s * expf(m - v) + 1.f;  // m = -inf, s = 0 the first time: 0 * 0 + 1
    m = v;
  } else if (m != -INFINITY) {
    s += expf(v - m);  // NaN in v (or already in m) gives NaN
  } else if (v != v) {
    m = v;  // a NaN first: v > -inf is false for it, so it must be kept here
    s = v;
  }
}
// This thread's s rescaled to the combined maximum M.
KD_DEVICE float Rescale(float m, float s, float M) { return m == -INFINITY ? 0.f : s * expf(m - M); }

// x, y: [rows, L] of T, L <= 1024; one warp per row.
template <typename T>
KD_GLOBAL void SoftmaxWarpKernel(kd::Ptr<const T> x, kd::Ptr<T> y, int64_t rows, int64_t L) {
  const int lane = kd::threadIdx.x & 31;
  const int64_t warps = int64_t(kd::gridDim.x) * (kd::blockDim.x >> 5);
  for (int64_t r = (kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x) >> 5; r < rows; r += warps) {
    const kd::Ptr<const T> xr = x + r * L;
    float m = -INFINITY, s = 0.f;
    for (int64_t i = lane; i < L; i += 32) OnlineAdd(kd::LoadF(xr, i), m, s);
    const float M = WarpMax(m);
    const float inv = 1.f / WarpSum(Rescale(m, s, M));
    const kd::Ptr<T> yr = y + r * L;
    for (int64_t i = lane; i < L; i += 32) kd::StoreF(yr, i, expf(kd::LoadF(xr, i) - M) * inv);
  }
}

// x, y: [rows, L] of T; one block per row.
template <typename T>
KD_GLOBAL void SoftmaxBlockKernel(kd::Ptr<const T> x, kd::Ptr<T> y, int64_t rows, int64_t L) {
  KD_SHARED(float, scratch, [32]);
  for (int64_t r = kd::blockIdx.x; r < rows; r += kd::gridDim.x) {
    const kd::Ptr<const T> xr = x + r * L;
    float m = -INFINITY, s = 0.f;
    for (int64_t i = kd::threadIdx.x; i < L; i += kd::blockDim.x) OnlineAdd(kd::LoadF(xr, i), m, s);
    const float M = BlockMax(m, scratch);
    const float inv = 1.f / BlockSum(Rescale(m, s, M), scratch);
    const kd::Ptr<T> yr = y + r * L;
    for (int64_t i = kd::threadIdx.x; i < L; i += kd::blockDim.x) kd::StoreF(yr, i, expf(kd::LoadF(xr, i) - M) * inv);
  }
}

// y, dy, dx: [rows, L] of T; dx = y * (dy - sum(y * dy)); one warp per row.
template <typename T>
KD_GLOBAL void SoftmaxBackwardWarpKernel(kd::Ptr<const T> y, kd::Ptr<const T> dy, kd::Ptr<T> dx, int64_t rows,
                                         int64_t L) {
  const int lane = kd::threadIdx.x & 31;
  const int64_t warps = int64_t(kd::gridDim.x) * (kd::blockDim.x >> 5);
  for (int64_t r = (kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x) >> 5; r < rows; r += warps) {
    const kd::Ptr<const T> yr = y + r * L, dyr = dy + r * L;
    float dot = 0.f;
    for (int64_t i = lane; i < L; i += 32) dot += kd::LoadF(yr, i) * kd::LoadF(dyr, i);
    dot = WarpSum(dot);
    const kd::Ptr<T> dxr = dx + r * L;
    for (int64_t i = lane; i < L; i += 32) kd::StoreF(dxr, i, kd::LoadF(yr, i) * (kd::LoadF(dyr, i) - dot));
  }
}

// The same with one block per row.
template <typename T>
KD_GLOBAL void SoftmaxBackwardBlockKernel(kd::Ptr<const T> y, kd::Ptr<const T> dy, kd::Ptr<T> dx, int64_t rows,
                                          int64_t L) {
  KD_SHARED(float, scratch, [32]);
  for (int64_t r = kd::blockIdx.x; r < rows; r += kd::gridDim.x) {
    const kd::Ptr<const T> yr = y + r * L, dyr = dy + r * L;
    float dot = 0.f;
    for (int64_t i = kd::threadIdx.x; i < L; i += kd::blockDim.x) dot += kd::LoadF(yr, i) * kd::LoadF(dyr, i);
    dot = BlockSum(dot, scratch);
    const kd::Ptr<T> dxr = dx + r * L;
    for (int64_t i = kd::threadIdx.x; i < L; i += kd::blockDim.x)
      kd::StoreF(dxr, i, kd::LoadF(yr, i) * (kd::LoadF(dyr, i) - dot));
  }
}

// ---- launch geometry (host) ----------------------------------------------------------------

// Blocks for `items` grid-stride items: at least 1, at most 65535·16.
inline unsigned RowBlocks(int64_t blocks) {
  return static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(blocks, 1), 65535LL * 16));
}

// One softmax (or backward) launch over [rows, L]: the warp kernels for
// L <= 1024 (8 warps per 256-thread block), else one block per row (1024
// threads from L = 8192). Empty (launch nothing) when there are no elements.
struct SoftmaxLaunch {
  bool warp_per_row = true;
  unsigned grid = 0, block = 256;
  bool empty() const { return grid == 0; }
};
inline SoftmaxLaunch SoftmaxLaunchFor(int64_t rows, int64_t L) {
  if (rows <= 0 || L <= 0) return SoftmaxLaunch{true, 0, 256};
  if (L <= kWarpRowMax) return SoftmaxLaunch{true, RowBlocks((rows + 7) / 8), 256};
  return SoftmaxLaunch{false, RowBlocks(rows), L >= 8192 ? 1024u : 256u};
}

}  // namespace softmax_kernels
}  // namespace cf
