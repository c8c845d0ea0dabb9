// upsample_nearest2x and its backward: definitions, costs, VJP and CPU kernels
// (CUDA kernels in upsample_nearest2x.cu).
//
// upsample_nearest2x: x [N, H, W, C] -> y [N, 2H, 2W, C],
// y[n, 2i + a, 2j + b] = x[n, i, j] (diffusers Upsample2D: interpolate with
// scale_factor 2, mode "nearest").
// upsample_nearest2x_backward: dy [N, 2H, 2W, C] -> dx [N, H, W, C], the sum
// of each 2x2 block.
#include "ops/cpu_util.h"
#include "ops/pool/pool.h"
#include "ops/pool/pool_checks.h"

namespace cf {
namespace {

StatusOr<std::vector<TensorType>> InferUpsample(const OpCall& c) {
  const TensorType& x = c.inputs[0];
  CF_RETURN_IF_ERROR(pool_internal::CheckNhwc(x));
  return std::vector<TensorType>{{Shape({x.shape[0], 2 * x.shape[1], 2 * x.shape[2], x.shape[3]}), x.dtype}};
}

StatusOr<std::vector<TensorType>> InferUpsampleBackward(const OpCall& c) {
  const TensorType& dy = c.inputs[0];
  CF_RETURN_IF_ERROR(pool_internal::CheckNhwc(dy, "dy"));
  CF_CHECK_ARG(dy.shape[1] % 2 == 0 && dy.shape[2] % 2 == 0, "dy spatial size must be even, got ",
               dy.shape.ToString());
  return std::vector<TensorType>{{Shape({dy.shape[0], dy.shape[1] / 2, dy.shape[2] / 2, dy.shape[3]}), dy.dtype}};
}

// Forward: a copy (0 FLOPs). Backward: 3 adds per dx element.
Cost UpsampleBackwardCost(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  cost.elementwise_flops = 3 * outs[0].shape.numel();
  return cost;
}

StatusOr<std::vector<Value>> UpsampleVjp(VjpContext& ctx) {
  return std::vector<Value>{ctx.b.Op1("upsample_nearest2x_backward", {ctx.grad_outputs[0]})};
}

// ---- CPU kernels -----------------------------------------------------------------

// x: [N, H, W, C] -> y: [N, 2H, 2W, C]; tasks of whole output rows.
template <typename T>
Status UpsampleCpuT(KernelContext& ctx) {
  const Shape& xs = ctx.inputs[0].shape();
  const int64_t h = xs[1], w = xs[2], c = xs[3];
  const T* x = ctx.inputs[0].data<T>();
  T* y = ctx.outputs[0].data<T>();
  ParallelFor(0, xs[0] * 2 * h, RowGrain(2 * w * c), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / (2 * h), iy = (row % (2 * h)) / 2;
      const T* src = x + (n * h + iy) * w * c;
      T* dst = y + row * 2 * w * c;
      for (int64_t ix = 0; ix < w; ++ix) {
        std::copy_n(src + ix * c, c, dst + 2 * ix * c);
        std::copy_n(src + ix * c, c, dst + (2 * ix + 1) * c);
      }
    }
  });
  return absl::OkStatus();
}

// dy: [N, 2H, 2W, C] -> dx: [N, H, W, C].
template <typename T>
Status UpsampleBackwardCpuT(KernelContext& ctx) {
  const Shape& xs = ctx.outputs[0].shape();
  const int64_t h = xs[1], w = xs[2], c = xs[3];
  const T* dy = ctx.inputs[0].data<T>();
  T* dx = ctx.outputs[0].data<T>();
  ParallelFor(0, xs[0] * h, RowGrain(4 * w * c), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / h, iy = row % h;
      const T* r0 = dy + (n * 2 * h + 2 * iy) * 2 * w * c;
      const T* r1 = r0 + 2 * w * c;
      T* q = dx + row * w * c;
      for (int64_t ix = 0; ix < w; ++ix) {
        const int64_t a = 2 * ix * c, b = a + c;
        for (int64_t i = 0; i < c; ++i)
          Store(q + ix * c, i, Load(r0, a + i) + Load(r0, b + i) + Load(r1, a + i) + Load(r1, b + i));
      }
    }
  });
  return absl::OkStatus();
}

Status UpsampleCpu(KernelContext& ctx) {
  return DispatchFloat(ctx.inputs[0].dtype(), "upsample_nearest2x",
                       [&](auto tag) { return UpsampleCpuT<decltype(tag)>(ctx); });
}
Status UpsampleBackwardCpu(KernelContext& ctx) {
  return DispatchFloat(ctx.inputs[0].dtype(), "upsample_nearest2x_backward",
                       [&](auto tag) { return UpsampleBackwardCpuT<decltype(tag)>(ctx); });
}

OpDef UpsampleDef() {
  return {.name = "upsample_nearest2x", .min_inputs = 1, .max_inputs = 1, .infer = InferUpsample, .vjp = UpsampleVjp,
          .doc = "nearest-neighbour 2x upsampling of NHWC x (each pixel repeated 2x2)"};
}

OpDef UpsampleBackwardDef() {
  return {.name = "upsample_nearest2x_backward", .min_inputs = 1, .max_inputs = 1, .infer = InferUpsampleBackward,
          .cost = UpsampleBackwardCost, .doc = "gradient of upsample_nearest2x: the sum of each 2x2 block of dy"};
}

}  // namespace

Value UpsampleNearest2x(Value x) {
  if (!x.valid()) return {};
  return x.b->Op1("upsample_nearest2x", {x});
}

CF_REGISTER_OP(UpsampleDef());
CF_REGISTER_OP(UpsampleBackwardDef());
CF_REGISTER_KERNEL("upsample_nearest2x", kCPU, UpsampleCpu);
CF_REGISTER_KERNEL("upsample_nearest2x_backward", kCPU, UpsampleBackwardCpu);

}  // namespace cf
