// sum_to: sums x down to a shape that broadcasts to x's shape (the VJP of a
// broadcast). Attribute: shape (ints). The CPU kernel is the reduction engine
// of ops/reduce; the CUDA one is in sum_to.cu.
#include "ops/cpu_util.h"
#include "ops/elementwise/elementwise.h"
#include "ops/elementwise/sum_to_mask.h"
#include "ops/elementwise/value_util.h"
#include "ops/reduce/reduce_sum_cpu.h"

namespace cf {

uint32_t SumToMask(const Shape& x, const Shape& target) {
  uint32_t mask = 0;
  const int off = x.rank() - target.rank();
  for (int d = 0; d < x.rank(); ++d)
    if (d < off || (target[d - off] == 1 && x[d] != 1)) mask |= 1u << d;
  return mask;
}

namespace {

StatusOr<std::vector<TensorType>> InferSumTo(const OpCall& c) {
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> dims, c.attrs.RequireInts("shape"));
  const Shape target(dims);
  CF_RETURN_IF_ERROR(detail::CheckSameFloat(c.inputs));
  CF_CHECK_ARG(BroadcastsTo(target, c.inputs[0].shape), "target shape ", target.ToString(),
               " does not broadcast to the input shape ", c.inputs[0].shape.ToString());
  return std::vector<TensorType>{{target, c.inputs[0].dtype}};
}

// Each output sums L inputs with L - 1 additions: elementwise = numel(x) - numel(out).
Cost CostSumTo(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  cost.elementwise_flops = std::max<int64_t>(0, c.inputs[0].shape.numel() - outs[0].shape.numel());
  return cost;
}

Status SumToCpu(KernelContext& ctx) {
  const uint32_t mask = SumToMask(ctx.inputs[0].shape(), ctx.outputs[0].shape());
  return ReduceSumCpu(ctx.inputs[0], mask, 1.0, ctx.outputs[0]);
}

StatusOr<std::vector<Value>> SumToVjp(VjpContext& c) {
  if (!c.grad_outputs[0].valid() || !c.needs_grad[0]) return std::vector<Value>(1);
  return std::vector<Value>{BroadcastTo(c.grad_outputs[0], c.inputs[0].shape())};
}

OpDef SumToDef() {
  return {.name = "sum_to", .min_inputs = 1, .max_inputs = 1, .infer = InferSumTo, .cost = CostSumTo, .vjp = SumToVjp,
          .doc = "x summed over its broadcast dimensions down to `shape` (numpy rules)"};
}

}  // namespace

Value SumTo(Value x, Shape shape) {
  if (!x.valid()) return x;
  if (x.shape() == shape) return x;
  return x.b->Op1("sum_to", {x}, Attrs{{"shape", detail::DimsOf(shape)}});
}

CF_REGISTER_OP(SumToDef());
CF_REGISTER_KERNEL("sum_to", kCPU, SumToCpu);

}  // namespace cf
