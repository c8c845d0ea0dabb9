// Memory planner: gives every transient value (an intermediate that is not a
// graph output) an offset in one arena, so that values alive at the same time
// never overlap. See docs/planner.md.
#pragma once

#include <string>
#include <vector>

#include "graph/graph.h"

namespace cf {

struct PlanOptions {
  int64_t alignment = 256;  // bytes; every offset is a multiple
  bool allow_inplace = true;
};

struct MemoryPlan {
  std::vector<int64_t> offset;      // per value id; -1 when the value is not in the arena
  std::vector<int> first_use;       // per value id: node index where it becomes live (-1: not planned)
  std::vector<int> last_use;        // per value id: last node index that reads it
  int64_t arena_bytes = 0;
  int64_t lower_bound_bytes = 0;    // the most bytes live at one time (aligned sizes)
  int64_t no_reuse_bytes = 0;       // sum of all transient sizes (what no reuse would need)
  int64_t parameter_bytes = 0;      // parameters and constants
  int64_t io_bytes = 0;             // graph inputs and outputs
  std::string strategy;             // which order won
  std::string ToString() const;
};

StatusOr<MemoryPlan> PlanMemory(const Graph& graph, const PlanOptions& options = {});
// Checks that values whose lifetimes overlap have disjoint byte ranges (a
// value may share its input's bytes only through the planner's in-place rule)
// and that everything lies inside the arena.
Status VerifyPlan(const Graph& graph, const MemoryPlan& plan);

}  // namespace cf
