#include "graph/passes/cse.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_join.h"
#include "graph/passes/rewrite.h"

namespace cf {
namespace {

// One round: which nodes duplicate an earlier one (dup[n] = the kept node, or -1).
std::vector<int> FindDuplicates(const Graph& g) {
  std::vector<int> canon(g.num_values());  // value -> the value that stands for it
  for (int v = 0; v < g.num_values(); ++v) canon[v] = v;
  std::vector<int> dup(g.num_nodes(), -1);
  absl::flat_hash_map<std::string, std::vector<int>> seen;  // op and inputs -> nodes
  for (const Node& n : g.nodes()) {
    std::vector<int> ins;
    for (int v : n.inputs) ins.push_back(canon[v]);
    if (n.op->stateful || n.outputs.empty()) continue;
    if ((n.op->name == "add" || n.op->name == "mul") && ins.size() == 2) std::sort(ins.begin(), ins.end());
    const std::string key = absl::StrCat(n.op->name, "(", absl::StrJoin(ins, ","), ")");
    std::vector<int>& same = seen[key];
    const bool is_output =
        std::any_of(n.outputs.begin(), n.outputs.end(), [&](int v) { return g.value(v).is_output; });
    int kept = -1;
    if (!is_output) {
      for (int k : same) {
        const Node& o = g.node(k);
        if (o.attrs.map() == n.attrs.map() && o.outputs.size() == n.outputs.size()) {
          kept = k;
          break;
        }
      }
    }
    if (kept < 0) {
      same.push_back(n.id);
      continue;
    }
    dup[n.id] = kept;
    for (size_t i = 0; i < n.outputs.size(); ++i) canon[n.outputs[i]] = g.node(kept).outputs[i];
  }
  return dup;
}

// Rebuilds g without the duplicates; each kept node absorbs its duplicates' FLOPs.
StatusOr<Graph> Merge(const Graph& g, const std::vector<int>& dup) {
  std::vector<std::vector<int>> dups_of(g.num_nodes());
  for (int i = 0; i < g.num_nodes(); ++i)
    if (dup[i] >= 0) dups_of[dup[i]].push_back(i);
  GraphRewriter rw(g);
  for (const Node& n : g.nodes()) {
    if (dup[n.id] >= 0) {
      const Node& kept = g.node(dup[n.id]);
      for (size_t i = 0; i < n.outputs.size(); ++i) rw.Alias(n.outputs[i], rw.Map(kept.outputs[i]));
      continue;
    }
    if (dups_of[n.id].empty()) {
      CF_RETURN_IF_ERROR(rw.Copy(n.id));
      continue;
    }
    Node c = n;
    for (int& in : c.inputs) {
      in = rw.Map(in);
      if (in < 0) return absl::InternalError(absl::StrCat("cse: node ", n.id, " reads a dropped value"));
    }
    for (int d : dups_of[n.id]) Absorb(g.node(d), &c.absorbed);
    CF_RETURN_IF_ERROR(rw.Emit(std::move(c), n.outputs).status());
  }
  return rw.Finish();
}

}  // namespace

StatusOr<Graph> EliminateCommonSubexpressions(const Graph& g, PassReport* report) {
  Graph cur = g;
  for (;;) {
    const std::vector<int> dup = FindDuplicates(cur);
    const int removed = static_cast<int>(std::count_if(dup.begin(), dup.end(), [](int d) { return d >= 0; }));
    if (removed == 0) return cur;
    if (report != nullptr) {
      report->Add("cse", removed);
      for (int i = 0; i < cur.num_nodes(); ++i)
        if (dup[i] >= 0) report->Add("cse:" + cur.node(i).op->name);
    }
    CF_ASSIGN_OR_RETURN(cur, Merge(cur, dup));
  }
}

}  // namespace cf
