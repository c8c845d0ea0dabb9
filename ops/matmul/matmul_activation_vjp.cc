// ActivationVjp: the matmul epilogue's backward goes through the activation
// family's own VJP (ops/activation), called directly with the recomputed
// pre-activation z as its input and the matmul's output as its output.
#include "ops/matmul/matmul_vjp_util.h"

namespace cf {

StatusOr<Value> ActivationVjp(Builder& b, const std::string& act, Value z, Value y, Value g) {
  // The activation op and attributes that compute our epilogue's function.
  std::string op;
  Attrs attrs;
  if (act == "gelu") {
    op = "gelu";
  } else if (act == "gelu_tanh") {
    op = "gelu";
    attrs.Set("approximate", std::string("tanh"));
  } else if (act == "silu") {
    op = "silu";
  } else {
    return absl::InvalidArgumentError(absl::StrCat("matmul: no VJP for activation '", act, "'"));
  }
  const OpDef* def = OpRegistry::Global().Find(op);
  if (def == nullptr || !def->vjp)
    return absl::UnimplementedError(absl::StrCat("matmul: the activation op '", op, "' (with a VJP) is not registered"));
  VjpContext ctx{b, attrs, {z}, {y}, {g}, {true}};
  CF_ASSIGN_OR_RETURN(std::vector<Value> gz, def->vjp(ctx));
  if (gz.empty() || !gz[0].valid())
    return absl::InternalError(absl::StrCat("matmul: the VJP of '", op, "' returned no gradient"));
  return gz[0];
}

}  // namespace cf
