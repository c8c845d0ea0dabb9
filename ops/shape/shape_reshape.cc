// reshape: the same bytes under another shape (a view). Attribute: shape
// (ints, at most one -1, which is inferred).
#include "ops/shape/shape.h"
#include "ops/shape/shape_util.h"
#include "ops/shape/strided_copy.h"

namespace cf {
namespace {

using shape_internal::DimsOf;

StatusOr<std::vector<TensorType>> InferReshape(const OpCall& c) {
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> dims, c.attrs.RequireInts("shape"));
  const Shape& in = c.inputs[0].shape;
  CF_CHECK_ARG(static_cast<int>(dims.size()) <= Shape::kMaxRank, "shape has rank ", dims.size(), " above ",
               Shape::kMaxRank);
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == -1) {
      CF_CHECK_ARG(infer < 0, "shape has more than one -1");
      infer = static_cast<int>(i);
    } else {
      CF_CHECK_ARG(dims[i] >= 0, "shape has a negative dimension ", dims[i]);
      known *= dims[i];
    }
  }
  if (infer >= 0) {
    CF_CHECK_ARG(known > 0 && in.numel() % known == 0, "cannot infer the -1 of shape [", absl::StrJoin(dims, ", "),
                 "] for ", in.numel(), " elements of ", in.ToString());
    dims[infer] = in.numel() / known;
  }
  const Shape out(dims);
  CF_CHECK_ARG(out.numel() == in.numel(), "cannot reshape ", in.ToString(), " (", in.numel(), " elements) to ",
               out.ToString(), " (", out.numel(), " elements)");
  return std::vector<TensorType>{{out, c.inputs[0].dtype}};
}

// Only runs when the planner did not alias the output to the input.
Status ReshapeKernel(KernelContext& ctx) {
  const Tensor& x = ctx.inputs[0];
  Tensor& y = ctx.outputs[0];
  if (x.raw() == y.raw() || x.numel() == 0) return absl::OkStatus();
  CopyLayout l;
  l.Add(x.numel(), 1, 1);
  return StridedCopy(ctx, y.raw(), x.raw(), l, DTypeSize(x.dtype()));
}

StatusOr<std::vector<Value>> ReshapeVjp(VjpContext& ctx) {
  if (!ctx.grad_outputs[0].valid()) return std::vector<Value>{Value{}};
  return std::vector<Value>{Reshape(ctx.grad_outputs[0], DimsOf(ctx.inputs[0].shape()))};
}

OpDef ReshapeDef() {
  // A view moves no bytes (docs/flops.md).
  return {.name = "reshape", .min_inputs = 1, .max_inputs = 1, .infer = InferReshape,
          .cost = [](const OpCall&, absl::Span<const TensorType>) { return Cost{}; }, .vjp = ReshapeVjp,
          .view_of_input0 = true, .doc = "the same elements under another shape (a view)"};
}

}  // namespace

Value Reshape(Value x, std::vector<int64_t> shape) {
  if (!x.valid()) return Value{};
  return x.b->Op1("reshape", {x}, Attrs{{"shape", std::move(shape)}});
}

CF_REGISTER_OP(ReshapeDef());
CF_REGISTER_COPY_KERNEL("reshape", ReshapeKernel);

}  // namespace cf
