#include "graph/autodiff.h"

namespace cf {

StatusOr<std::vector<Value>> Gradients(Builder& b, const std::vector<Value>& ys, const std::vector<Value>& dys,
                                       const std::vector<Value>& wrt) {
  CF_CHECK_ARG(ys.size() == dys.size(), "Gradients: ", ys.size(), " outputs but ", dys.size(), " seeds");
  CF_RETURN_IF_ERROR(b.status());
  const Graph& g = b.graph();
  // Only nodes that exist now are differentiated (the backward nodes we add
  // are appended after them).
  const int num_nodes = g.num_nodes();
  const int num_values = g.num_values();

  // Values that depend on a trainable wrt (forward reachability).
  std::vector<bool> depends(num_values, false);
  for (const Value& w : wrt) {
    CF_CHECK_ARG(w.valid() && w.b == &b, "Gradients: a wrt value is not of this graph");
    const ValueInfo& info = g.value(w.id);
    if (!(info.kind == ValueKind::kParameter && info.frozen)) depends[w.id] = true;
  }
  for (int i = 0; i < num_nodes; ++i) {
    const Node& n = g.node(i);
    bool any = false;
    for (int in : n.inputs) any = any || depends[in];
    if (any)
      for (int out : n.outputs) depends[out] = true;
  }
  // Values the seeded outputs depend on (backward reachability).
  std::vector<bool> needed(num_values, false);
  for (size_t k = 0; k < ys.size(); ++k) {
    CF_CHECK_ARG(ys[k].valid() && dys[k].valid() && ys[k].type() == dys[k].type(), "Gradients: seed ", k,
                 " must be a value of type ", ys[k].valid() ? ys[k].type().ToString() : "?");
    needed[ys[k].id] = true;
  }
  for (int i = num_nodes - 1; i >= 0; --i) {
    const Node& n = g.node(i);
    bool any = false;
    for (int out : n.outputs) any = any || needed[out];
    if (any)
      for (int in : n.inputs) needed[in] = true;
  }

  std::vector<Value> grad(num_values);
  auto accumulate = [&](int id, Value gv) {
    if (!gv.valid()) return;
    grad[id] = grad[id].valid() ? b.Op1("add", {grad[id], gv}) : gv;
  };
  for (size_t k = 0; k < ys.size(); ++k) accumulate(ys[k].id, dys[k]);

  for (int i = num_nodes - 1; i >= 0; --i) {
    // Copy: the builder appends to the node list while we work.
    const Node n = g.node(i);
    bool has_grad = false;
    for (int out : n.outputs) has_grad = has_grad || grad[out].valid();
    std::vector<bool> needs(n.inputs.size());
    bool any_needs = false;
    for (size_t j = 0; j < n.inputs.size(); ++j) {
      needs[j] = depends[n.inputs[j]] && needed[n.inputs[j]];
      any_needs = any_needs || needs[j];
    }
    if (!has_grad || !any_needs) continue;
    if (!n.op->vjp) {
      return absl::UnimplementedError(absl::StrCat("Gradients: op '", n.op->name, "' (scope '", n.scope,
                                                   "') has no VJP, but a gradient must flow through it"));
    }
    // Backward nodes are built in their forward node's scope, so accounting by
    // module includes the module's backward work.
    auto in_scope = b.absolute_scope(n.scope);
    VjpContext ctx{b, n.attrs, {}, {}, {}, needs};
    for (int in : n.inputs) ctx.inputs.push_back(b.Wrap(in));
    for (int out : n.outputs) {
      ctx.outputs.push_back(b.Wrap(out));
      ctx.grad_outputs.push_back(grad[out]);
    }
    CF_ASSIGN_OR_RETURN(std::vector<Value> gin, n.op->vjp(ctx));
    CF_RETURN_IF_ERROR(b.status());
    if (gin.size() != n.inputs.size()) {
      return absl::InternalError(absl::StrCat("Gradients: VJP of '", n.op->name, "' returned ", gin.size(),
                                              " gradients for ", n.inputs.size(), " inputs"));
    }
    for (size_t j = 0; j < gin.size(); ++j) {
      if (!needs[j] || !gin[j].valid()) continue;
      const TensorType& want = g.value(n.inputs[j]).type;
      if (!(gin[j].type() == want)) {
        return absl::InternalError(absl::StrCat("Gradients: VJP of '", n.op->name, "' (scope '", n.scope,
                                                "') gave ", gin[j].type().ToString(), " for input ", j,
                                                " of type ", want.ToString()));
      }
      accumulate(n.inputs[j], gin[j]);
    }
    CF_RETURN_IF_ERROR(b.status());
  }
  std::vector<Value> result;
  for (const Value& w : wrt) result.push_back(depends[w.id] ? grad[w.id] : Value{});
  return result;
}

StatusOr<std::vector<Value>> Grad(Builder& b, Value loss, const std::vector<Value>& wrt) {
  CF_CHECK_ARG(loss.valid() && loss.shape().numel() == 1, "Grad: the loss must be a one-element value, got ",
               loss.valid() ? loss.type().ToString() : "an invalid value");
  Value one = b.Op1("full", {}, Attrs{{"shape", std::vector<int64_t>(loss.shape().dims().begin(),
                                                                     loss.shape().dims().end())},
                                      {"dtype", loss.dtype()},
                                      {"value", 1.0}});
  CF_RETURN_IF_ERROR(b.status());
  return Gradients(b, {loss}, {one}, wrt);
}

std::vector<Value> TrainableParameters(Builder& b) {
  std::vector<Value> out;
  for (int id : b.graph().Parameters())
    if (!b.graph().value(id).frozen) out.push_back(b.Wrap(id));
  return out;
}

}  // namespace cf
