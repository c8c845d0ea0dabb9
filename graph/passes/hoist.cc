#include "graph/passes/hoist.h"

namespace cf {

int HoistPlan::count() const {
  int n = 0;
  for (bool r : remove) n += r;
  return n;
}

HoistPlan PlanHoisting(const Graph& g) {
  HoistPlan h;
  h.remove.assign(g.num_nodes(), false);
  h.prelude.assign(g.num_nodes(), false);
  std::vector<bool> stable(g.num_values(), false);  // the same values at every run
  for (const ValueInfo& v : g.values())
    stable[v.id] = v.kind == ValueKind::kParameter || v.kind == ValueKind::kConstant;
  std::vector<int> view_of(g.num_values(), -1);  // a stable view's node
  for (const Node& n : g.nodes()) {  // a topological order: producers first
    bool all = !n.inputs.empty() && !n.op->stateful;  // a random op differs at every run
    for (int in : n.inputs) all = all && stable[in];
    for (int out : n.outputs) all = all && !g.value(out).is_output;
    if (!all) continue;
    for (int out : n.outputs) stable[out] = true;
    if (n.op->view_of_input0) {
      const int src = g.value(n.inputs[0]).producer;
      h.remove[n.id] = src >= 0 && h.remove[src];  // a view of a hoisted buffer goes with it
      h.prelude[n.id] = h.remove[n.id];
      view_of[n.outputs[0]] = n.id;
      continue;
    }
    h.remove[n.id] = h.prelude[n.id] = true;
    // The views of leaves it reads are bound by the prelude as well.
    std::vector<int> pending(n.inputs.begin(), n.inputs.end());
    while (!pending.empty()) {
      const int v = pending.back();
      pending.pop_back();
      if (view_of[v] < 0 || h.prelude[view_of[v]]) continue;
      h.prelude[view_of[v]] = true;
      for (int in : g.node(view_of[v]).inputs) pending.push_back(in);
    }
  }
  return h;
}

Graph WithoutNodes(const Graph& g, const std::vector<bool>& remove, std::vector<int>* node_of) {
  Graph r;
  r.set_build_status(g.build_status());
  for (const ValueInfo& v : g.values()) {
    ValueInfo c = v;
    if (c.producer >= 0 && remove[c.producer]) {
      c.kind = ValueKind::kConstant;
      c.producer = -1;
      c.output_index = 0;
      c.name = absl::StrCat("(hoisted %", v.id, ")");
    }
    r.AddValue(std::move(c));
  }
  if (node_of != nullptr) node_of->clear();
  for (const Node& n : g.nodes()) {
    if (remove[n.id]) continue;
    if (node_of != nullptr) node_of->push_back(n.id);
    r.AddNode(n);
  }
  return r;
}

}  // namespace cf
