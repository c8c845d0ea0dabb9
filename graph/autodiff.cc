#include "graph/autodiff.h"

#include "runtime/dtype.h"

namespace cf {
namespace {

// Gradients() proper. The caller holds a Builder::backward_section(), so every
// node built here is marked Node::backward.
StatusOr<std::vector<Value>> Backward(Builder& b, const std::vector<Value>& ys, const std::vector<Value>& dys,
                                      const std::vector<Value>& wrt) {
  CF_CHECK_ARG(ys.size() == dys.size(), "Gradients: ", ys.size(), " outputs but ", dys.size(), " seeds");
  CF_RETURN_IF_ERROR(b.status());
  const Graph& g = b.graph();
  // Only nodes that exist now are differentiated (the backward nodes we add
  // are appended after them).
  const int num_nodes = g.num_nodes();
  const int num_values = g.num_values();

  // depends[v]: v depends on a wrt that takes a gradient (forward reachability).
  // Frozen parameters start nothing, so work that only they feed is pruned.
  std::vector<bool> depends(num_values, false);
  for (const Value& w : wrt) {
    CF_CHECK_ARG(w.valid() && w.b == &b, "Gradients: a wrt value is not of this graph");
    const ValueInfo& info = g.value(w.id);
    if (!(info.kind == ValueKind::kParameter && info.frozen) && IsFloating(info.type.dtype)) depends[w.id] = true;
  }
  for (int i = 0; i < num_nodes; ++i) {
    const Node& n = g.node(i);
    bool any = false;
    for (int in : n.inputs) any = any || depends[in];
    if (any)
      for (int out : n.outputs) depends[out] = true;
  }
  // needed[v]: a seeded output depends on v (backward reachability).
  std::vector<bool> needed(num_values, false);
  for (size_t k = 0; k < ys.size(); ++k) {
    CF_CHECK_ARG(ys[k].valid() && ys[k].b == &b && dys[k].valid() && dys[k].b == &b, "Gradients: output ", k,
                 " or its seed is not a value of this graph");
    CF_CHECK_ARG(ys[k].type() == dys[k].type(), "Gradients: the seed of output ", k, " must be ",
                 ys[k].type().ToString(), ", got ", dys[k].type().ToString());
    needed[ys[k].id] = true;
  }
  for (int i = num_nodes - 1; i >= 0; --i) {
    const Node& n = g.node(i);
    bool any = false;
    for (int out : n.outputs) any = any || needed[out];
    if (any)
      for (int in : n.inputs) needed[in] = true;
  }

  // Fan-out: a value read by several nodes sums their contributions.
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
      // Integer values (indices, masks) carry no gradient.
      const int in = n.inputs[j];
      needs[j] = depends[in] && needed[in] && IsFloating(g.value(in).type.dtype);
      any_needs = any_needs || needs[j];
    }
    if (!has_grad || !any_needs) continue;
    if (!n.op->vjp) {
      std::string types;
      for (int in : n.inputs) absl::StrAppend(&types, types.empty() ? "" : ", ", g.value(in).type.ToString());
      return absl::UnimplementedError(absl::StrCat("Gradients: op '", n.op->name, "' (node ", n.id, ", scope '",
                                                   n.scope, "', inputs ", types,
                                                   ") has no VJP, but a gradient must flow through it"));
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
    auto gin = n.op->vjp(ctx);
    if (!gin.ok()) {
      return absl::Status(gin.status().code(), absl::StrCat("Gradients: VJP of '", n.op->name, "' (node ", n.id,
                                                            ", scope '", n.scope, "'): ", gin.status().message()));
    }
    CF_RETURN_IF_ERROR(b.status());
    if (gin->size() != n.inputs.size()) {
      return absl::InternalError(absl::StrCat("Gradients: VJP of '", n.op->name, "' returned ", gin->size(),
                                              " gradients for ", n.inputs.size(), " inputs"));
    }
    for (size_t j = 0; j < gin->size(); ++j) {
      const Value& gj = (*gin)[j];
      if (!needs[j] || !gj.valid()) continue;
      const TensorType& want = g.value(n.inputs[j]).type;
      if (!(gj.type() == want)) {
        return absl::InternalError(absl::StrCat("Gradients: VJP of '", n.op->name, "' (scope '", n.scope,
                                                "') gave ", gj.type().ToString(), " for input ", j, " of type ",
                                                want.ToString()));
      }
      accumulate(n.inputs[j], gj);
    }
    CF_RETURN_IF_ERROR(b.status());
  }
  std::vector<Value> result;
  for (const Value& w : wrt) result.push_back(depends[w.id] ? grad[w.id] : Value{});
  return result;
}

}  // namespace

StatusOr<std::vector<Value>> Gradients(Builder& b, const std::vector<Value>& ys, const std::vector<Value>& dys,
                                       const std::vector<Value>& wrt) {
  auto backward = b.backward_section();
  return Backward(b, ys, dys, wrt);
}

StatusOr<std::vector<Value>> Grad(Builder& b, Value loss, const std::vector<Value>& wrt) {
  CF_RETURN_IF_ERROR(b.status());
  CF_CHECK_ARG(loss.valid() && loss.b == &b && loss.shape().numel() == 1,
               "Grad: the loss must be a one-element value of this graph, got ",
               loss.valid() ? loss.type().ToString() : "an invalid value");
  auto backward = b.backward_section();  // the seed is backward work too
  const Shape shape = loss.shape();
  Value one = b.Op1("full", {}, Attrs{{"shape", std::vector<int64_t>(shape.dims().begin(), shape.dims().end())},
                                      {"dtype", loss.dtype()},
                                      {"value", 1.0}});
  CF_RETURN_IF_ERROR(b.status());
  return Backward(b, {loss}, {one}, wrt);
}

std::vector<Value> TrainableParameters(Builder& b) {
  std::vector<Value> out;
  for (int id : b.graph().Parameters())
    if (!b.graph().value(id).frozen) out.push_back(b.Wrap(id));
  return out;
}

}  // namespace cf
