// Elementwise-chain fusion (docs/passes.md): maximal trees of elementwise
// nodes (add, sub, mul, div, scale, exp, sqrt, rsqrt, neg, square, silu,
// gelu (both forms), quick_gelu, leaky_relu, elu, sigmoid and the
// activations' *_backward ops) whose intermediates have a single consumer in
// the tree and are not graph outputs become one "fused_elementwise" node
// (ops/fused/fused_elementwise.h) at the position of the tree's last node,
// with its scope and flags. Trees of one node are left alone; a tree stops
// growing at fused::kMaxInputs distinct inputs or fused::kMaxInstrs
// instructions. Runs after epilogue fusion, so what a linear / matmul / conv2d
// epilogue can take is already gone. The fused node keeps the last node's
// FLOPs and the other nodes' FLOPs go to Node::absorbed under their own scopes
// and flags, so per-scope accounting is unchanged; its bytes are its own.
#pragma once

#include "graph/graph.h"
#include "graph/passes/pass.h"

namespace cf {

// Adds "elementwise chain" (fused nodes made) and "elementwise chain nodes"
// (nodes they replace) to `report` (may be null).
StatusOr<Graph> FuseElementwiseChains(const Graph& g, PassReport* report = nullptr);

}  // namespace cf
