// concat (variadic inputs, attribute axis) and split (attributes sizes, axis;
// one output per size), each other's VJP. Both copy [outer, a_i * inner]
// blocks between the joined and the separate tensors.
#include "ops/core/full.h"
#include "ops/shape/shape.h"
#include "ops/shape/shape_util.h"
#include "ops/shape/strided_copy.h"

namespace cf {
namespace {

using shape_internal::AxisAttr;
using shape_internal::DimsOf;
using shape_internal::Inner;
using shape_internal::Outer;

// The layout of piece [outer, a * inner] inside the joined [outer, total * inner].
CopyLayout PieceLayout(int64_t outer, int64_t a, int64_t total, int64_t inner, bool piece_is_src) {
  CopyLayout l;
  if (piece_is_src) {
    l.Add(outer, a * inner, total * inner);
  } else {
    l.Add(outer, total * inner, a * inner);
  }
  l.Add(a * inner, 1, 1);
  return l;
}

// ---- concat

StatusOr<std::vector<TensorType>> InferConcat(const OpCall& c) {
  const TensorType& first = c.inputs[0];
  CF_CHECK_ARG(first.shape.rank() >= 1, "cannot concatenate rank-0 tensors");
  CF_ASSIGN_OR_RETURN(int axis, AxisAttr(c.attrs, "axis", 0, first.shape.rank()));
  Shape out = first.shape;
  out[axis] = 0;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const TensorType& t = c.inputs[i];
    CF_CHECK_ARG(t.dtype == first.dtype, "input ", i, " is ", DTypeName(t.dtype), " but input 0 is ",
                 DTypeName(first.dtype));
    CF_CHECK_ARG(t.shape.rank() == first.shape.rank(), "input ", i, " ", t.shape.ToString(),
                 " has another rank than input 0 ", first.shape.ToString());
    for (int k = 0; k < out.rank(); ++k) {
      CF_CHECK_ARG(k == axis || t.shape[k] == first.shape[k], "input ", i, " ", t.shape.ToString(),
                   " differs from input 0 ", first.shape.ToString(), " in dim ", k, " (not the concat axis ", axis,
                   ")");
    }
    out[axis] += t.shape[axis];
  }
  return std::vector<TensorType>{{out, first.dtype}};
}

Status ConcatKernel(KernelContext& ctx) {
  Tensor& y = ctx.outputs[0];
  CF_ASSIGN_OR_RETURN(int axis, AxisAttr(ctx.attrs, "axis", 0, y.shape().rank()));
  const int64_t outer = Outer(y.shape(), axis), inner = Inner(y.shape(), axis), total = y.shape()[axis];
  const int64_t es = DTypeSize(y.dtype());
  int64_t offset = 0;
  for (const Tensor& x : ctx.inputs) {
    const int64_t a = x.shape()[axis];
    if (a > 0) {
      CF_RETURN_IF_ERROR(StridedCopy(ctx, static_cast<char*>(y.raw()) + offset * inner * es, x.raw(),
                                     PieceLayout(outer, a, total, inner, /*piece_is_src=*/true), es));
    }
    offset += a;
  }
  return absl::OkStatus();
}

StatusOr<std::vector<Value>> ConcatVjp(VjpContext& ctx) {
  const int n = static_cast<int>(ctx.inputs.size());
  std::vector<Value> grads(n);
  Value g = ctx.grad_outputs[0];
  if (!g.valid()) return grads;
  CF_ASSIGN_OR_RETURN(int axis, AxisAttr(ctx.attrs, "axis", 0, g.rank()));
  bool all = true;
  for (int i = 0; i < n; ++i) all = all && ctx.needs_grad[i] && ctx.inputs[i].dim(axis) > 0;
  if (all) {  // one pass over the gradient
    std::vector<int64_t> sizes;
    for (const Value& x : ctx.inputs) sizes.push_back(x.dim(axis));
    return n == 1 ? std::vector<Value>{g} : Split(g, sizes, axis);
  }
  int64_t offset = 0;
  for (int i = 0; i < n; ++i) {
    const int64_t a = ctx.inputs[i].dim(axis);
    if (ctx.needs_grad[i] && a > 0) grads[i] = Slice(g, axis, offset, offset + a);
    offset += a;
  }
  return grads;
}

OpDef ConcatDef() {
  // Cost: the default IoBytes (data movement: every input read and the output written once).
  return {.name = "concat", .min_inputs = 1, .max_inputs = -1, .infer = InferConcat, .vjp = ConcatVjp,
          .doc = "inputs joined along `axis`"};
}

// ---- split

StatusOr<std::vector<TensorType>> InferSplit(const OpCall& c) {
  const TensorType& x = c.inputs[0];
  CF_CHECK_ARG(x.shape.rank() >= 1, "cannot split a rank-0 tensor");
  CF_ASSIGN_OR_RETURN(int axis, AxisAttr(c.attrs, "axis", 0, x.shape.rank()));
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> sizes, c.attrs.RequireInts("sizes"));
  CF_CHECK_ARG(!sizes.empty(), "sizes is empty");
  int64_t sum = 0;
  std::vector<TensorType> outs;
  for (int64_t s : sizes) {
    CF_CHECK_ARG(s >= 1, "sizes [", absl::StrJoin(sizes, ", "), "] has an entry below 1");
    sum += s;
    Shape o = x.shape;
    o[axis] = s;
    outs.push_back({o, x.dtype});
  }
  CF_CHECK_ARG(sum == x.shape[axis], "sizes [", absl::StrJoin(sizes, ", "), "] sum to ", sum, ", not to dim ", axis,
               " (", x.shape[axis], ") of ", x.shape.ToString());
  return outs;
}

Status SplitKernel(KernelContext& ctx) {
  const Tensor& x = ctx.inputs[0];
  CF_ASSIGN_OR_RETURN(int axis, AxisAttr(ctx.attrs, "axis", 0, x.shape().rank()));
  const int64_t outer = Outer(x.shape(), axis), inner = Inner(x.shape(), axis), total = x.shape()[axis];
  const int64_t es = DTypeSize(x.dtype());
  int64_t offset = 0;
  for (Tensor& y : ctx.outputs) {
    const int64_t a = y.shape()[axis];
    CF_RETURN_IF_ERROR(StridedCopy(ctx, y.raw(), static_cast<const char*>(x.raw()) + offset * inner * es,
                                   PieceLayout(outer, a, total, inner, /*piece_is_src=*/false), es));
    offset += a;
  }
  return absl::OkStatus();
}

StatusOr<std::vector<Value>> SplitVjp(VjpContext& ctx) {
  Builder& b = ctx.b;
  const Value& x = ctx.inputs[0];
  CF_ASSIGN_OR_RETURN(int axis, AxisAttr(ctx.attrs, "axis", 0, x.rank()));
  bool any = false;
  for (const Value& g : ctx.grad_outputs) any = any || g.valid();
  if (!any) return std::vector<Value>{Value{}};
  // Pieces without a gradient contribute zeros.
  std::vector<Value> parts;
  for (size_t k = 0; k < ctx.outputs.size(); ++k) {
    const Value& g = ctx.grad_outputs[k];
    parts.push_back(g.valid() ? g : Full(b, ctx.outputs[k].shape(), ctx.outputs[k].dtype(), 0.0));
  }
  return std::vector<Value>{parts.size() == 1 ? parts[0] : Concat(parts, axis)};
}

OpDef SplitDef() {
  // Cost: the default IoBytes (data movement: the input read and every output written once).
  return {.name = "split", .min_inputs = 1, .max_inputs = 1, .infer = InferSplit, .vjp = SplitVjp,
          .doc = "consecutive pieces of x along `axis` of the given `sizes`"};
}

}  // namespace

Value Concat(const std::vector<Value>& xs, int axis) {
  if (xs.empty() || !xs[0].valid()) return Value{};
  return xs[0].b->Op1("concat", xs, Attrs{{"axis", static_cast<int64_t>(axis)}});
}

std::vector<Value> Split(Value x, std::vector<int64_t> sizes, int axis) {
  if (!x.valid()) return std::vector<Value>(sizes.size());
  const size_t n = sizes.size();
  std::vector<Value> outs =
      x.b->Op("split", {x}, Attrs{{"sizes", std::move(sizes)}, {"axis", static_cast<int64_t>(axis)}});
  outs.resize(n);  // invalid values after an error
  return outs;
}

std::vector<Value> Chunk(Value x, int n, int axis) {
  if (!x.valid()) return std::vector<Value>(n > 0 ? n : 0);
  const int a = NormalizeAxis(axis, x.rank());
  if (n < 1 || a < 0 || x.dim(a) % n != 0) {
    x.b->Fail(absl::InvalidArgumentError(absl::StrCat("Chunk: cannot cut axis ", axis, " of ", x.type().ToString(),
                                                      " into ", n, " equal pieces")));
    return std::vector<Value>(n > 0 ? n : 0);
  }
  return Split(x, std::vector<int64_t>(n, x.dim(a) / n), axis);
}

CF_REGISTER_OP(ConcatDef());
CF_REGISTER_OP(SplitDef());
CF_REGISTER_COPY_KERNEL("concat", ConcatKernel);
CF_REGISTER_COPY_KERNEL("split", SplitKernel);

}  // namespace cf
