// CUDA kernels of adaln_modulate and adaln_modulate_backward (definitions in
// adaln_modulate.cc). x: [B, T, C]; shift, scale: [B, C] (or [B, 1, C]).
#include <algorithm>

#include "ops/norm/norm_cuda.cuh"

namespace cf {
namespace {

using norm_cuda::Load4;
using norm_cuda::Store4;

// y = x * (1 + scale[b]) + shift[b]; total = B*T*C / kVec, TC = T * C.
// kVec = 4 needs C % 4 == 0 and aligned pointers. y may be x (in place), so
// x and y are not __restrict__.
template <typename T, int kVec>
__global__ void AdaLnKernel(const T* x, const T* __restrict__ shift, const T* __restrict__ scale, T* y, int64_t total,
                            int64_t TC, int C) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t e = i * kVec;
    const int64_t bc = (e / TC) * C + e % C;  // index of (b, c0) in shift / scale
    float v[kVec];
    if constexpr (kVec == 4) {
      float sh[4], sc[4];
      Load4(x + e, v);
      Load4(shift + bc, sh);
      Load4(scale + bc, sc);
#pragma unroll
      for (int j = 0; j < 4; ++j) v[j] = fmaf(v[j], 1.f + sc[j], sh[j]);
      Store4(y + e, v);
    } else {
      StoreF(y, e, fmaf(LoadF(x, e), 1.f + LoadF(scale, bc), LoadF(shift, bc)));
    }
  }
}

// x, dy, dx: [B, T, C]; scale: [B, C]. Writes dx = dy * (1 + scale) and the
// partial sums over a chunk of `rows` tokens: part_shift = sum dy,
// part_scale = sum dy * x, [B, chunks, C].
// Grid (ceil(C / 32), chunks, B), block (32, 8): the 8 thread-rows split the tokens.
template <typename T>
__global__ void AdaLnBwdPartialKernel(const T* __restrict__ x, const T* __restrict__ scale, const T* __restrict__ dy,
                                      T* __restrict__ dx, int64_t Tn, int C, int64_t rows,
                                      float* __restrict__ part_shift, float* __restrict__ part_scale) {
  const int c = blockIdx.x * 32 + threadIdx.x;
  const int64_t chunk = blockIdx.y, chunks = gridDim.y, b = blockIdx.z;
  const int64_t r0 = chunk * rows, r1 = r0 + rows < Tn ? r0 + rows : Tn;
  float a = 0.f, s = 0.f;
  if (c < C) {
    const float s1 = 1.f + LoadF(scale, b * C + c);
#pragma unroll 4
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) {
      const int64_t e = (b * Tn + r) * C + c;
      const float g = LoadF(dy, e);
      StoreF(dx, e, g * s1);
      a += g;
      s = fmaf(g, LoadF(x, e), s);
    }
  }
  norm_cuda::SumThreadRows(a, s);
  if (threadIdx.y == 0 && c < C) {
    part_shift[(b * chunks + chunk) * C + c] = a;
    part_scale[(b * chunks + chunk) * C + c] = s;
  }
}

template <typename T>
Status AdaLnCudaT(KernelContext& ctx) {
  const Shape& s = ctx.inputs[0].shape();
  const int64_t numel = s.numel(), c = s[2];
  if (numel == 0) return absl::OkStatus();
  const T* x = ctx.inputs[0].data<T>();
  const T* shift = ctx.inputs[1].data<T>();
  const T* scale = ctx.inputs[2].data<T>();
  T* y = ctx.outputs[0].data<T>();
  cudaStream_t stream = CudaStreamOf(ctx);
  const int ci = static_cast<int>(c);
  if (c % 4 == 0 && norm_cuda::Aligned4<T>({x, shift, scale, y})) {
    AdaLnKernel<T, 4><<<GridFor(numel / 4), 256, 0, stream>>>(x, shift, scale, y, numel / 4, s[1] * c, ci);
  } else {
    AdaLnKernel<T, 1><<<GridFor(numel), 256, 0, stream>>>(x, shift, scale, y, numel, s[1] * c, ci);
  }
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

template <typename T>
Status AdaLnBackwardCudaT(KernelContext& ctx) {
  const Shape& s = ctx.inputs[0].shape();
  const int64_t bn = s[0], tn = s[1], c = s[2];
  cudaStream_t stream = CudaStreamOf(ctx);
  if (s.numel() == 0) return norm_cuda::ZeroOutputs(ctx, 1);  // no tokens: dshift = dscale = 0
  CF_CHECK_ARG(bn <= 65535, "adaln_modulate_backward: batch ", bn, " exceeds the CUDA grid limit 65535");
  // Chunks of tokens: about four blocks per SM in all, >= 32 tokens each.
  const int64_t col_blocks = (c + 31) / 32;
  const int64_t want_chunks = std::max<int64_t>(1, 4 * NumSms() / (col_blocks * bn));
  const int64_t rows = std::max<int64_t>(32, (tn + want_chunks - 1) / want_chunks);
  const int64_t chunks = (tn + rows - 1) / rows;
  CF_CHECK_ARG(chunks <= 65535, "adaln_modulate_backward: T = ", tn, " exceeds the CUDA grid limit");
  const int64_t n_part = bn * chunks * c;
  CF_ASSIGN_OR_RETURN(void* ws,
                      norm_cuda::Workspace(ctx, "adaln_modulate_backward", norm_cuda::Carver::Bytes({n_part, n_part})));
  norm_cuda::Carver carve(ws);
  float* part_shift = carve.Take(n_part);
  float* part_scale = carve.Take(n_part);
  const int ci = static_cast<int>(c);
  AdaLnBwdPartialKernel<T>
      <<<dim3(static_cast<unsigned>(col_blocks), static_cast<unsigned>(chunks), static_cast<unsigned>(bn)),
         dim3(32, 8), 0, stream>>>(ctx.inputs[0].data<T>(), ctx.inputs[1].data<T>(), ctx.inputs[2].data<T>(),
                                   ctx.outputs[0].data<T>(), tn, ci, rows, part_shift, part_scale);
  CF_CUDA_CHECK_LAUNCH();
  return norm_cuda::LaunchSumChunks(part_shift, part_scale, bn, chunks, ci, ctx.outputs[1].data<T>(),
                                   ctx.outputs[2].data<T>(), stream);
}

Status AdaLnCuda(KernelContext& ctx) {
  return DispatchCudaFloat(ctx.inputs[0].dtype(), "adaln_modulate",
                           [&](auto tag) { return AdaLnCudaT<decltype(tag)>(ctx); });
}
Status AdaLnBackwardCuda(KernelContext& ctx) {
  return DispatchCudaFloat(ctx.inputs[0].dtype(), "adaln_modulate_backward",
                           [&](auto tag) { return AdaLnBackwardCudaT<decltype(tag)>(ctx); });
}

}  // namespace

CF_REGISTER_KERNEL("adaln_modulate", kCUDA, AdaLnCuda);
CF_REGISTER_KERNEL("adaln_modulate_backward", kCUDA, AdaLnBackwardCuda);

}  // namespace cf
