// Graph passes (docs/passes.md): rewrites that run on the final graph (after
// autodiff and the optimizer's update nodes), before the memory planner. A
// pass never changes results beyond the tolerance stated in docs/passes.md,
// keeps per-scope FLOPs exact (a fused node keeps the FLOPs of the nodes it
// replaces, each under its own scope: Node::absorbed) and can be turned off.
//
//   CF_ASSIGN_OR_RETURN(Graph opt, OptimizeGraph(g, PassOptions{}));
//   PassOptions off{.fuse = false, .cse = false, .fold_constants = false};  // `--no-fuse`
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "graph/graph.h"

namespace cf {

struct PassOptions {
  bool fuse = true;            // epilogue fusion into GEMM / conv, elementwise chains
  bool cse = true;             // common-subexpression elimination
  bool fold_constants = true;  // the executor runs parameter-only nodes once (graph/passes/hoist.h)

  static PassOptions None() { return {.fuse = false, .cse = false, .fold_constants = false}; }
  bool any() const { return fuse || cse || fold_constants; }
};

// The options a default-constructed ExecutorOptions takes: every pass on,
// unless the program's `--no-fuse` flag (apps/common/cli.cc, every
// executable) set PassOptions::None() for the process, a debugging switch.
PassOptions DefaultPassOptions();
void SetDefaultPassOptions(const PassOptions& o);

// What the passes did (tests and `--verbose` print it).
struct PassReport {
  int nodes_before = 0;
  int nodes_after = 0;
  // (what, how many times), in the order first seen: "linear+bias", "conv2d+residual", ...
  std::vector<std::pair<std::string, int>> fired;

  void Add(const std::string& what, int count = 1);
  int Count(const std::string& what) const;  // 0 when it never fired
  std::string ToString() const;              // "412 -> 301 nodes: linear+bias 24, ..."
};

// Runs the pipeline (CSE, epilogue fusion, elementwise-chain fusion) as the
// options ask and Verify()s the result. With every option off it returns `g`
// unchanged. `report` may be null.
StatusOr<Graph> OptimizeGraph(const Graph& g, const PassOptions& o, PassReport* report = nullptr);

}  // namespace cf
