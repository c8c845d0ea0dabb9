#include "graph/passes/pass.h"

#include <atomic>

#include "graph/passes/cse.h"
#include "graph/passes/epilogue.h"
#include "graph/passes/fuse_elementwise.h"


namespace cf {

namespace {
std::atomic<int> g_default_passes{-1};  // -1: all on; else bits fuse | cse << 1 | fold_constants << 2
}  // namespace

PassOptions DefaultPassOptions() {
  const int bits = g_default_passes.load(std::memory_order_relaxed);
  if (bits < 0) return {};
  return {.fuse = (bits & 1) != 0, .cse = (bits & 2) != 0, .fold_constants = (bits & 4) != 0};
}

void SetDefaultPassOptions(const PassOptions& o) {
  g_default_passes.store(int{o.fuse} | int{o.cse} << 1 | int{o.fold_constants} << 2, std::memory_order_relaxed);
}

void PassReport::Add(const std::string& what, int count) {
  if (count == 0) return;
  for (auto& [name, n] : fired)
    if (name == what) {
      n += count;
      return;
    }
  fired.emplace_back(what, count);
}

int PassReport::Count(const std::string& what) const {
  for (const auto& [name, n] : fired)
    if (name == what) return n;
  return 0;
}

std::string PassReport::ToString() const {
  std::string s = absl::StrCat(nodes_before, " -> ", nodes_after, " nodes");
  for (size_t i = 0; i < fired.size(); ++i)
    absl::StrAppend(&s, i == 0 ? ": " : ", ", fired[i].first, " ", fired[i].second);
  return s;
}

StatusOr<Graph> OptimizeGraph(const Graph& g, const PassOptions& o, PassReport* report) {
  CF_RETURN_IF_ERROR(g.Verify());
  PassReport local;
  PassReport& r = report != nullptr ? *report : local;
  r.nodes_before = g.num_nodes();
  Graph cur = g;
  // CSE first: merged duplicates let the fusions see single readers.
  if (o.cse) {
    CF_ASSIGN_OR_RETURN(Graph next, EliminateCommonSubexpressions(cur, &r));
    cur = std::move(next);
  }

  if (o.fuse) {
    CF_ASSIGN_OR_RETURN(Graph next, FuseEpilogues(cur, &r));
    cur = std::move(next);
  }

  // After the epilogues: what a linear / matmul / conv2d can take is gone.
  if (o.fuse) {
    CF_ASSIGN_OR_RETURN(Graph next, FuseElementwiseChains(cur, &r));
    cur = std::move(next);
  }

  CF_RETURN_IF_ERROR(cur.Verify());
  r.nodes_after = cur.num_nodes();
  return cur;
}

}  // namespace cf
