#include "graph/passes/epilogue.h"

#include <map>

#include "graph/passes/rewrite.h"

namespace cf {
namespace {

// What one fusion folds into its primary node.
struct Plan {
  int primary = -1;
  std::vector<int> chain;  // the absorbed nodes, in order; the last one's output is the fused output
  int bias = -1, image_bias = -1, residual = -1;  // old value ids of the new inputs, or -1
  std::string act;                                // "none", "silu", "gelu", "gelu_tanh"
  std::vector<std::string> kinds;                 // what each chain node was, for the report
};

bool IsPrimary(const Node& n) {
  const std::string& op = n.op->name;
  if (op != "linear" && op != "matmul" && op != "conv2d") return false;
  // Already a fused form (the pass ran before): leave it.
  return !n.attrs.Bool("residual", false) && !n.attrs.Bool("image_bias", false);
}

// The epilogue's name of an activation node, or "" when it is none of them.
std::string ActivationOf(const Node& n) {
  if (n.op->name == "silu") return "silu";
  if (n.op->name == "gelu") return n.attrs.Str("approximate", "none") == "tanh" ? "gelu_tanh" : "gelu";
  return "";
}

bool HasBias(const Node& n) {
  const size_t fixed = 2 + n.attrs.Bool("residual", false) + n.attrs.Bool("image_bias", false);
  return n.inputs.size() > fixed;
}

Plan PlanFor(const Graph& g, const Node& p, const std::vector<std::vector<int>>& consumers,
             const std::vector<bool>& claimed) {
  Plan plan;
  plan.primary = p.id;
  plan.act = p.attrs.Str("activation", "none");
  bool has_bias = HasBias(p);
  const bool image_ok = p.op->name != "matmul";
  int cur = p.outputs[0];
  const TensorType type = g.value(cur).type;
  const int64_t n_out = type.shape.rank() > 0 ? type.shape.dim(-1) : -1;
  for (;;) {
    const ValueInfo& v = g.value(cur);
    if (v.is_output || consumers[cur].size() != 1) break;
    const Node& c = g.node(consumers[cur][0]);
    if (claimed[c.id] || c.outputs.size() != 1 || c.backward != p.backward || c.update != p.update) break;
    if (!(g.value(c.outputs[0]).type == type)) break;  // the chain keeps the output's type
    const std::string act = ActivationOf(c);
    if (!act.empty()) {
      if (plan.act != "none" || plan.residual >= 0 || c.inputs.size() != 1) break;
      plan.act = act;
      plan.kinds.push_back(act);
    } else if (c.op->name == "add" && c.inputs.size() == 2 && c.inputs[0] != c.inputs[1]) {
      const int other = c.inputs[0] == cur ? c.inputs[1] : c.inputs[0];
      const TensorType& o = g.value(other).type;
      if (o.dtype != type.dtype) break;
      const bool before_act = plan.act == "none" && plan.residual < 0;
      if (o.shape == type.shape) {
        if (plan.residual >= 0) break;
        plan.residual = other;
        plan.kinds.push_back("residual");
      } else if (o.shape == Shape{n_out}) {
        if (has_bias || !before_act || plan.image_bias >= 0) break;
        plan.bias = other;
        has_bias = true;
        plan.kinds.push_back("bias");
      } else {
        // [B, 1, ..., 1, N] with B the output's leading dim, rank >= 3.
        Shape want = type.shape;
        for (int i = 1; i + 1 < want.rank(); ++i) want[i] = 1;
        if (!image_ok || want.rank() < 3 || !(o.shape == want) || !before_act || plan.image_bias >= 0) break;
        plan.image_bias = other;
        plan.kinds.push_back("image_bias");
      }
    } else {
      break;
    }
    plan.chain.push_back(c.id);
    cur = c.outputs[0];
  }
  return plan;
}

// group_norm -> silu: the norm applies the SiLU after its affine
// (activation="silu"); the ResNet blocks have one before each conv.
Plan NormPlanFor(const Graph& g, const Node& p, const std::vector<std::vector<int>>& consumers,
                 const std::vector<bool>& claimed) {
  Plan plan;
  plan.primary = p.id;
  plan.act = "none";
  if (p.attrs.Str("activation", "none") != "none" || p.outputs.size() != 1) return plan;
  const int cur = p.outputs[0];
  const ValueInfo& v = g.value(cur);
  if (v.is_output || consumers[cur].size() != 1) return plan;
  const Node& c = g.node(consumers[cur][0]);
  if (claimed[c.id] || c.op->name != "silu" || c.inputs.size() != 1 || c.outputs.size() != 1 ||
      c.backward != p.backward || c.update != p.update || !(g.value(c.outputs[0]).type == v.type))
    return plan;
  plan.act = "silu";
  plan.kinds.push_back("silu");
  plan.chain.push_back(c.id);
  return plan;
}

}  // namespace

StatusOr<Graph> FuseEpilogues(const Graph& g, PassReport* report) {
  const std::vector<std::vector<int>> consumers = g.Consumers();
  std::vector<bool> claimed(g.num_nodes(), false);
  std::map<int, Plan> by_last;  // last chain node -> plan
  std::vector<bool> dropped(g.num_nodes(), false);
  for (const Node& n : g.nodes()) {
    if (claimed[n.id]) continue;
    const bool norm = n.op->name == "group_norm";
    if (!norm && !IsPrimary(n)) continue;
    Plan plan = norm ? NormPlanFor(g, n, consumers, claimed) : PlanFor(g, n, consumers, claimed);
    if (plan.chain.empty()) continue;
    claimed[n.id] = true;
    dropped[n.id] = true;
    for (int c : plan.chain) claimed[c] = dropped[c] = true;
    dropped[plan.chain.back()] = false;  // emitted there
    by_last.emplace(plan.chain.back(), std::move(plan));
  }
  if (by_last.empty()) return g;

  GraphRewriter rw(g);
  for (const Node& n : g.nodes()) {
    if (dropped[n.id]) continue;
    auto it = by_last.find(n.id);
    if (it == by_last.end()) {
      CF_RETURN_IF_ERROR(rw.Copy(n.id));
      continue;
    }
    const Plan& plan = it->second;
    const Node& p = g.node(plan.primary);
    Node f;
    f.op = p.op;
    f.attrs = p.attrs;
    f.scope = p.scope;
    f.backward = p.backward;
    f.update = p.update;
    f.absorbed = p.absorbed;
    std::vector<int> ins(p.inputs.begin(), p.inputs.end());
    if (plan.bias >= 0) ins.push_back(plan.bias);
    if (plan.image_bias >= 0) {
      ins.push_back(plan.image_bias);
      f.attrs.Set("image_bias", true);
    }
    if (plan.residual >= 0) {
      ins.push_back(plan.residual);
      f.attrs.Set("residual", true);
    }
    if (plan.act != "none" || p.op->name != "group_norm") f.attrs.Set("activation", plan.act);
    std::vector<TensorType> in_types;
    for (int old : ins) {
      const int mapped = rw.Map(old);
      if (mapped < 0)
        return absl::InternalError(absl::StrCat("epilogue fusion: %", old, " of ", p.op->name, " (scope '", p.scope,
                                                "') is not in the new graph"));
      f.inputs.push_back(mapped);
      in_types.push_back(g.value(old).type);
    }
    const TensorType out = g.value(n.outputs[0]).type;
    f.cost = FusedCost(p.cost, CostOf(*f.op, f.attrs, in_types, {out}));
    for (int c : plan.chain) Absorb(g.node(c), &f.absorbed);
    CF_RETURN_IF_ERROR(rw.Emit(std::move(f), {n.outputs[0]}).status());
    if (report != nullptr)
      for (const std::string& k : plan.kinds) report->Add(absl::StrCat(p.op->name, "+", k));
  }
  return rw.Finish();
}

}  // namespace cf
