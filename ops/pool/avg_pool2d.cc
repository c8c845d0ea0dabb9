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
#include "ops/cpu_util.h"
#include "ops/pool/pool.h"
#include "ops/pool/pool_checks.h"
#include "ops/pool/pool_internal.h"

namespace cf {
namespace {

using pool_internal::PoolGeom;
using pool_internal::PoolOutLen;
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

StatusOr<std::vector<int64_t>> InputHw(const Attrs& a) {
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> hw, a.RequireInts("input_hw"));
  CF_CHECK_ARG(hw.size() == 2 && hw[0] >= 1 && hw[1] >= 1, "input_hw must be [H, W] >= 1");
  return hw;
}

StatusOr<std::vector<TensorType>> InferAvgPoolBackward(const OpCall& c) {
  const TensorType& dy = c.inputs[0];
  CF_RETURN_IF_ERROR(pool_internal::CheckNhwc(dy, "dy"));
  CF_ASSIGN_OR_RETURN(PoolGeom g, pool_internal::ParsePoolGeom(c.attrs));
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> hw, InputHw(c.attrs));
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
  for (int64_t o = 0; o < out; ++o) a.taps += std::min(in, o * s - p + k) - std::max<int64_t>(0, o * s - p);
  for (int64_t i = 0; i < in; ++i) {
    int64_t lo, hi;
    PoolWindowsOf(i, k, s, p, out, &lo, &hi);
    a.touched += lo <= hi ? 1 : 0;
  }
  return a;
}

// Per (n, c): each window sums its T in-bounds taps (T - 1 adds) and divides
// once, so elementwise = N C taps_h taps_w (= N C oh ow kh kw without padding).
Cost AvgPoolCost(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  auto g = pool_internal::ParsePoolGeom(c.attrs);
  if (!g.ok()) return cost;
  const Shape& x = c.inputs[0].shape;
  const AxisCount h = CountAxis(x[1], g->kh, g->sh, g->ph), w = CountAxis(x[2], g->kw, g->sw, g->pw);
  cost.elementwise_flops = x[0] * x[3] * h.taps * w.taps;
  return cost;
}

// Per (n, c): one divide per dy element (oh ow), and each input sums its
// contributions: taps_h taps_w - touched_h touched_w adds.
Cost AvgPoolBackwardCost(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  auto g = pool_internal::ParsePoolGeom(c.attrs);
  if (!g.ok()) return cost;
  const Shape& dy = c.inputs[0].shape;
  const Shape& dx = outs[0].shape;
  const AxisCount h = CountAxis(dx[1], g->kh, g->sh, g->ph), w = CountAxis(dx[2], g->kw, g->sw, g->pw);
  cost.elementwise_flops = dy[0] * dy[3] * (dy[1] * dy[2] + h.taps * w.taps - h.touched * w.touched);
  return cost;
}

StatusOr<std::vector<Value>> AvgPoolVjp(VjpContext& ctx) {
  Attrs a = ctx.attrs;
  const Shape& x = ctx.inputs[0].shape();
  a.Set("input_hw", std::vector<int64_t>{x[1], x[2]});
  return std::vector<Value>{ctx.b.Op1("avg_pool2d_backward", {ctx.grad_outputs[0]}, a)};
}

// ---- CPU kernels -----------------------------------------------------------------

// x: [N, H, W, C] -> y: [N, oh, ow, C].
template <typename T>
Status AvgPoolCpuT(KernelContext& ctx, const PoolGeom& g) {
  using A = Acc<T>;
  const Shape& xs = ctx.inputs[0].shape();
  const Shape& ys = ctx.outputs[0].shape();
  const int64_t h = xs[1], w = xs[2], c = xs[3], oh = ys[1], ow = ys[2];
  const T* x = ctx.inputs[0].data<T>();
  T* y = ctx.outputs[0].data<T>();
  const A div = A(g.kh * g.kw);
  ParallelFor(0, ys[0] * oh, 1, [&](int64_t begin, int64_t end) {
    std::vector<A> acc(c);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / oh, oy = row % oh;
      const int64_t y0 = std::max<int64_t>(0, oy * g.sh - g.ph), y1 = std::min(h, oy * g.sh - g.ph + g.kh);
      for (int64_t ox = 0; ox < ow; ++ox) {
        const int64_t x0 = std::max<int64_t>(0, ox * g.sw - g.pw), x1 = std::min(w, ox * g.sw - g.pw + g.kw);
        std::fill(acc.begin(), acc.end(), A(0));
        for (int64_t iy = y0; iy < y1; ++iy)
          for (int64_t ix = x0; ix < x1; ++ix) {
            const T* p = x + ((n * h + iy) * w + ix) * c;
            for (int64_t i = 0; i < c; ++i) acc[i] += Load(p, i);
          }
        T* q = y + (row * ow + ox) * c;
        for (int64_t i = 0; i < c; ++i) Store(q, i, acc[i] / div);
      }
    }
  });
  return absl::OkStatus();
}

// dy: [N, oh, ow, C] -> dx: [N, H, W, C].
template <typename T>
Status AvgPoolBackwardCpuT(KernelContext& ctx, const PoolGeom& g) {
  using A = Acc<T>;
  const Shape& ds = ctx.inputs[0].shape();
  const Shape& xs = ctx.outputs[0].shape();
  const int64_t h = xs[1], w = xs[2], c = xs[3], oh = ds[1], ow = ds[2];
  const T* dy = ctx.inputs[0].data<T>();
  T* dx = ctx.outputs[0].data<T>();
  const A div = A(g.kh * g.kw);
  ParallelFor(0, xs[0] * h, 1, [&](int64_t begin, int64_t end) {
    std::vector<A> acc(c);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / h, iy = row % h;
      int64_t oy0, oy1;
      PoolWindowsOf(iy, g.kh, g.sh, g.ph, oh, &oy0, &oy1);
      for (int64_t ix = 0; ix < w; ++ix) {
        int64_t ox0, ox1;
        PoolWindowsOf(ix, g.kw, g.sw, g.pw, ow, &ox0, &ox1);
        std::fill(acc.begin(), acc.end(), A(0));
        for (int64_t oy = oy0; oy <= oy1; ++oy)
          for (int64_t ox = ox0; ox <= ox1; ++ox) {
            const T* p = dy + ((n * oh + oy) * ow + ox) * c;
            for (int64_t i = 0; i < c; ++i) acc[i] += Load(p, i);
          }
        T* q = dx + (row * w + ix) * c;
        for (int64_t i = 0; i < c; ++i) Store(q, i, acc[i] / div);
      }
    }
  });
  return absl::OkStatus();
}

Status AvgPoolCpu(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(PoolGeom g, pool_internal::ParsePoolGeom(ctx.attrs));
  return DispatchFloat(ctx.inputs[0].dtype(), "avg_pool2d",
                       [&](auto tag) { return AvgPoolCpuT<decltype(tag)>(ctx, g); });
}
Status AvgPoolBackwardCpu(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(PoolGeom g, pool_internal::ParsePoolGeom(ctx.attrs));
  return DispatchFloat(ctx.inputs[0].dtype(), "avg_pool2d_backward",
                       [&](auto tag) { return AvgPoolBackwardCpuT<decltype(tag)>(ctx, g); });
}

OpDef AvgPoolDef() {
  OpDef d;
  d.name = "avg_pool2d";
  d.min_inputs = d.max_inputs = 1;
  d.infer = InferAvgPool;
  d.cost = AvgPoolCost;
  d.vjp = AvgPoolVjp;
  d.doc = "average pooling of NHWC x (PyTorch avg_pool2d, count_include_pad=true, ceil_mode=false)";
  return d;
}

OpDef AvgPoolBackwardDef() {
  OpDef d;
  d.name = "avg_pool2d_backward";
  d.min_inputs = d.max_inputs = 1;
  d.infer = InferAvgPoolBackward;
  d.cost = AvgPoolBackwardCost;
  d.doc = "gradient of avg_pool2d: dy -> dx of input_hw";
  return d;
}

}  // namespace

Value AvgPool2d(Value x, std::vector<int64_t> kernel, std::vector<int64_t> stride, std::vector<int64_t> padding) {
  if (!x.valid()) return {};
  Attrs a{{"kernel", std::move(kernel)}, {"padding", std::move(padding)}};
  if (!stride.empty()) a.Set("stride", std::move(stride));
  return x.b->Op1("avg_pool2d", {x}, a);
}

CF_REGISTER_OP(AvgPoolDef());
CF_REGISTER_OP(AvgPoolBackwardDef());
CF_REGISTER_KERNEL("avg_pool2d", kCPU, AvgPoolCpu);
CF_REGISTER_KERNEL("avg_pool2d_backward", kCPU, AvgPoolBackwardCpu);

}  // namespace cf
