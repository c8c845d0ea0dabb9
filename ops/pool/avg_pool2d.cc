// avg_pool2d and avg_pool2d_backward: definitions, costs, VJP and CPU kernels
// (CUDA kernels in avg_pool2d.cu).
//
// avg_pool2d: x [N, H, W, C] -> [N, oh, ow, C], oh = (H + 2 ph - kh) / sh + 1.
// Attributes: kernel [kh, kw] (required), stride (default: the kernel),
// padding (default 0). PyTorch's defaults: count_include_pad = true (every
// window divides by kh * kw, padding zeros included) and ceil_mode = false;
// the attributes ceil_mode / count_include_pad are accepted only with those
// values. As in PyTorch, a padding may be at most half its kernel.
// avg_pool2d_backward: dy [N, oh, ow, C] -> dx [N, H, W, C]; the same
// attributes plus input_hw [H, W]. dx at an input is the sum of dy / (kh kw)
// over the windows that contain it (a gather, so no two threads write one
// element).
#include <utility>

#include "ops/cpu_util.h"
#include "ops/pool/pool.h"
#include "ops/pool/pool_checks.h"
#include "ops/pool/pool_cpu.h"
#include "ops/pool/pool_internal.h"

namespace cf {
namespace {

using pool_internal::AddPixel;
using pool_internal::AvgPoolSources;
using pool_internal::GatherPixelsCpu;
using pool_internal::PoolGeom;
using pool_internal::PoolOutLen;
using pool_internal::PoolWindow;
using pool_internal::PoolWindowsOf;

// Output [N, oh, ow, C] of pooling an input of h x w; an error when the kernel does not fit.
StatusOr<Shape> PooledShape(int64_t n, int64_t h, int64_t w, int64_t c, const PoolGeom& g) {
  const int64_t oh = PoolOutLen(h, g.kh, g.sh, g.ph), ow = PoolOutLen(w, g.kw, g.sw, g.pw);
  CF_CHECK_ARG(oh >= 1 && ow >= 1, "kernel ", g.kh, "x", g.kw, " with padding ", g.ph, "x", g.pw,
               " does not fit the input ", h, "x", w);
  return Shape({n, oh, ow, c});
}

StatusOr<std::vector<TensorType>> InferAvgPool(const OpCall& c) {
  const TensorType& x = c.inputs[0];
  CF_RETURN_IF_ERROR(pool_internal::CheckNhwc(x));
  CF_ASSIGN_OR_RETURN(PoolGeom g, pool_internal::ParsePoolGeom(c.attrs));
  CF_ASSIGN_OR_RETURN(Shape out, PooledShape(x.shape[0], x.shape[1], x.shape[2], x.shape[3], g));
  return std::vector<TensorType>{{out, x.dtype}};
}

StatusOr<std::vector<TensorType>> InferAvgPoolBackward(const OpCall& c) {
  const TensorType& dy = c.inputs[0];
  CF_RETURN_IF_ERROR(pool_internal::CheckNhwc(dy, "dy"));
  CF_ASSIGN_OR_RETURN(PoolGeom g, pool_internal::ParsePoolGeom(c.attrs));
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> hw, pool_internal::InputHwAttr(c.attrs));
  CF_ASSIGN_OR_RETURN(Shape want, PooledShape(dy.shape[0], hw[0], hw[1], dy.shape[3], g));
  CF_CHECK_ARG(want == dy.shape, "dy ", dy.shape.ToString(), " is not the pooled shape ", want.ToString(),
               " of an input ", hw[0], "x", hw[1]);
  return std::vector<TensorType>{{Shape({dy.shape[0], hw[0], hw[1], dy.shape[3]}), dy.dtype}};
}

// Per axis: taps = sum over windows of their in-bounds length (= pairs of
// window and input index it covers); touched = input indices in some window.
struct AxisCount {
  int64_t taps = 0, touched = 0;
};
AxisCount CountAxis(int64_t in, int64_t k, int64_t s, int64_t p) {
  AxisCount a;
  const int64_t out = PoolOutLen(in, k, s, p);
  int64_t lo, hi;
  for (int64_t o = 0; o < out; ++o) {
    PoolWindow(o, k, s, p, in, &lo, &hi);
    a.taps += hi - lo;
  }
  for (int64_t i = 0; i < in; ++i) {
    PoolWindowsOf(i, k, s, p, out, &lo, &hi);
    a.touched += lo <= hi ? 1 : 0;
  }
  return a;
}

// Counts of the H and W axes of an input [N, H, W, C] under the op's geometry.
StatusOr<std::pair<AxisCount, AxisCount>> CountAxes(const Attrs& attrs, const Shape& x) {
  CF_ASSIGN_OR_RETURN(PoolGeom g, pool_internal::ParsePoolGeom(attrs));
  return std::make_pair(CountAxis(x[1], g.kh, g.sh, g.ph), CountAxis(x[2], g.kw, g.sw, g.pw));
}

// Per (n, c): each window sums its T in-bounds taps (T - 1 adds) and divides
// once, so elementwise = N C taps_h taps_w (= N C oh ow kh kw without padding).
Cost AvgPoolCost(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  const Shape& x = c.inputs[0].shape;
  auto hw = CountAxes(c.attrs, x);
  if (!hw.ok()) return cost;
  cost.elementwise_flops = x[0] * x[3] * hw->first.taps * hw->second.taps;
  return cost;
}

// Per (n, c): one divide per dy element (oh ow), and each input sums its
// contributions: taps_h taps_w - touched_h touched_w adds.
Cost AvgPoolBackwardCost(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  const Shape& dy = c.inputs[0].shape;
  auto hw = CountAxes(c.attrs, outs[0].shape);
  if (!hw.ok()) return cost;
  const auto& [h, w] = *hw;
  cost.elementwise_flops = dy[0] * dy[3] * (dy[1] * dy[2] + h.taps * w.taps - h.touched * w.touched);
  return cost;
}

StatusOr<std::vector<Value>> AvgPoolVjp(VjpContext& ctx) {
  return pool_internal::BackwardWithInputHw(ctx, "avg_pool2d_backward", ctx.attrs);
}

// ---- CPU kernels -----------------------------------------------------------------

// Forward, x: [N, H, W, C] -> y: [N, oh, ow, C]; backward, dy: [N, oh, ow, C]
// -> dx: [N, H, W, C]. Each destination pixel sums its sources
// (AvgPoolSources) and divides by kh * kw.
template <typename T, bool kBackward>
Status AvgPoolCpuT(KernelContext& ctx, const PoolGeom& g) {
  const Shape& ss = ctx.inputs[0].shape();  // the source's [N, rows, cols, C]
  const int64_t rows = ss[1], cols = ss[2], c = ss[3];
  const T* src = ctx.inputs[0].data<T>();
  GatherPixelsCpu(ctx.outputs[0].data<T>(), ctx.outputs[0].shape(), [&](int64_t n, int64_t r, int64_t q, Acc<T>* acc) {
    int64_t r0, r1, q0, q1;
    AvgPoolSources<kBackward>(r, g.kh, g.sh, g.ph, rows, &r0, &r1);
    AvgPoolSources<kBackward>(q, g.kw, g.sw, g.pw, cols, &q0, &q1);
    for (int64_t i = r0; i < r1; ++i)
      for (int64_t j = q0; j < q1; ++j) AddPixel(acc, src + ((n * rows + i) * cols + j) * c, c);
    return Acc<T>(g.kh * g.kw);
  });
  return absl::OkStatus();
}

template <bool kBackward>
Status AvgPoolCpu(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(PoolGeom g, pool_internal::ParsePoolGeom(ctx.attrs));
  return DispatchFloat(ctx.inputs[0].dtype(), ctx.op,
                       [&](auto tag) { return AvgPoolCpuT<decltype(tag), kBackward>(ctx, g); });
}

OpDef AvgPoolDef() {
  return {.name = "avg_pool2d", .min_inputs = 1, .max_inputs = 1, .infer = InferAvgPool, .cost = AvgPoolCost,
          .vjp = AvgPoolVjp,
          .doc = "average pooling of NHWC x (PyTorch avg_pool2d, count_include_pad=true, ceil_mode=false)"};
}

OpDef AvgPoolBackwardDef() {
  return {.name = "avg_pool2d_backward", .min_inputs = 1, .max_inputs = 1, .infer = InferAvgPoolBackward,
          .cost = AvgPoolBackwardCost, .doc = "gradient of avg_pool2d: dy -> dx of input_hw"};
}

}  // namespace

Value AvgPool2d(Value x, Size2 kernel, const AvgPool2dOptions& o) {
  if (x.b == nullptr) return {};
  Attrs a{{"kernel", std::vector<int64_t>{kernel.h, kernel.w}},
          {"padding", std::vector<int64_t>{o.padding.h, o.padding.w}}};
  if (o.stride) a.Set("stride", std::vector<int64_t>{o.stride->h, o.stride->w});
  return x.b->Op1("avg_pool2d", {x}, a);
}

CF_REGISTER_OP(AvgPoolDef());
CF_REGISTER_OP(AvgPoolBackwardDef());
CF_REGISTER_KERNEL("avg_pool2d", kCPU, AvgPoolCpu<false>);
CF_REGISTER_KERNEL("avg_pool2d_backward", kCPU, AvgPoolCpu<true>);

}  // namespace cf
