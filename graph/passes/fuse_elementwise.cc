#include "graph/passes/fuse_elementwise.h"

#include <algorithm>

#include "graph/passes/rewrite.h"
#include "ops/fused/fused_elementwise.h"

namespace cf {
namespace {

bool Fusable(const Node& n) {
  return n.op != nullptr && n.outputs.size() == 1 && !n.inputs.empty() && IsFusableElementwise(n.op->name, n.attrs);
}

// Constants an instruction of `n` takes (fused_program.cc's table: scale 2,
// leaky_relu / elu and their backward ops 1).
int ParamsOf(const Node& n) {
  const std::string& op = n.op->name;
  if (op == "scale") return 2;
  if (op == "leaky_relu" || op == "elu" || op == "leaky_relu_backward" || op == "elu_backward") return 1;
  return 0;
}

// A fusion: the tree's nodes (ascending ids; the last is the root) and its
// inputs (old values produced outside the tree), in the order first read.
struct Group {
  std::vector<int> nodes;
  std::vector<int> inputs;
};

// Grows the tree rooted at node `root` towards its inputs: a producer joins
// when it is fusable, not yet taken, makes a value of the root's shape (a
// smaller operand, e.g. sigmoid of a pooled [B, 1, 1, C], stays its own node
// rather than being recomputed per output element), whose only reader is
// the tree node that reads it, which is not a graph output, and the limits
// of one fused node still hold.
Group Grow(const Graph& g, int root, const std::vector<std::vector<int>>& consumers, std::vector<bool>& taken) {
  const Node& r = g.node(root);
  const Shape& shape = g.value(r.outputs[0]).type.shape;
  std::vector<int> members = {root};
  std::vector<int> ext;  // distinct external values
  auto add_inputs = [&](const Node& n) {
    for (int v : n.inputs)
      if (std::find(ext.begin(), ext.end(), v) == ext.end()) ext.push_back(v);
  };
  add_inputs(r);
  int params = ParamsOf(r);
  taken[root] = true;
  for (size_t k = 0; k < members.size(); ++k) {
    const Node& m = g.node(members[k]);
    for (int v : m.inputs) {
      const ValueInfo& val = g.value(v);
      if (val.kind != ValueKind::kIntermediate || val.is_output || !(val.type.shape == shape)) continue;
      const int p = val.producer;
      if (p < 0 || taken[p] || !Fusable(g.node(p))) continue;
      if (std::any_of(consumers[v].begin(), consumers[v].end(), [&](int c) { return c != m.id; })) continue;
      if (std::find(ext.begin(), ext.end(), v) == ext.end()) continue;  // already inside (read twice)
      // The tree with p: v becomes internal, p's inputs external.
      std::vector<int> next = ext;
      next.erase(std::find(next.begin(), next.end(), v));
      for (int w : g.node(p).inputs)
        if (std::find(next.begin(), next.end(), w) == next.end()) next.push_back(w);
      const int instrs = static_cast<int>(next.size() + members.size() + 1);
      const int np = params + ParamsOf(g.node(p));
      if (static_cast<int>(next.size()) > fused::kMaxInputs || instrs > fused::kMaxInstrs || np > fused::kMaxConsts)
        continue;
      ext = std::move(next);
      params = np;
      members.push_back(p);
      taken[p] = true;
    }
  }
  Group grp;
  grp.nodes = members;
  std::sort(grp.nodes.begin(), grp.nodes.end());
  // Inputs in the order the tree's nodes (in graph order) first read them.
  for (int id : grp.nodes)
    for (int v : g.node(id).inputs)
      if (std::find(ext.begin(), ext.end(), v) != ext.end() &&
          std::find(grp.inputs.begin(), grp.inputs.end(), v) == grp.inputs.end())
        grp.inputs.push_back(v);
  return grp;
}

StatusOr<int> EmitGroup(GraphRewriter& rw, const Group& grp) {
  const Graph& g = rw.old();
  const Node& root = g.node(grp.nodes.back());
  FusedProgram prog;
  std::vector<int> reg(g.num_values(), -1);  // old value -> register
  for (size_t k = 0; k < grp.inputs.size(); ++k) reg[grp.inputs[k]] = prog.Input(static_cast<int>(k));
  for (int id : grp.nodes) {
    const Node& n = g.node(id);
    std::vector<int> operands;
    for (int v : n.inputs) operands.push_back(reg[v]);
    CF_ASSIGN_OR_RETURN(const int r, prog.AddOp(n.op->name, n.attrs, operands));
    reg[n.outputs[0]] = r;
  }
  Node f;
  CF_ASSIGN_OR_RETURN(f.op, OpRegistry::Global().Get("fused_elementwise"));
  f.attrs = prog.ToAttrs();
  std::vector<TensorType> in_types;
  for (int v : grp.inputs) {
    const int mapped = rw.Map(v);
    if (mapped < 0) return absl::InternalError(absl::StrCat("elementwise fusion: input %", v, " is not in the new graph"));
    f.inputs.push_back(mapped);
    in_types.push_back(g.value(v).type);
  }
  f.scope = root.scope;
  f.backward = root.backward;
  f.update = root.update;
  f.cost = FusedCost(root.cost, CostOf(*f.op, f.attrs, in_types, {g.value(root.outputs[0]).type}));
  f.absorbed = root.absorbed;
  for (int id : grp.nodes)
    if (id != root.id) Absorb(g.node(id), &f.absorbed);
  return rw.Emit(std::move(f), {root.outputs[0]});
}

}  // namespace

StatusOr<Graph> FuseElementwiseChains(const Graph& g, PassReport* report) {
  const std::vector<std::vector<int>> consumers = g.Consumers();
  const int nn = g.num_nodes();
  // Roots from the last node back: a node whose consumer's tree could take it
  // has been taken by the time it is reached.
  std::vector<bool> taken(nn, false);
  std::vector<int> root_of(nn, -1);  // node -> the root of its tree (of 2+ nodes)
  std::vector<Group> groups(nn);
  for (int r = nn - 1; r >= 0; --r) {
    if (taken[r] || !Fusable(g.node(r))) continue;
    Group grp = Grow(g, r, consumers, taken);
    if (grp.nodes.size() < 2) continue;
    for (int id : grp.nodes) root_of[id] = r;
    groups[r] = std::move(grp);
  }
  GraphRewriter rw(g);
  int made = 0, replaced = 0;
  for (int i = 0; i < nn; ++i) {
    if (root_of[i] < 0) {
      CF_RETURN_IF_ERROR(rw.Copy(i));
    } else if (root_of[i] == i) {
      CF_RETURN_IF_ERROR(EmitGroup(rw, groups[i]).status());
      ++made;
      replaced += static_cast<int>(groups[i].nodes.size());
    }  // else: inside a tree, emitted with its root
  }
  if (report != nullptr) {
    report->Add("elementwise chain", made);
    report->Add("elementwise chain nodes", replaced);
  }
  return rw.Finish();
}

}  // namespace cf
