// Constant hoisting (docs/passes.md): nodes whose inputs are all parameters
// or constants (a weight transpose, a cast of weights, a q/k/v weight
// concat), and nodes that read only such nodes, compute the same values at
// every run. The executor runs them once, at the first Run and again after
// SetParameter of one of their inputs, not every step; their outputs become
// constants of the graph it plans and runs (stable inputs for
// KernelContext::state). The graph itself, and so its accounting, is
// unchanged: a hoisted node is still one node of the step.
#pragma once

#include <vector>

#include "graph/graph.h"

namespace cf {

// Which nodes the executor runs once. A node is hoisted when it reads only
// parameters, constants and outputs of hoisted nodes (views of them
// included), has at least one input, is not OpDef::stateful (random ops),
// and none of its outputs is a graph output (those are returned fresh by
// every Run). A view of parameters or
// constants alone is not hoisted (the planner binds it at no cost) but is
// bound in the prelude too when a hoisted node reads it.
struct HoistPlan {
  std::vector<bool> remove;   // per node: hoisted, so not in the graph that runs each step
  std::vector<bool> prelude;  // per node: run (or bound) by the prelude: `remove` and the views it reads
  int count() const;          // hoisted nodes
};
HoistPlan PlanHoisting(const Graph& g);

// `g` with the marked nodes removed and their outputs turned into constants
// without data (same value ids, so a plan of it indexes `g`'s values). Node
// ids are renumbered; `node_of` (if given) gets each new node's id in `g`.
Graph WithoutNodes(const Graph& g, const std::vector<bool>& remove, std::vector<int>* node_of = nullptr);

}  // namespace cf
