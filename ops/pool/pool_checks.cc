// Shared shape rules and VJP of the pool family (declared in pool_checks.h).
#include "ops/pool/pool_checks.h"

#include "graph/builder.h"

namespace cf::pool_internal {

StatusOr<std::vector<int64_t>> SizeAttr(const Attrs& a, const std::string& name) {
  CF_CHECK_ARG(a.Has(name), "missing attribute '", name, "' ([oh, ow])");
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> s, PairAttr(a, name, {}));
  CF_CHECK_ARG(s[0] >= 1 && s[1] >= 1, name, " must be >= 1, got ", s[0], "x", s[1]);
  return s;
}

StatusOr<std::vector<int64_t>> InputHwAttr(const Attrs& a) {
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> hw, a.RequireInts("input_hw"));
  CF_CHECK_ARG(hw.size() == 2 && hw[0] >= 1 && hw[1] >= 1, "input_hw must be [H, W] >= 1");
  return hw;
}

StatusOr<std::vector<TensorType>> ResampledTypes(const TensorType& x, const Attrs& a, const std::string& size_attr) {
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> s, SizeAttr(a, size_attr));
  CF_CHECK_ARG(x.shape[1] >= 1 && x.shape[2] >= 1, "input spatial size must be >= 1, got ", x.shape.ToString());
  return std::vector<TensorType>{{Shape({x.shape[0], s[0], s[1], x.shape[3]}), x.dtype}};
}

StatusOr<std::vector<TensorType>> InferResampledBackward(const OpCall& c) {
  const TensorType& dy = c.inputs[0];
  CF_RETURN_IF_ERROR(CheckNhwc(dy, "dy"));
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> hw, InputHwAttr(c.attrs));
  CF_CHECK_ARG(dy.shape[1] >= 1 && dy.shape[2] >= 1, "dy spatial size must be >= 1, got ", dy.shape.ToString());
  return std::vector<TensorType>{{Shape({dy.shape[0], hw[0], hw[1], dy.shape[3]}), dy.dtype}};
}

StatusOr<std::vector<Value>> BackwardWithInputHw(VjpContext& ctx, const char* backward_op, Attrs attrs) {
  const Shape& x = ctx.inputs[0].shape();
  attrs.Set("input_hw", std::vector<int64_t>{x[1], x[2]});
  return std::vector<Value>{ctx.b.Op1(backward_op, {ctx.grad_outputs[0]}, attrs)};
}

}  // namespace cf::pool_internal
