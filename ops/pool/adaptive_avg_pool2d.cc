// adaptive_avg_pool2d and its backward: definitions, costs, VJP and CPU
// kernels (CUDA kernels in adaptive_avg_pool2d.cu).
//
// adaptive_avg_pool2d: x [N, H, W, C] -> [N, oh, ow, C], attribute
// output_size [oh, ow] (or [s]). PyTorch's bins: output row i averages input
// rows [floor(i H / oh), ceil((i + 1) H / oh)), likewise for columns; bins
// may overlap, and oh > H is allowed (bins of one row repeat it).
// adaptive_avg_pool2d_backward: dy [N, oh, ow, C] -> dx [N, H, W, C] with
// attribute input_hw [H, W]; each input sums dy / bin size over the bins that
// contain it (a gather).
#include "ops/cpu_util.h"
#include "ops/pool/pool.h"
#include "ops/pool/pool_checks.h"
#include "ops/pool/pool_cpu.h"
#include "ops/pool/pool_internal.h"

namespace cf {
namespace {

using pool_internal::AdaptiveBinsOf;
using pool_internal::AdaptiveEnd;
using pool_internal::AdaptiveStart;
using pool_internal::AddPixel;
using pool_internal::GatherPixelsCpu;

StatusOr<std::vector<TensorType>> InferAdaptive(const OpCall& c) {
  CF_RETURN_IF_ERROR(pool_internal::CheckNhwc(c.inputs[0]));
  return pool_internal::ResampledTypes(c.inputs[0], c.attrs, "output_size");
}

// Sum of bin lengths along an axis (pairs of bin and input index in it).
int64_t BinTaps(int64_t in, int64_t out) {
  int64_t t = 0;
  for (int64_t i = 0; i < out; ++i) t += AdaptiveEnd(i, in, out) - AdaptiveStart(i, in, out);
  return t;
}

// Per (n, c): each bin of T inputs costs T - 1 adds and a divide:
// elementwise = N C taps_h taps_w (taps = sum of bin lengths; H W when the
// bins tile the input exactly, e.g. global pooling or H divisible by oh).
Cost AdaptiveCost(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  const Shape& x = c.inputs[0].shape;
  const Shape& y = outs[0].shape;
  cost.elementwise_flops = x[0] * x[3] * BinTaps(x[1], y[1]) * BinTaps(x[2], y[2]);
  return cost;
}

// Per (n, c): a divide per dy element, then every input (all are covered)
// sums its contributions: oh ow + taps_h taps_w - H W.
Cost AdaptiveBackwardCost(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  const Shape& dy = c.inputs[0].shape;
  const Shape& dx = outs[0].shape;
  cost.elementwise_flops =
      dy[0] * dy[3] * (dy[1] * dy[2] + BinTaps(dx[1], dy[1]) * BinTaps(dx[2], dy[2]) - dx[1] * dx[2]);
  return cost;
}

StatusOr<std::vector<Value>> AdaptiveVjp(VjpContext& ctx) {
  return pool_internal::BackwardWithInputHw(ctx, "adaptive_avg_pool2d_backward", {});
}

// ---- CPU kernels -----------------------------------------------------------------

// x: [N, H, W, C] -> y: [N, oh, ow, C].
template <typename T>
Status AdaptiveCpuT(KernelContext& ctx) {
  pool_internal::AdaptiveAvgPoolCpu(ctx.inputs[0].data<T>(), ctx.inputs[0].shape(), ctx.outputs[0].data<T>(),
                                    ctx.outputs[0].shape());
  return absl::OkStatus();
}

// dy: [N, oh, ow, C] -> dx: [N, H, W, C].
template <typename T>
Status AdaptiveBackwardCpuT(KernelContext& ctx) {
  using A = Acc<T>;
  const Shape& ds = ctx.inputs[0].shape();
  const Shape& xs = ctx.outputs[0].shape();
  const int64_t h = xs[1], w = xs[2], c = xs[3], oh = ds[1], ow = ds[2];
  const T* dy = ctx.inputs[0].data<T>();
  GatherPixelsCpu(ctx.outputs[0].data<T>(), xs, [&](int64_t n, int64_t iy, int64_t ix, A* acc) {
    int64_t oy0, oy1, ox0, ox1;
    AdaptiveBinsOf(iy, h, oh, &oy0, &oy1);
    AdaptiveBinsOf(ix, w, ow, &ox0, &ox1);
    for (int64_t oy = oy0; oy <= oy1; ++oy) {
      const int64_t bh = AdaptiveEnd(oy, h, oh) - AdaptiveStart(oy, h, oh);
      for (int64_t ox = ox0; ox <= ox1; ++ox) {
        const A count = A(bh * (AdaptiveEnd(ox, w, ow) - AdaptiveStart(ox, w, ow)));
        const T* p = dy + ((n * oh + oy) * ow + ox) * c;
        for (int64_t i = 0; i < c; ++i) acc[i] += Load(p, i) / count;
      }
    }
    return A(1);
  });
  return absl::OkStatus();
}

Status AdaptiveCpu(KernelContext& ctx) {
  return DispatchFloat(ctx.inputs[0].dtype(), "adaptive_avg_pool2d",
                       [&](auto tag) { return AdaptiveCpuT<decltype(tag)>(ctx); });
}
Status AdaptiveBackwardCpu(KernelContext& ctx) {
  return DispatchFloat(ctx.inputs[0].dtype(), "adaptive_avg_pool2d_backward",
                       [&](auto tag) { return AdaptiveBackwardCpuT<decltype(tag)>(ctx); });
}

OpDef AdaptiveDef() {
  return {.name = "adaptive_avg_pool2d", .min_inputs = 1, .max_inputs = 1, .infer = InferAdaptive, .cost = AdaptiveCost,
          .vjp = AdaptiveVjp, .doc = "adaptive average pooling of NHWC x to output_size (PyTorch bins)"};
}

OpDef AdaptiveBackwardDef() {
  return {.name = "adaptive_avg_pool2d_backward", .min_inputs = 1, .max_inputs = 1,
          .infer = pool_internal::InferResampledBackward, .cost = AdaptiveBackwardCost,
          .doc = "gradient of adaptive_avg_pool2d: dy -> dx of input_hw"};
}

}  // namespace

Value AdaptiveAvgPool2d(Value x, int64_t oh, int64_t ow) {
  if (!x.valid()) return {};
  return x.b->Op1("adaptive_avg_pool2d", {x}, Attrs{{"output_size", std::vector<int64_t>{oh, ow}}});
}

CF_REGISTER_OP(AdaptiveDef());
CF_REGISTER_OP(AdaptiveBackwardDef());
CF_REGISTER_KERNEL("adaptive_avg_pool2d", kCPU, AdaptiveCpu);
CF_REGISTER_KERNEL("adaptive_avg_pool2d_backward", kCPU, AdaptiveBackwardCpu);

}  // namespace cf
