// resize_bilinear and resize_bilinear_backward: definitions, costs, VJP and
// CPU kernels (CUDA kernels in resize_bilinear.cu).
//
// resize_bilinear: x [N, H, W, C] -> [N, oh, ow, C], attribute size [oh, ow]
// (or [s]); align_corners = false (the attribute is accepted only false), no
// antialias: F.interpolate(x, size=(oh, ow), mode="bilinear"). The source
// coordinate rule is BilinearTapOf in pool_internal.h, computed in f32 (f64
// for f64 tensors) like PyTorch's accumulation type:
//   y = l0y (l0x x[i0y, i0x] + l1x x[i0y, i1x]) + l1y (l0x x[i1y, i0x] + l1x x[i1y, i1x]).
// resize_bilinear_backward: dy [N, oh, ow, C] -> dx [N, H, W, C], attribute
// input_hw [H, W]; each input gathers weight * dy over the taps that read it.
#include "ops/cpu_util.h"
#include "ops/pool/pool.h"
#include "ops/pool/pool_checks.h"
#include "ops/pool/pool_cpu.h"
#include "ops/pool/pool_internal.h"

namespace cf {
namespace {

using pool_internal::BilinearScale;
using pool_internal::BilinearTap;
using pool_internal::BilinearTapOf;

StatusOr<std::vector<TensorType>> InferResize(const OpCall& c) {
  CF_RETURN_IF_ERROR(pool_internal::CheckNhwc(c.inputs[0]));
  CF_CHECK_ARG(!c.attrs.Bool("align_corners", false), "align_corners=true is not supported");
  return pool_internal::ResampledTypes(c.inputs[0], c.attrs, "size");
}

// Forward: 6 multiplies + 3 adds per output element (index and weight
// arithmetic, O(oh + ow), is not counted): elementwise = 9 N oh ow C.
Cost ResizeCost(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  cost.elementwise_flops = 9 * outs[0].shape.numel();
  return cost;
}

// Distinct input indices read by the taps of an axis.
int64_t TouchedInputs(int64_t in, int64_t out) {
  std::vector<bool> hit(in, false);
  const float scale = BilinearScale<float>(in, out);
  for (int64_t o = 0; o < out; ++o) {
    BilinearTap<float> t = BilinearTapOf(o, in, scale);
    hit[t.i0] = hit[t.i1] = true;
  }
  int64_t n = 0;
  for (bool h : hit) n += h ? 1 : 0;
  return n;
}

// Backward, per (n, c): 4 taps per dy element, each wy * wx * dy (2
// multiplies), and each input sums its contributions; the 2 oh taps of the
// rows and 2 ow of the columns give 4 oh ow contributions over
// touched_h * touched_w inputs: elementwise = N C (12 oh ow - touched_h touched_w).
Cost ResizeBackwardCost(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  const Shape& dy = c.inputs[0].shape;
  const Shape& dx = outs[0].shape;
  cost.elementwise_flops =
      dy[0] * dy[3] * (12 * dy[1] * dy[2] - TouchedInputs(dx[1], dy[1]) * TouchedInputs(dx[2], dy[2]));
  return cost;
}

StatusOr<std::vector<Value>> ResizeVjp(VjpContext& ctx) {
  return pool_internal::BackwardWithInputHw(ctx, "resize_bilinear_backward", {});
}

// ---- CPU kernels -----------------------------------------------------------------

// x: [N, H, W, C] -> y: [N, oh, ow, C].
template <typename T>
Status ResizeCpuT(KernelContext& ctx) {
  const Shape& ys = ctx.outputs[0].shape();
  pool_internal::ResizeBilinearCpu(ctx.inputs[0].data<T>(), ctx.inputs[0].shape(), ctx.outputs[0].data<T>(), ys[1],
                                   ys[2], ys[3]);
  return absl::OkStatus();
}

// Per input index of an axis, the (output index, weight) pairs of the taps
// that read it, as CSR: entries [start[i], start[i + 1]).
template <typename A>
struct Readers {
  std::vector<int64_t> start, out;
  std::vector<A> weight;
};
template <typename A>
Readers<A> ReadersOf(int64_t in, int64_t out) {
  const std::vector<BilinearTap<A>> taps = pool_internal::BilinearTaps<A>(in, out);
  Readers<A> r;
  r.start.assign(in + 1, 0);
  for (const auto& t : taps) {
    ++r.start[t.i0 + 1];
    ++r.start[t.i1 + 1];
  }
  for (int64_t i = 0; i < in; ++i) r.start[i + 1] += r.start[i];
  r.out.resize(2 * out);
  r.weight.resize(2 * out);
  std::vector<int64_t> fill(r.start.begin(), r.start.end() - 1);
  for (int64_t o = 0; o < out; ++o) {
    r.out[fill[taps[o].i0]] = o;
    r.weight[fill[taps[o].i0]++] = taps[o].l0;
    r.out[fill[taps[o].i1]] = o;
    r.weight[fill[taps[o].i1]++] = taps[o].l1;
  }
  return r;
}

// dy: [N, oh, ow, C] -> dx: [N, H, W, C].
template <typename T>
Status ResizeBackwardCpuT(KernelContext& ctx) {
  using A = Acc<T>;
  const Shape& ds = ctx.inputs[0].shape();
  const Shape& xs = ctx.outputs[0].shape();
  const int64_t h = xs[1], w = xs[2], c = xs[3], oh = ds[1], ow = ds[2];
  const Readers<A> ry = ReadersOf<A>(h, oh), rx = ReadersOf<A>(w, ow);
  const T* dy = ctx.inputs[0].data<T>();
  pool_internal::GatherPixelsCpu(ctx.outputs[0].data<T>(), xs, [&](int64_t n, int64_t iy, int64_t ix, A* acc) {
    for (int64_t a = ry.start[iy]; a < ry.start[iy + 1]; ++a)
      for (int64_t b = rx.start[ix]; b < rx.start[ix + 1]; ++b) {
        const A wgt = ry.weight[a] * rx.weight[b];
        const T* p = dy + ((n * oh + ry.out[a]) * ow + rx.out[b]) * c;
        for (int64_t i = 0; i < c; ++i) acc[i] += wgt * Load(p, i);
      }
    return A(1);
  });
  return absl::OkStatus();
}

Status ResizeCpu(KernelContext& ctx) {
  return DispatchFloat(ctx.inputs[0].dtype(), "resize_bilinear", [&](auto tag) { return ResizeCpuT<decltype(tag)>(ctx); });
}
Status ResizeBackwardCpu(KernelContext& ctx) {
  return DispatchFloat(ctx.inputs[0].dtype(), "resize_bilinear_backward",
                       [&](auto tag) { return ResizeBackwardCpuT<decltype(tag)>(ctx); });
}

OpDef ResizeDef() {
  return {.name = "resize_bilinear", .min_inputs = 1, .max_inputs = 1, .infer = InferResize, .cost = ResizeCost,
          .vjp = ResizeVjp, .doc = "bilinear resize of NHWC x to size (align_corners=false, PyTorch's sampling)"};
}

OpDef ResizeBackwardDef() {
  return {.name = "resize_bilinear_backward", .min_inputs = 1, .max_inputs = 1,
          .infer = pool_internal::InferResampledBackward, .cost = ResizeBackwardCost,
          .doc = "gradient of resize_bilinear: dy -> dx of input_hw"};
}

}  // namespace

Value ResizeBilinear(Value x, int64_t oh, int64_t ow) {
  if (!x.valid()) return {};
  return x.b->Op1("resize_bilinear", {x}, Attrs{{"size", std::vector<int64_t>{oh, ow}}});
}

CF_REGISTER_OP(ResizeDef());
CF_REGISTER_OP(ResizeBackwardDef());
CF_REGISTER_KERNEL("resize_bilinear", kCPU, ResizeCpu);
CF_REGISTER_KERNEL("resize_bilinear_backward", kCPU, ResizeBackwardCpu);

}  // namespace cf
