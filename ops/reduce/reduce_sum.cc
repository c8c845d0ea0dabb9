// sum and mean over chosen axes. Attributes: axes (ints, negative allowed;
// empty or absent: all axes), keepdim (bool, default false). CPU kernels use
// the reduction engine (reduce_sum_cpu.cc); CUDA kernels in reduce_sum.cu.
#include "ops/cpu_util.h"
#include "ops/elementwise/broadcast_to.h"
#include "ops/elementwise/elementwise.h"
#include "ops/elementwise/value_util.h"
#include "ops/reduce/reduce.h"
#include "ops/reduce/reduce_plan.h"
#include "ops/reduce/reduce_sum_cpu.h"

namespace cf {

StatusOr<uint32_t> ReduceMask(absl::Span<const int64_t> axes, int rank) {
  if (axes.empty()) return rank == 0 ? 0u : static_cast<uint32_t>((uint64_t{1} << rank) - 1);
  uint32_t mask = 0;
  for (int64_t a : axes) {
    const int d = (a < -rank || a >= rank) ? -1 : NormalizeAxis(static_cast<int>(a), rank);
    CF_CHECK_ARG(d >= 0, "axis ", a, " is out of range for rank ", rank);
    CF_CHECK_ARG(((mask >> d) & 1u) == 0, "axis ", a, " is repeated");
    mask |= 1u << d;
  }
  return mask;
}

namespace {

// The output shape: reduced axes dropped, or kept as 1 with keepdim.
Shape ReducedShape(const Shape& x, uint32_t mask, bool keepdim) {
  Shape out;
  for (int d = 0; d < x.rank(); ++d) {
    if (((mask >> d) & 1u) == 0) out.push_back(x[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

StatusOr<std::vector<TensorType>> InferReduce(const OpCall& c) {
  CF_RETURN_IF_ERROR(detail::CheckSameFloat(c.inputs));
  CF_ASSIGN_OR_RETURN(uint32_t mask, ReduceMask(c.attrs.Ints("axes"), c.inputs[0].shape.rank()));
  return std::vector<TensorType>{{ReducedShape(c.inputs[0].shape, mask, c.attrs.Bool("keepdim", false)),
                                  c.inputs[0].dtype}};
}

// sum: L - 1 additions per output of L inputs, i.e. numel(x) - numel(out);
// mean: the same plus 1 division per output.
Cost CostReduce(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  const int64_t in = c.inputs[0].shape.numel(), out = outs[0].shape.numel();
  cost.elementwise_flops = std::max<int64_t>(0, in - out);
  if (c.op == "mean") cost.elementwise_flops += out;
  return cost;
}

template <bool kMean>
Status ReduceCpu(KernelContext& ctx) {
  const Tensor& x = ctx.inputs[0];
  CF_ASSIGN_OR_RETURN(uint32_t mask, ReduceMask(ctx.attrs.Ints("axes"), x.shape().rank()));
  const double scale = kMean ? MeanScale(x.numel(), ctx.outputs[0].numel()) : 1.0;
  return ReduceSumCpu(x, mask, scale, ctx.outputs[0]);
}

// The gradient is dy broadcast back over the reduced axes (divided by L for mean).
template <bool kMean>
StatusOr<std::vector<Value>> ReduceVjp(VjpContext& c) {
  Value dy = c.grad_outputs[0];
  if (!dy.valid() || !c.needs_grad[0]) return std::vector<Value>(1);
  const Value x = c.inputs[0];
  CF_ASSIGN_OR_RETURN(uint32_t mask, ReduceMask(c.attrs.Ints("axes"), x.rank()));
  if (kMean) {
    const double scale = MeanScale(x.shape().numel(), dy.shape().numel());
    if (scale > 0) dy = Scale(dy, scale);
  }
  if (c.attrs.Bool("keepdim", false)) return std::vector<Value>{BroadcastTo(dy, x.shape())};
  std::vector<int64_t> axes;
  for (int d = 0; d < x.rank(); ++d)
    if ((mask >> d) & 1u) axes.push_back(d);
  if (axes.empty()) return std::vector<Value>{dy};
  return std::vector<Value>{BroadcastInAxes(dy, x.shape(), axes)};
}

OpDef ReduceDef(const char* name, bool mean) {
  return {.name = name, .min_inputs = 1, .max_inputs = 1, .infer = InferReduce, .cost = CostReduce,
          .vjp = mean ? VjpFn(ReduceVjp<true>) : VjpFn(ReduceVjp<false>),
          .doc = mean ? "mean over `axes` (all when empty), optionally keeping them as size 1"
                      : "sum over `axes` (all when empty), optionally keeping them as size 1"};
}

Value Reduce(const char* op, Value x, std::vector<int64_t> axes, bool keepdim) {
  if (!x.valid()) return x;
  return x.b->Op1(op, {x}, Attrs{{"axes", std::move(axes)}, {"keepdim", keepdim}});
}

}  // namespace

Value Sum(Value x, std::vector<int64_t> axes, bool keepdim) { return Reduce("sum", x, std::move(axes), keepdim); }
Value Mean(Value x, std::vector<int64_t> axes, bool keepdim) { return Reduce("mean", x, std::move(axes), keepdim); }

CF_REGISTER_OP(ReduceDef("sum", false));
CF_REGISTER_OP(ReduceDef("mean", true));
CF_REGISTER_KERNEL("sum", kCPU, ReduceCpu<false>);
CF_REGISTER_KERNEL("mean", kCPU, ReduceCpu<true>);

}  // namespace cf
