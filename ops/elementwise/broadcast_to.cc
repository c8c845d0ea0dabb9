// broadcast_to: x repeated along broadcast dimensions (the VJP of sum_to and
// of the reductions). Attributes: shape (ints, the output shape); optional
// axes (ints): output axes that x lacks entirely (x's shape is `shape` with
// those axes removed, as after a reduction without keepdim). Without axes,
// numpy rules. CUDA kernel in elementwise_binary.cu.
#include "ops/elementwise/broadcast_to.h"

#include "absl/strings/str_join.h"
#include "ops/cpu_util.h"
#include "ops/elementwise/broadcast_cpu.h"
#include "ops/elementwise/elementwise.h"
#include "ops/elementwise/value_util.h"
#include "ops/reduce/reduce.h"

namespace cf {

StatusOr<Shape> BroadcastOperandShape(const Shape& x, const Shape& out, absl::Span<const int64_t> axes) {
  if (axes.empty()) {
    CF_CHECK_ARG(BroadcastsTo(x, out), "input shape ", x.ToString(), " does not broadcast to ", out.ToString());
    return x;
  }
  CF_ASSIGN_OR_RETURN(uint32_t mask, ReduceMask(axes, out.rank()));
  Shape keep;
  int j = 0;
  for (int d = 0; d < out.rank(); ++d) {
    if ((mask >> d) & 1u) {
      keep.push_back(1);
    } else {
      CF_CHECK_ARG(j < x.rank() && (x[j] == out[d] || x[j] == 1), "input shape ", x.ToString(),
                   " is not ", out.ToString(), " without axes [", absl::StrJoin(axes, ", "), "]");
      keep.push_back(x[j++]);
    }
  }
  CF_CHECK_ARG(j == x.rank(), "input shape ", x.ToString(), " is not ", out.ToString(), " without axes [",
               absl::StrJoin(axes, ", "), "]");
  return keep;
}

namespace {

StatusOr<std::vector<TensorType>> InferBroadcastTo(const OpCall& c) {
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> dims, c.attrs.RequireInts("shape"));
  for (int64_t d : dims) CF_CHECK_ARG(d >= 0, "negative dimension in shape");
  const Shape out(dims);
  CF_RETURN_IF_ERROR(BroadcastOperandShape(c.inputs[0].shape, out, c.attrs.Ints("axes")).status());
  return std::vector<TensorType>{{out, c.inputs[0].dtype}};
}

// Data movement: bytes only.
Cost CostBroadcastTo(const OpCall& c, absl::Span<const TensorType> outs) { return IoBytes(c.inputs, outs); }

Status BroadcastToCpu(KernelContext& ctx) {
  const Tensor& x = ctx.inputs[0];
  Tensor& out = ctx.outputs[0];
  if (out.numel() == 0) return absl::OkStatus();
  CF_ASSIGN_OR_RETURN(Shape xs, BroadcastOperandShape(x.shape(), out.shape(), ctx.attrs.Ints("axes")));
  const BroadcastPlan plan = PlanBroadcast(out.shape(), xs, xs);
  return DispatchFloat(x.dtype(), ctx.op, [&](auto tag) {
    using T = decltype(tag);
    BroadcastBinaryCpu(plan, x.data<T>(), x.data<T>(), out.data<T>(), [](Acc<T> v, Acc<T>) { return v; });
    return absl::OkStatus();
  });
}

StatusOr<std::vector<Value>> BroadcastToVjp(VjpContext& c) {
  const Value dy = c.grad_outputs[0];
  if (!dy.valid() || !c.needs_grad[0]) return std::vector<Value>(1);
  const std::vector<int64_t> axes = c.attrs.Ints("axes");
  const Value x = c.inputs[0];
  if (axes.empty()) return std::vector<Value>{SumTo(dy, x.shape())};
  // Sum the missing axes away, then any size-1 dims of x that were stretched.
  Value g = Sum(dy, axes, /*keepdim=*/false);
  return std::vector<Value>{g.valid() ? SumTo(g, x.shape()) : g};
}

OpDef BroadcastToDef() {
  return {.name = "broadcast_to", .min_inputs = 1, .max_inputs = 1, .infer = InferBroadcastTo, .cost = CostBroadcastTo,
          .vjp = BroadcastToVjp,
          .doc = "x repeated along broadcast dimensions to `shape` (optionally inserting `axes`)"};
}

}  // namespace

Value BroadcastTo(Value x, Shape shape) {
  if (!x.valid()) return x;
  if (x.shape() == shape) return x;
  return x.b->Op1("broadcast_to", {x}, Attrs{{"shape", detail::DimsOf(shape)}});
}

Value BroadcastInAxes(Value x, Shape shape, const std::vector<int64_t>& axes) {
  if (!x.valid()) return x;
  if (axes.empty()) return BroadcastTo(x, shape);
  return x.b->Op1("broadcast_to", {x}, Attrs{{"shape", detail::DimsOf(shape)}, {"axes", axes}});
}

CF_REGISTER_OP(BroadcastToDef());
CF_REGISTER_KERNEL("broadcast_to", kCPU, BroadcastToCpu);

}  // namespace cf
