// Common-subexpression elimination (docs/passes.md): a node with the same op,
// the same attributes (compared exactly) and the same inputs as an earlier
// node (inputs in either order for add and mul, which commute exactly) is
// dropped and its outputs are read from the earlier node's. Repeated to a
// fixed point. Never merged: ops marked OpDef::stateful (random or with
// effects beyond their outputs), nodes whose outputs are graph outputs. The
// dropped node's FLOPs go to the kept node's Node::absorbed under the
// dropped node's scope and flags, so per-scope accounting is unchanged.
#pragma once

#include "graph/graph.h"
#include "graph/passes/pass.h"

namespace cf {

// Adds "cse" (nodes removed) and "cse:<op>" (of each op) to `report` (may be null).
StatusOr<Graph> EliminateCommonSubexpressions(const Graph& g, PassReport* report = nullptr);

}  // namespace cf
