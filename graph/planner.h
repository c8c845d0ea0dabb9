// Memory planner: gives every transient value (an intermediate that is not a
// graph output) an offset in one arena, so that values alive at the same time
// never overlap. Liveness over the node order, in-place reuse for ops with
// OpDef::inplace_ok, no memory at all for views (OpDef::view_of_input0), then
// greedy-by-size best-fit placement tried under several orders; the smallest
// arena wins. See docs/planner.md.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "graph/graph.h"

namespace cf {

struct PlanOptions {
  int64_t alignment = 256;   // bytes; every offset is a multiple, sizes are rounded up to it
  bool allow_inplace = true;  // an inplace_ok op's output may take the bytes of its dying input 0
  bool allow_views = true;    // a view op's output shares input 0's bytes (false: it gets its own)
  bool reuse = true;          // false: every buffer gets its own range (debugging aid)
};

// How one value gets its memory.
enum class Placement : uint8_t {
  kNone,       // not planned: graph inputs, parameters, constants and graph outputs (the executor binds them)
  kArena,      // its own range [offset, offset + bytes) of the arena
  kInPlace,    // the range of its producer's input 0 (same offset): the kernel overwrites its input;
               // alias_of stays -1, since the kernel runs as usual
  kView,       // the range of alias_of (input 0 of a view op): the kernel is skipped
  kBoundView,  // a view of alias_of, which is not in the arena (input, parameter, constant, graph
               // output): offset is -1 and the executor binds it to alias_of's tensor, reshaped
};
const char* PlacementName(Placement p);

struct MemoryPlan {
  // Per value id.
  std::vector<int64_t> offset;       // byte offset in the arena; -1 when the value is not in the arena
  std::vector<int> first_use;        // node where it becomes live (its producer); -1 when not planned
  std::vector<int> last_use;         // last node that reads it (its own reads, not those of its views)
  std::vector<int> alias_of;         // views (kView, kBoundView): the value whose bytes it shares, else -1
  std::vector<Placement> placement;

  int64_t arena_bytes = 0;
  int64_t lower_bound_bytes = 0;  // the most (aligned) buffer bytes live at one time: no plan does better
  int64_t no_reuse_bytes = 0;     // sum of the aligned sizes of every transient that is not a view
  int64_t parameter_bytes = 0;    // parameters and constants
  int64_t io_bytes = 0;           // graph inputs and outputs
  int64_t workspace_bytes = 0;    // backend scratch (cuBLASLt, cuDNN); the executor fills it in
  int num_buffers = 0;            // distinct arena ranges (transients minus in-place outputs and views)
  int num_inplace = 0;
  int num_views = 0;              // kView and kBoundView
  std::string strategy;           // which order won
  std::vector<std::pair<std::string, int64_t>> tried;  // every order tried and its arena bytes

  double ratio() const {
    return lower_bound_bytes > 0 ? static_cast<double>(arena_bytes) / static_cast<double>(lower_bound_bytes) : 1.0;
  }
  std::string ToString() const;
};

StatusOr<MemoryPlan> PlanMemory(const Graph& graph, const PlanOptions& options = {});

// Checks a plan against the graph, in O(n log n); FailedPrecondition when it
// does not fit (a stale plan, made before values were added, says so): every transient is planned
// and no other value is in the arena; aliases follow the in-place rule (input
// 0 of an inplace_ok op, same byte size, and nothing else sharing those bytes
// is read after that node) or the view rule (input 0 of a view op); every
// range lies inside the arena; and buffers whose lifetimes (recomputed from
// the graph, extended over their views) overlap have disjoint byte ranges.
Status VerifyPlan(const Graph& graph, const MemoryPlan& plan);

}  // namespace cf
