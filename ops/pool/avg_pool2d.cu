// CUDA kernels of avg_pool2d and avg_pool2d_backward (definitions in
// avg_pool2d.cc). One thread per output (forward) or input (backward, a
// gather) element, channels fastest so warps read contiguous channels.
#include "ops/pool/pool_checks.h"
#include "ops/pool/pool_cuda.cuh"

namespace cf {
namespace {

using pool_internal::PoolGeom;

// Forward, src = x: [N, H, W, C] -> dst = y: [N, OH, OW, C]; backward,
// src = dy: [N, OH, OW, C] -> dst = dx: [N, H, W, C] (a gather over the
// windows containing each input). total = numel(dst).
template <typename T, bool kBackward>
__global__ void AvgPoolKernel(const T* __restrict__ src, T* __restrict__ dst, int64_t total, int64_t H, int64_t W,
                              int64_t C, int64_t OH, int64_t OW, PoolGeom g) {
  const float div = static_cast<float>(g.kh * g.kw);
  const int64_t SH = kBackward ? OH : H, SW = kBackward ? OW : W;  // src's spatial size
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const pool_internal::NhwcIndex d = pool_internal::NhwcOf(i, kBackward ? H : OH, kBackward ? W : OW, C);
    int64_t r0, r1, q0, q1;
    pool_internal::AvgPoolSources<kBackward>(d.y, g.kh, g.sh, g.ph, SH, &r0, &r1);
    pool_internal::AvgPoolSources<kBackward>(d.x, g.kw, g.sw, g.pw, SW, &q0, &q1);
    float acc = 0.f;
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t q = q0; q < q1; ++q) acc += LoadF(src, ((d.n * SH + r) * SW + q) * C + d.c);
    StoreF(dst, i, acc / div);
  }
}

template <bool kBackward>
Status AvgPoolCuda(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(const PoolGeom g, pool_internal::ParsePoolGeom(ctx.attrs));
  return pool_internal::LaunchPoolKernel(ctx, kBackward,
                                         [](auto tag) { return AvgPoolKernel<decltype(tag), kBackward>; }, g);
}

}  // namespace

CF_REGISTER_KERNEL("avg_pool2d", kCUDA, AvgPoolCuda<false>);
CF_REGISTER_KERNEL("avg_pool2d_backward", kCUDA, AvgPoolCuda<true>);

}  // namespace cf
