// CUDA kernel of cast (definition in elementwise_cast.cc) between f32, f16,
// bf16, i32 and i64; conversions as on the CPU (cast_math.h).
#include <type_traits>

#include "ops/cuda_util.cuh"
#include "ops/elementwise/cast_math.h"

namespace cf {
namespace {

template <typename T> __device__ __forceinline__ float ToF(T v) {
  if constexpr (std::is_same_v<T, __half>) return __half2float(v);
  else if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat162float(v);
  else return v;
}

// in: [n] of From; out: [n] of To.
template <typename From, typename To>
__global__ void CastKernel(const From* in, To* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    constexpr bool kFromInt = std::is_integral_v<From>, kToInt = std::is_integral_v<To>;
    if constexpr (kFromInt && kToInt) out[i] = ew::IntToInt<To>(in[i]);
    else if constexpr (kFromInt) StoreF(out, i, static_cast<float>(in[i]));
    else if constexpr (kToInt) out[i] = ew::FloatToInt<To>(ToF(in[i]));
    else StoreF(out, i, ToF(in[i]));
  }
}

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
      CastKernel<From, To><<<GridFor(n), 256, 0, CudaStreamOf(ctx)>>>(x.data<From>(), out.data<To>(), n);
      CF_CUDA_CHECK_LAUNCH();
      return absl::OkStatus();
    });
  });
}

}  // namespace

CF_REGISTER_KERNEL("cast", kCUDA, CastCuda);

}  // namespace cf
