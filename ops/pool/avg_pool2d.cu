// CUDA kernels of avg_pool2d and avg_pool2d_backward (definitions in
// avg_pool2d.cc). One thread per output (forward) or input (backward, a
// gather) element, channels fastest so warps read contiguous channels.
#include "ops/cuda_util.cuh"
#include "ops/pool/pool_checks.h"

namespace cf {
namespace {

using pool_internal::PoolGeom;

// x: [N, H, W, C] -> y: [N, OH, OW, C]; total = N * OH * OW * C.
template <typename T>
__global__ void AvgPoolKernel(const T* __restrict__ x, T* __restrict__ y, int64_t total, int64_t H, int64_t W,
                              int64_t C, int64_t OH, int64_t OW, PoolGeom g) {
  const float div = static_cast<float>(g.kh * g.kw);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % C, t = i / C, ox = t % OW, oy = (t / OW) % OH, n = t / (OW * OH);
    const int64_t hs = oy * g.sh - g.ph, ws = ox * g.sw - g.pw;
    const int64_t y0 = hs > 0 ? hs : 0, y1 = hs + g.kh < H ? hs + g.kh : H;
    const int64_t x0 = ws > 0 ? ws : 0, x1 = ws + g.kw < W ? ws + g.kw : W;
    float acc = 0.f;
    for (int64_t iy = y0; iy < y1; ++iy)
      for (int64_t ix = x0; ix < x1; ++ix) acc += LoadF(x, ((n * H + iy) * W + ix) * C + c);
    StoreF(y, i, acc / div);
  }
}

// dy: [N, OH, OW, C] -> dx: [N, H, W, C]; total = N * H * W * C.
template <typename T>
__global__ void AvgPoolBackwardKernel(const T* __restrict__ dy, T* __restrict__ dx, int64_t total, int64_t H,
                                      int64_t W, int64_t C, int64_t OH, int64_t OW, PoolGeom g) {
  const float div = static_cast<float>(g.kh * g.kw);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % C, t = i / C, ix = t % W, iy = (t / W) % H, n = t / (W * H);
    int64_t oy0, oy1, ox0, ox1;
    pool_internal::PoolWindowsOf(iy, g.kh, g.sh, g.ph, OH, &oy0, &oy1);
    pool_internal::PoolWindowsOf(ix, g.kw, g.sw, g.pw, OW, &ox0, &ox1);
    float acc = 0.f;
    for (int64_t oy = oy0; oy <= oy1; ++oy)
      for (int64_t ox = ox0; ox <= ox1; ++ox) acc += LoadF(dy, ((n * OH + oy) * OW + ox) * C + c);
    StoreF(dx, i, acc / div);
  }
}

Status AvgPoolCuda(KernelContext& ctx) {
  const Shape& xs = ctx.inputs[0].shape();
  const Shape& ys = ctx.outputs[0].shape();
  const int64_t total = ys.numel();
  if (total == 0) return absl::OkStatus();
  CF_ASSIGN_OR_RETURN(const PoolGeom g, pool_internal::ParsePoolGeom(ctx.attrs));
  return DispatchCudaFloat(ctx.inputs[0].dtype(), "avg_pool2d", [&](auto tag) -> Status {
    using T = decltype(tag);
    AvgPoolKernel<T><<<GridFor(total), 256, 0, CudaStreamOf(ctx)>>>(ctx.inputs[0].data<T>(), ctx.outputs[0].data<T>(),
                                                                    total, xs[1], xs[2], xs[3], ys[1], ys[2], g);
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

Status AvgPoolBackwardCuda(KernelContext& ctx) {
  const Shape& ds = ctx.inputs[0].shape();
  const Shape& xs = ctx.outputs[0].shape();
  const int64_t total = xs.numel();
  if (total == 0) return absl::OkStatus();
  CF_ASSIGN_OR_RETURN(const PoolGeom g, pool_internal::ParsePoolGeom(ctx.attrs));
  return DispatchCudaFloat(ctx.inputs[0].dtype(), "avg_pool2d_backward", [&](auto tag) -> Status {
    using T = decltype(tag);
    AvgPoolBackwardKernel<T><<<GridFor(total), 256, 0, CudaStreamOf(ctx)>>>(
        ctx.inputs[0].data<T>(), ctx.outputs[0].data<T>(), total, xs[1], xs[2], xs[3], ds[1], ds[2], g);
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

}  // namespace

CF_REGISTER_KERNEL("avg_pool2d", kCUDA, AvgPoolCuda);
CF_REGISTER_KERNEL("avg_pool2d_backward", kCUDA, AvgPoolBackwardCuda);

}  // namespace cf
