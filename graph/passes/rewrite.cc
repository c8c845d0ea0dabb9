#include "graph/passes/rewrite.h"

#include <algorithm>

namespace cf {

namespace {
bool IsLeaf(const ValueInfo& v) { return v.kind != ValueKind::kIntermediate; }
}  // namespace

GraphRewriter::GraphRewriter(const Graph& old) : old_(old), map_(old.num_values(), -1) {
  new_.set_build_status(old.build_status());
}

int GraphRewriter::CopyValue(const ValueInfo& v) {
  ValueInfo c = v;
  c.producer = -1;
  c.output_index = 0;
  c.is_output = false;  // set by Finish, from the old outputs
  c.output_name.clear();
  c.output_position = -1;
  return new_.AddValue(std::move(c));
}

void GraphRewriter::CopyLeavesBefore(int end) {
  end = std::min(end, old_.num_values());
  for (; leaf_cursor_ < end; ++leaf_cursor_) {
    const ValueInfo& v = old_.value(leaf_cursor_);
    if (IsLeaf(v) && map_[v.id] < 0) map_[v.id] = CopyValue(v);
  }
}

int GraphRewriter::Map(int old_value) {
  if (old_value < 0 || old_value >= old_.num_values()) return -1;
  if (map_[old_value] < 0 && IsLeaf(old_.value(old_value))) CopyLeavesBefore(old_value + 1);
  return map_[old_value];
}

void GraphRewriter::Alias(int old_value, int new_value) { map_[old_value] = new_value; }

Status GraphRewriter::Copy(int old_node) {
  const Node& n = old_.node(old_node);
  Node c = n;
  for (int& in : c.inputs) {
    const int mapped = Map(in);
    if (mapped < 0)
      return absl::InternalError(absl::StrCat("graph rewrite: ", n.op->name, " (node ", n.id, ", scope '", n.scope,
                                              "') reads %", in, ", whose producer a pass dropped"));
    in = mapped;
  }
  if (!n.outputs.empty()) CopyLeavesBefore(*std::min_element(n.outputs.begin(), n.outputs.end()));
  c.outputs.clear();
  for (int out : n.outputs) {
    const int id = CopyValue(old_.value(out));
    map_[out] = id;
    c.outputs.push_back(id);
  }
  new_.AddNode(std::move(c));
  return absl::OkStatus();
}

StatusOr<int> GraphRewriter::Emit(Node n, const std::vector<int>& old_outputs) {
  if (n.op == nullptr) return absl::InternalError("graph rewrite: Emit without an op");
  std::vector<TensorType> in_types;
  for (int in : n.inputs) {
    if (in < 0 || in >= new_.num_values())
      return absl::InternalError(absl::StrCat("graph rewrite: ", n.op->name, " (scope '", n.scope,
                                              "') reads a value that is not in the new graph (%", in, ")"));
    in_types.push_back(new_.value(in).type);
  }
  auto inferred = InferOp(*n.op, n.attrs, in_types);
  if (!inferred.ok())
    return absl::InternalError(absl::StrCat("graph rewrite: the emitted ", n.op->name, " (scope '", n.scope,
                                            "') fails its shape rule: ", inferred.status().message()));
  if (inferred->size() != old_outputs.size())
    return absl::InternalError(absl::StrCat("graph rewrite: the emitted ", n.op->name, " has ", inferred->size(),
                                            " outputs, given ", old_outputs.size(), " old values"));
  for (size_t i = 0; i < old_outputs.size(); ++i) {
    const TensorType& want = old_.value(old_outputs[i]).type;
    if (!((*inferred)[i] == want))
      return absl::InternalError(absl::StrCat("graph rewrite: the emitted ", n.op->name, " (scope '", n.scope,
                                              "') makes ", (*inferred)[i].ToString(), " for %", old_outputs[i],
                                              ", which is ", want.ToString()));
  }
  if (!old_outputs.empty()) CopyLeavesBefore(*std::min_element(old_outputs.begin(), old_outputs.end()));
  n.outputs.clear();
  for (int out : old_outputs) {
    const int id = CopyValue(old_.value(out));
    map_[out] = id;
    n.outputs.push_back(id);
  }
  return new_.AddNode(std::move(n));
}

StatusOr<Graph> GraphRewriter::Finish() {
  CopyLeavesBefore(old_.num_values());
  const std::vector<int> outs = old_.Outputs();
  for (size_t i = 0; i < outs.size(); ++i) {
    const ValueInfo& o = old_.value(outs[i]);
    const int id = Map(o.id);
    if (id < 0)
      return absl::InternalError(absl::StrCat("graph rewrite: output '", o.output_name, "' (%", o.id,
                                              ") was dropped by a pass"));
    ValueInfo& v = new_.mutable_value(id);
    if (v.is_output)
      return absl::InternalError(absl::StrCat("graph rewrite: outputs '", v.output_name, "' and '", o.output_name,
                                              "' would be one value"));
    v.is_output = true;
    v.output_name = o.output_name;
    v.output_position = static_cast<int>(i);
  }
  CF_RETURN_IF_ERROR(new_.Verify());
  return std::move(new_);
}

void Absorb(const Node& removed, std::vector<AbsorbedCost>* into) {
  Cost c = removed.cost;
  c.bytes_read = c.bytes_written = 0;
  into->push_back({.scope = removed.scope, .cost = c, .backward = removed.backward, .update = removed.update,
                   .op = removed.op != nullptr ? removed.op->name : ""});
  into->insert(into->end(), removed.absorbed.begin(), removed.absorbed.end());
}

Cost FusedCost(const Cost& primary, const Cost& fused_rule) {
  Cost c = primary;
  c.bytes_read = fused_rule.bytes_read;
  c.bytes_written = fused_rule.bytes_written;
  return c;
}

Cost FlopsWithAbsorbed(const Node& n) {
  Cost c = n.cost;
  for (const AbsorbedCost& a : n.absorbed) c += a.cost;
  c.bytes_read = c.bytes_written = 0;
  return c;
}

}  // namespace cf
