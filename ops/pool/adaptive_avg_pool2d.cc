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
#include "ops/pool/pool_internal.h"

namespace cf {
namespace {

using pool_internal::AdaptiveBinsOf;
using pool_internal::AdaptiveEnd;
using pool_internal::AdaptiveStart;

StatusOr<std::vector<int64_t>> OutputSize(const Attrs& a) {
  CF_CHECK_ARG(a.Has("output_size"), "missing attribute 'output_size' ([oh, ow])");
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> s, pool_internal::PairAttr(a, "output_size", {}));
  CF_CHECK_ARG(s[0] >= 1 && s[1] >= 1, "output_size must be >= 1, got ", s[0], "x", s[1]);
  return s;
}

StatusOr<std::vector<TensorType>> InferAdaptive(const OpCall& c) {
  const TensorType& x = c.inputs[0];
  CF_RETURN_IF_ERROR(pool_internal::CheckNhwc(x));
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> s, OutputSize(c.attrs));
  CF_CHECK_ARG(x.shape[1] >= 1 && x.shape[2] >= 1, "input spatial size must be >= 1, got ", x.shape.ToString());
  return std::vector<TensorType>{{Shape({x.shape[0], s[0], s[1], x.shape[3]}), x.dtype}};
}

StatusOr<std::vector<TensorType>> InferAdaptiveBackward(const OpCall& c) {
  const TensorType& dy = c.inputs[0];
  CF_RETURN_IF_ERROR(pool_internal::CheckNhwc(dy, "dy"));
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> hw, c.attrs.RequireInts("input_hw"));
  CF_CHECK_ARG(hw.size() == 2 && hw[0] >= 1 && hw[1] >= 1, "input_hw must be [H, W] >= 1");
  CF_CHECK_ARG(dy.shape[1] >= 1 && dy.shape[2] >= 1, "dy spatial size must be >= 1, got ", dy.shape.ToString());
  return std::vector<TensorType>{{Shape({dy.shape[0], hw[0], hw[1], dy.shape[3]}), dy.dtype}};
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
  const Shape& x = ctx.inputs[0].shape();
  return std::vector<Value>{ctx.b.Op1("adaptive_avg_pool2d_backward", {ctx.grad_outputs[0]},
                                      Attrs{{"input_hw", std::vector<int64_t>{x[1], x[2]}}})};
}

// ---- CPU kernels -----------------------------------------------------------------

// x: [N, H, W, C] -> y: [N, oh, ow, C].
template <typename T>
Status AdaptiveCpuT(KernelContext& ctx) {
  using A = Acc<T>;
  const Shape& xs = ctx.inputs[0].shape();
  const Shape& ys = ctx.outputs[0].shape();
  const int64_t h = xs[1], w = xs[2], c = xs[3], oh = ys[1], ow = ys[2];
  const T* x = ctx.inputs[0].data<T>();
  T* y = ctx.outputs[0].data<T>();
  ParallelFor(0, ys[0] * oh, 1, [&](int64_t begin, int64_t end) {
    std::vector<A> acc(c);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / oh, oy = row % oh;
      const int64_t y0 = AdaptiveStart(oy, h, oh), y1 = AdaptiveEnd(oy, h, oh);
      for (int64_t ox = 0; ox < ow; ++ox) {
        const int64_t x0 = AdaptiveStart(ox, w, ow), x1 = AdaptiveEnd(ox, w, ow);
        std::fill(acc.begin(), acc.end(), A(0));
        for (int64_t iy = y0; iy < y1; ++iy)
          for (int64_t ix = x0; ix < x1; ++ix) {
            const T* p = x + ((n * h + iy) * w + ix) * c;
            for (int64_t i = 0; i < c; ++i) acc[i] += Load(p, i);
          }
        const A count = A((y1 - y0) * (x1 - x0));
        T* q = y + (row * ow + ox) * c;
        for (int64_t i = 0; i < c; ++i) Store(q, i, acc[i] / count);
      }
    }
  });
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
  T* dx = ctx.outputs[0].data<T>();
  ParallelFor(0, xs[0] * h, 1, [&](int64_t begin, int64_t end) {
    std::vector<A> acc(c);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / h, iy = row % h;
      int64_t oy0, oy1;
      AdaptiveBinsOf(iy, h, oh, &oy0, &oy1);
      for (int64_t ix = 0; ix < w; ++ix) {
        int64_t ox0, ox1;
        AdaptiveBinsOf(ix, w, ow, &ox0, &ox1);
        std::fill(acc.begin(), acc.end(), A(0));
        for (int64_t oy = oy0; oy <= oy1; ++oy) {
          const int64_t bh = AdaptiveEnd(oy, h, oh) - AdaptiveStart(oy, h, oh);
          for (int64_t ox = ox0; ox <= ox1; ++ox) {
            const A count = A(bh * (AdaptiveEnd(ox, w, ow) - AdaptiveStart(ox, w, ow)));
            const T* p = dy + ((n * oh + oy) * ow + ox) * c;
            for (int64_t i = 0; i < c; ++i) acc[i] += Load(p, i) / count;
          }
        }
        T* q = dx + (row * w + ix) * c;
        for (int64_t i = 0; i < c; ++i) Store(q, i, acc[i]);
      }
    }
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
  OpDef d;
  d.name = "adaptive_avg_pool2d";
  d.min_inputs = d.max_inputs = 1;
  d.infer = InferAdaptive;
  d.cost = AdaptiveCost;
  d.vjp = AdaptiveVjp;
  d.doc = "adaptive average pooling of NHWC x to output_size (PyTorch bins)";
  return d;
}

OpDef AdaptiveBackwardDef() {
  OpDef d;
  d.name = "adaptive_avg_pool2d_backward";
  d.min_inputs = d.max_inputs = 1;
  d.infer = InferAdaptiveBackward;
  d.cost = AdaptiveBackwardCost;
  d.doc = "gradient of adaptive_avg_pool2d: dy -> dx of input_hw";
  return d;
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
