#include "graph/planner.h"

namespace cf {

std::string MemoryPlan::ToString() const {
  return absl::StrFormat(
      "arena %d B (lower bound %d B, ratio %.4f; no reuse %d B), parameters %d B, inputs/outputs %d B, strategy %s",
      arena_bytes, lower_bound_bytes,
      lower_bound_bytes > 0 ? static_cast<double>(arena_bytes) / static_cast<double>(lower_bound_bytes) : 1.0,
      no_reuse_bytes, parameter_bytes, io_bytes, strategy);
}

static int64_t AlignUp(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

// Placeholder-free baseline: every transient gets its own range (no reuse).
// The greedy planner replaces this (docs/planner.md).
StatusOr<MemoryPlan> PlanMemory(const Graph& graph, const PlanOptions& options) {
  CF_RETURN_IF_ERROR(graph.Verify());
  MemoryPlan plan;
  const int nv = graph.num_values();
  plan.offset.assign(nv, -1);
  plan.first_use.assign(nv, -1);
  plan.last_use.assign(nv, -1);
  for (const Node& n : graph.nodes())
    for (int in : n.inputs) plan.last_use[in] = std::max(plan.last_use[in], n.id);
  std::vector<int64_t> live_delta(graph.num_nodes() + 1, 0);
  for (const ValueInfo& v : graph.values()) {
    int64_t bytes = AlignUp(v.type.bytes(), options.alignment);
    if (v.kind == ValueKind::kParameter || v.kind == ValueKind::kConstant) {
      plan.parameter_bytes += v.type.bytes();
      continue;
    }
    if (v.kind == ValueKind::kInput || v.is_output) {
      plan.io_bytes += v.type.bytes();
      continue;
    }
    plan.first_use[v.id] = v.producer;
    plan.last_use[v.id] = std::max(plan.last_use[v.id], v.producer);
    plan.offset[v.id] = plan.arena_bytes;
    plan.arena_bytes += bytes;
    plan.no_reuse_bytes += bytes;
    live_delta[v.producer] += bytes;
    live_delta[plan.last_use[v.id] + 1] -= bytes;
  }
  int64_t live = 0;
  for (int i = 0; i < graph.num_nodes(); ++i) {
    live += live_delta[i];
    plan.lower_bound_bytes = std::max(plan.lower_bound_bytes, live);
  }
  plan.strategy = "no-reuse";
  return plan;
}

Status VerifyPlan(const Graph& graph, const MemoryPlan& plan) {
  struct Item { int id; int64_t lo, hi; int first, last; };
  std::vector<Item> items;
  for (const ValueInfo& v : graph.values()) {
    if (plan.offset[v.id] < 0) continue;
    int64_t lo = plan.offset[v.id], hi = lo + v.type.bytes();
    if (hi > plan.arena_bytes)
      return absl::InternalError(absl::StrCat("plan: value %", v.id, " ends at ", hi, " past the arena (",
                                              plan.arena_bytes, " B)"));
    items.push_back({v.id, lo, hi, plan.first_use[v.id], plan.last_use[v.id]});
  }
  for (size_t i = 0; i < items.size(); ++i) {
    for (size_t j = i + 1; j < items.size(); ++j) {
      const Item &a = items[i], &b = items[j];
      bool time = a.first <= b.last && b.first <= a.last;
      bool space = a.lo < b.hi && b.lo < a.hi;
      if (!time || !space) continue;
      // In place: the output of a node may take the bytes of an input that dies there.
      const Item& early = a.first <= b.first ? a : b;
      const Item& late = a.first <= b.first ? b : a;
      const Node& n = graph.node(late.first);
      bool inplace = early.last == late.first && n.op->inplace_ok && !n.inputs.empty() &&
                     n.inputs[0] == early.id && early.lo == late.lo;
      if (!inplace)
        return absl::InternalError(absl::StrCat("plan: values %", a.id, " and %", b.id,
                                                " are live together and overlap in the arena"));
    }
  }
  return absl::OkStatus();
}

}  // namespace cf
