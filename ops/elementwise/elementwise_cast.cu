// CUDA kernel of cast (definition in elementwise_cast.cc) between f32, f16,
// bf16, i32 and i64; conversions as on the CPU (cast_math.h); the kernel is
// in elementwise_cuda.cuh.
#include <type_traits>

#include "ops/cuda_util.cuh"
#include "ops/elementwise/elementwise_cuda.cuh"

namespace cf {
namespace {

template <typename F>
Status DispatchCudaCast(DType t, F&& fn) {
  switch (t) {
    case DType::i32: return fn(int32_t{});
    case DType::i64: return fn(int64_t{});
    default: return DispatchCudaFloat(t, "cast", fn);
  }
}

Status CastCuda(KernelContext& ctx) {
  const Tensor& x = ctx.inputs[0];
  Tensor& out = ctx.outputs[0];
  const int64_t n = out.numel();
  if (n == 0) return absl::OkStatus();
  return DispatchCudaCast(x.dtype(), [&](auto from_tag) -> Status {
    using From = decltype(from_tag);
    return DispatchCudaCast(out.dtype(), [&](auto to_tag) -> Status {
      using To = decltype(to_tag);
      const GridStride g = ew::CastGeometry(n);
      ew::CastKernel<From, To><<<g.grid, g.block, 0, CudaStreamOf(ctx)>>>(x.data<From>(), out.data<To>(), n);
      CF_CUDA_CHECK_LAUNCH();
      return absl::OkStatus();
    });
  });
}

}  // namespace

CF_REGISTER_KERNEL("cast", kCUDA, CastCuda);

}  // namespace cf
