// Shared checks, shape rules, VJP and builder call of the norm family
// (declared in norm_common.h).
#include "ops/norm/norm_common.h"

#include "graph/builder.h"
#include "ops/norm/norm_internal.h"

namespace cf::norm_internal {

Status CheckEpsAndAffine(const OpCall& c, const TensorType& x, int gamma_index, const char* channels) {
  CF_CHECK_ARG(EpsOf(c.attrs) >= 0, "eps must be >= 0");
  if (gamma_index < 0) return absl::OkStatus();
  const int64_t ch = x.shape.dim(-1);
  for (int i = gamma_index; i < static_cast<int>(c.inputs.size()); ++i) {
    const TensorType& p = c.inputs[i];
    const char* what = i == gamma_index ? "gamma" : "beta";
    CF_CHECK_ARG(p.shape == Shape({ch}), what, " must be [", ch, "] (", channels, " ", x.shape.ToString(), "), got ",
                 p.shape.ToString());
    CF_CHECK_ARG(p.dtype == x.dtype, what, " dtype ", DTypeName(p.dtype), " differs from x dtype ", DTypeName(x.dtype));
  }
  return absl::OkStatus();
}

Cost AffineNormCost(const OpCall& c, absl::Span<const TensorType> outs, int64_t groups) {
  Cost cost = IoBytes(c.inputs, outs);
  const int64_t e = c.inputs[0].shape.numel();
  cost.elementwise_flops = 6 * e + groups + (c.inputs.size() == 3 ? 2 * e : 0);
  cost.transcendentals = groups;
  return cost;
}

StatusOr<std::vector<TensorType>> InferAffineNorm(const OpCall& c, const AffineArgsCheck& check) {
  CF_CHECK_ARG(c.inputs.size() == 1 || c.inputs.size() == 3,
               "expects x alone or x, gamma, beta (gamma and beta are optional together)");
  CF_RETURN_IF_ERROR(check(1));
  return std::vector<TensorType>{c.inputs[0]};
}

StatusOr<std::vector<TensorType>> InferAffineNormBackward(const OpCall& c, const AffineArgsCheck& check) {
  CF_CHECK_ARG(c.inputs.size() == 2 || c.inputs.size() == 3, "expects x, dy [, gamma]");
  const TensorType& x = c.inputs[0];
  CF_RETURN_IF_ERROR(check(c.inputs.size() == 3 ? 2 : -1));
  CF_CHECK_ARG(c.inputs[1] == x, "dy ", c.inputs[1].ToString(), " must have x's type ", x.ToString());
  std::vector<TensorType> outs{x};
  if (c.inputs.size() == 3) {
    outs.push_back(c.inputs[2]);
    outs.push_back(c.inputs[2]);
  }
  return outs;
}

StatusOr<std::vector<Value>> GradsFromBackwardOp(VjpContext& ctx, const char* backward_op,
                                                 const std::vector<Value>& ins, Attrs attrs) {
  std::vector<Value> g = ctx.b.Op(backward_op, ins, attrs);
  if (g.empty()) return ctx.b.status();
  std::vector<Value> result(ctx.inputs.size());
  for (size_t i = 0; i < result.size(); ++i)
    if (ctx.needs_grad[i]) result[i] = g[i];
  return result;
}

StatusOr<std::vector<Value>> AffineNormVjp(VjpContext& ctx, const char* backward_op, Attrs attrs) {
  std::vector<Value> ins{ctx.inputs[0], ctx.grad_outputs[0]};
  if (ctx.inputs.size() == 3) ins.push_back(ctx.inputs[1]);
  return GradsFromBackwardOp(ctx, backward_op, ins, std::move(attrs));
}

Value AffineNormOp(const char* api, const char* op, Value x, const std::optional<Value>& gamma,
                   const std::optional<Value>& beta, Attrs attrs) {
  if (x.b == nullptr) return {};
  Builder& b = *x.b;
  if (gamma.has_value() != beta.has_value()) {
    b.Fail(absl::InvalidArgumentError(absl::StrCat(api, ": gamma and beta must both be given or both be absent")));
    return {};
  }
  std::vector<Value> ins{x};
  if (gamma) ins.insert(ins.end(), {*gamma, *beta});
  return b.Op1(op, ins, attrs);
}

}  // namespace cf::norm_internal
