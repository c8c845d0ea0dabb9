// CUDA kernels of geglu and geglu_backward (definitions in geglu.cc).
#include "ops/activation/activation_ops.h"
#include "ops/cuda_util.cuh"

namespace cf {
namespace {

using act::Kind;

// x: [rows, 2D] of T (h = x[:, :D], gate = x[:, D:]); out: [rows, D];
// out[r, i] = h[r, i] * gelu(gate[r, i]). One thread per output element.
template <typename T, Kind K>
__global__ void GegluKernel(const T* x, T* out, int64_t rows, int64_t D) {
  const int64_t n = rows * D;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < n; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = o / D, i = o - r * D;
    const T* h = x + r * 2 * D;
    StoreF(out, o, LoadF(h, i) * act::Forward<K>(LoadF(h, D + i), 0.f));
  }
}

// x: [rows, 2D]; dy: [rows, D]; dx: [rows, 2D] (may be x):
// dh = dy gelu(g), dg = dy h gelu'(g).
template <typename T, Kind K>
__global__ void GegluBackwardKernel(const T* x, const T* dy, T* dx, int64_t rows, int64_t D) {
  const int64_t n = rows * D;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < n; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = o / D, i = o - r * D;
    const int64_t hi = r * 2 * D + i, gi = hi + D;
    const float h = LoadF(x, hi), g = LoadF(x, gi), d = LoadF(dy, o);
    StoreF(dx, hi, d * act::Forward<K>(g, 0.f));
    StoreF(dx, gi, d * h * act::Derivative<K>(g, 0.f));
  }
}

Status GegluCuda(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(act::Selected sel, act::Select(ctx.op, ctx.attrs));
  const Tensor& x = ctx.inputs[0];
  const int64_t D = x.shape().dim(-1) / 2, rows = D ? x.numel() / (2 * D) : 0;
  if (rows * D == 0) return absl::OkStatus();
  const bool backward = ctx.inputs.size() == 2;
  // Only the two GELU forms occur here.
  auto launch = [&](auto kind) -> Status {
    using KT = decltype(kind);
    return DispatchCudaFloat(x.dtype(), ctx.op, [&](auto tag) -> Status {
      using T = decltype(tag);
      const unsigned grid = GridFor(rows * D);
      if (backward) {
        GegluBackwardKernel<T, KT::value><<<grid, 256, 0, CudaStreamOf(ctx)>>>(
            x.data<T>(), ctx.inputs[1].data<T>(), ctx.outputs[0].data<T>(), rows, D);
      } else {
        GegluKernel<T, KT::value><<<grid, 256, 0, CudaStreamOf(ctx)>>>(x.data<T>(), ctx.outputs[0].data<T>(), rows, D);
      }
      CF_CUDA_CHECK_LAUNCH();
      return absl::OkStatus();
    });
  };
  if (sel.kind == Kind::kGeluTanh) return launch(std::integral_constant<Kind, Kind::kGeluTanh>{});
  return launch(std::integral_constant<Kind, Kind::kGeluErf>{});
}

}  // namespace

CF_REGISTER_KERNEL("geglu", kCUDA, GegluCuda);
CF_REGISTER_KERNEL("geglu_backward", kCUDA, GegluCuda);

}  // namespace cf
