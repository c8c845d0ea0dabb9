// CUDA kernels of add, sub, mul, div and broadcast_to (definitions in
// elementwise_binary.cc and broadcast_to.cc).
//
// v1: one grid-stride kernel decoding every element's broadcast index.
// v2 (this): operands that are not broadcast go through 16-byte vector loads
//     and stores (4 f32 or 8 f16/bf16 per thread); broadcast indexing uses
//     32-bit division when the output has < 2^31 elements and no division at
//     all for collapsed rank 1 (a scalar operand).
#include "ops/cuda_util.cuh"
#include "ops/elementwise/broadcast.h"
#include "ops/elementwise/broadcast_to.h"
#include "ops/elementwise/elementwise_cuda.cuh"
#include "ops/elementwise/elementwise_math.h"

namespace cf {
namespace {

using ew::BinaryKind;

template <BinaryKind K> struct BinaryF {
  __device__ float operator()(float x, float y) const { return ew::Binary<K>(x, y); }
};
struct TakeFirst {
  __device__ float operator()(float x, float) const { return x; }
};

// a, b, out: [n] of T (same shape, no broadcast); 16-byte packs, then the tail.
template <typename T, typename F>
__global__ void BinaryFlatKernel(const T* a, const T* b, T* out, int64_t n, F f) {
  ew::MapElementwise(out, n, true, f, a, b);
}

// out: [numel(plan)] of T; a and b indexed through the plan's strides
// (0 = broadcast). I is the index type (uint32_t when everything fits).
template <typename T, typename I, typename F>
__global__ void BinaryBroadcastKernel(const T* a, const T* b, T* out, BroadcastPlan p, I n, F f) {
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < n; i += I(gridDim.x) * blockDim.x) {
    I oa = 0, ob = 0;
    if (p.rank == 1) {
      oa = i * I(p.stride_a[0]);
      ob = i * I(p.stride_b[0]);
    } else {
      I rem = i;
      for (int d = p.rank - 1; d >= 0; --d) {
        const I dim = I(p.dims[d]);
        const I idx = rem % dim;
        rem /= dim;
        oa += idx * I(p.stride_a[d]);
        ob += idx * I(p.stride_b[d]);
      }
    }
    StoreF(out, i, f(LoadF(a, oa), LoadF(b, ob)));
  }
}

template <typename T, typename F>
void LaunchBroadcast(const T* a, const T* b, T* out, const BroadcastPlan& p, cudaStream_t s, F f) {
  const int64_t n = p.numel();
  if (p.flat() && ew::Aligned16(a) && ew::Aligned16(b) && ew::Aligned16(out)) {
    BinaryFlatKernel<<<GridFor(n / ew::kPack<T> + 1), 256, 0, s>>>(a, b, out, n, f);
  } else if (n < (int64_t{1} << 31)) {
    BinaryBroadcastKernel<T, uint32_t><<<GridFor(n), 256, 0, s>>>(a, b, out, p, uint32_t(n), f);
  } else {
    BinaryBroadcastKernel<T, int64_t><<<GridFor(n), 256, 0, s>>>(a, b, out, p, n, f);
  }
}

template <BinaryKind K>
Status BinaryCuda(KernelContext& ctx) {
  const Tensor &a = ctx.inputs[0], &b = ctx.inputs[1];
  Tensor& out = ctx.outputs[0];
  if (out.numel() == 0) return absl::OkStatus();
  const BroadcastPlan plan = PlanBroadcast(out.shape(), a.shape(), b.shape());
  return DispatchCudaFloat(out.dtype(), ctx.op, [&](auto tag) -> Status {
    using T = decltype(tag);
    LaunchBroadcast(a.data<T>(), b.data<T>(), out.data<T>(), plan, CudaStreamOf(ctx), BinaryF<K>{});
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

Status BroadcastToCuda(KernelContext& ctx) {
  const Tensor& x = ctx.inputs[0];
  Tensor& out = ctx.outputs[0];
  if (out.numel() == 0) return absl::OkStatus();
  CF_ASSIGN_OR_RETURN(Shape xs, BroadcastOperandShape(x.shape(), out.shape(), ctx.attrs.Ints("axes")));
  const BroadcastPlan plan = PlanBroadcast(out.shape(), xs, xs);
  return DispatchCudaFloat(out.dtype(), ctx.op, [&](auto tag) -> Status {
    using T = decltype(tag);
    LaunchBroadcast(x.data<T>(), x.data<T>(), out.data<T>(), plan, CudaStreamOf(ctx), TakeFirst{});
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

}  // namespace

CF_REGISTER_KERNEL("add", kCUDA, BinaryCuda<BinaryKind::kAdd>);
CF_REGISTER_KERNEL("sub", kCUDA, BinaryCuda<BinaryKind::kSub>);
CF_REGISTER_KERNEL("mul", kCUDA, BinaryCuda<BinaryKind::kMul>);
CF_REGISTER_KERNEL("div", kCUDA, BinaryCuda<BinaryKind::kDiv>);
CF_REGISTER_KERNEL("broadcast_to", kCUDA, BroadcastToCuda);

}  // namespace cf
