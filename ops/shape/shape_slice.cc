// slice (attributes axis, start, end, step; python semantics) and its VJP
// slice_backward (attributes axis, start, step, dim): the gradient scattered
// into zeros at start, start + step, ...
#include <algorithm>

#include "ops/shape/shape.h"
#include "ops/shape/shape_util.h"
#include "ops/shape/strided_copy.h"

namespace cf {
namespace {

using shape_internal::AxisAttr;
using shape_internal::Inner;
using shape_internal::Outer;

struct SliceRange {
  int64_t start = 0;  // normalised, in [0, dim)
  int64_t count = 0;  // elements taken
  int64_t step = 1;
};

// Python's slice rule: negative bounds count from the end, then both are
// clamped to [0, dim]; the result is empty when end <= start.
StatusOr<SliceRange> ResolveSlice(const Attrs& attrs, int64_t dim) {
  SliceRange r;
  r.step = attrs.Int("step", 1);
  CF_CHECK_ARG(r.step >= 1, "step ", r.step, " must be >= 1");
  int64_t start = attrs.Int("start", 0), end = attrs.Int("end", kSliceToEnd);
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  start = std::clamp<int64_t>(start, 0, dim);
  end = std::clamp<int64_t>(end, 0, dim);
  r.start = start;
  r.count = end > start ? (end - start + r.step - 1) / r.step : 0;
  CF_CHECK_ARG(r.count > 0, "slice [", attrs.Int("start", 0), ":",
               attrs.Int("end", kSliceToEnd) == kSliceToEnd ? std::string("") : absl::StrCat(attrs.Int("end", 0)),
               ":", r.step, "] of a dim of length ", dim, " is empty (empty slices are not supported)");
  return r;
}

// The copy between the sliced [outer, count, inner] and the full
// [outer, dim, inner] (offset start * inner already applied to the pointer).
CopyLayout SliceLayout(int64_t outer, int64_t dim, int64_t inner, const SliceRange& r, bool full_is_src) {
  const int64_t full_outer = dim * inner, full_step = r.step * inner;
  CopyLayout l;
  l.Add(outer, full_is_src ? full_outer : r.count * inner, full_is_src ? r.count * inner : full_outer);
  l.Add(r.count, full_is_src ? full_step : inner, full_is_src ? inner : full_step);
  l.Add(inner, 1, 1);
  return l;
}

// ---- slice

StatusOr<std::vector<TensorType>> InferSlice(const OpCall& c) {
  const TensorType& x = c.inputs[0];
  CF_CHECK_ARG(x.shape.rank() >= 1, "cannot slice a rank-0 tensor");
  CF_ASSIGN_OR_RETURN(int axis, AxisAttr(c.attrs, "axis", 0, x.shape.rank()));
  CF_ASSIGN_OR_RETURN(SliceRange r, ResolveSlice(c.attrs, x.shape[axis]));
  Shape out = x.shape;
  out[axis] = r.count;
  return std::vector<TensorType>{{out, x.dtype}};
}

Status SliceKernel(KernelContext& ctx) {
  const Tensor& x = ctx.inputs[0];
  Tensor& y = ctx.outputs[0];
  CF_ASSIGN_OR_RETURN(int axis, AxisAttr(ctx.attrs, "axis", 0, x.shape().rank()));
  const int64_t dim = x.shape()[axis];
  CF_ASSIGN_OR_RETURN(SliceRange r, ResolveSlice(ctx.attrs, dim));
  const int64_t outer = Outer(x.shape(), axis), inner = Inner(x.shape(), axis), es = DTypeSize(x.dtype());
  return StridedCopy(ctx, y.raw(), static_cast<const char*>(x.raw()) + r.start * inner * es,
                     SliceLayout(outer, dim, inner, r, /*full_is_src=*/true), es);
}

StatusOr<std::vector<Value>> SliceVjp(VjpContext& ctx) {
  if (!ctx.grad_outputs[0].valid()) return std::vector<Value>{Value{}};
  const Value& x = ctx.inputs[0];
  CF_ASSIGN_OR_RETURN(int axis, AxisAttr(ctx.attrs, "axis", 0, x.rank()));
  CF_ASSIGN_OR_RETURN(SliceRange r, ResolveSlice(ctx.attrs, x.dim(axis)));
  return std::vector<Value>{SliceBackward(ctx.grad_outputs[0], axis, r.start, r.step, x.dim(axis))};
}

// Reads only the selected elements: bytes_read = bytes_written = output bytes.
Cost CostSlice(const OpCall&, absl::Span<const TensorType> outs) {
  Cost c;
  c.bytes_read = c.bytes_written = outs[0].bytes();
  return c;
}

OpDef SliceDef() {
  return {.name = "slice", .min_inputs = 1, .max_inputs = 1, .infer = InferSlice, .cost = CostSlice, .vjp = SliceVjp,
          .doc = "x[..., start:end:step, ...] along `axis` (python semantics)"};
}

// ---- slice_backward

StatusOr<SliceRange> BackwardRange(const Attrs& attrs, int64_t count, int64_t* dim) {
  SliceRange r;
  r.start = attrs.Int("start", 0);
  r.step = attrs.Int("step", 1);
  r.count = count;
  CF_ASSIGN_OR_RETURN(*dim, attrs.RequireInt("dim"));
  CF_CHECK_ARG(r.step >= 1, "step ", r.step, " must be >= 1");
  CF_CHECK_ARG(r.start >= 0 && r.start + (count - 1) * r.step < *dim, "elements start ", r.start, " + k * ",
               r.step, " for k < ", count, " do not fit in dim ", *dim);
  return r;
}

StatusOr<std::vector<TensorType>> InferSliceBackward(const OpCall& c) {
  const TensorType& g = c.inputs[0];
  CF_CHECK_ARG(g.shape.rank() >= 1, "the gradient must have rank >= 1");
  CF_ASSIGN_OR_RETURN(int axis, AxisAttr(c.attrs, "axis", 0, g.shape.rank()));
  CF_CHECK_ARG(g.shape[axis] >= 1, "the gradient is empty along axis ", axis);
  int64_t dim = 0;
  CF_ASSIGN_OR_RETURN(SliceRange r, BackwardRange(c.attrs, g.shape[axis], &dim));
  (void)r;
  Shape out = g.shape;
  out[axis] = dim;
  return std::vector<TensorType>{{out, g.dtype}};
}

Status SliceBackwardKernel(KernelContext& ctx) {
  const Tensor& g = ctx.inputs[0];
  Tensor& y = ctx.outputs[0];
  CF_ASSIGN_OR_RETURN(int axis, AxisAttr(ctx.attrs, "axis", 0, g.shape().rank()));
  int64_t dim = 0;
  CF_ASSIGN_OR_RETURN(SliceRange r, BackwardRange(ctx.attrs, g.shape()[axis], &dim));
  const int64_t outer = Outer(g.shape(), axis), inner = Inner(g.shape(), axis), es = DTypeSize(g.dtype());
  if (r.count != dim) CF_RETURN_IF_ERROR(ZeroBytes(ctx, y.raw(), y.nbytes()));  // holes stay zero
  return StridedCopy(ctx, static_cast<char*>(y.raw()) + r.start * inner * es, g.raw(),
                     SliceLayout(outer, dim, inner, r, /*full_is_src=*/false), es);
}

OpDef SliceBackwardDef() {
  // Cost: the default IoBytes (reads the gradient, writes the whole output, zeros included).
  return {.name = "slice_backward", .min_inputs = 1, .max_inputs = 1, .infer = InferSliceBackward,
          .doc = "the VJP of slice: grad placed at start + k*step along `axis` of a zero tensor with `dim` there"};
}

}  // namespace

Value Slice(Value x, int axis, int64_t start, int64_t end, int64_t step) {
  if (!x.valid()) return Value{};
  return x.b->Op1("slice", {x},
                  Attrs{{"axis", static_cast<int64_t>(axis)}, {"start", start}, {"end", end}, {"step", step}});
}

Value SliceBackward(Value grad, int axis, int64_t start, int64_t step, int64_t dim) {
  if (!grad.valid()) return Value{};
  return grad.b->Op1("slice_backward", {grad},
                     Attrs{{"axis", static_cast<int64_t>(axis)}, {"start", start}, {"step", step}, {"dim", dim}});
}

CF_REGISTER_OP(SliceDef());
CF_REGISTER_OP(SliceBackwardDef());
CF_REGISTER_COPY_KERNEL("slice", SliceKernel);
CF_REGISTER_COPY_KERNEL("slice_backward", SliceBackwardKernel);

}  // namespace cf
