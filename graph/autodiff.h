// Reverse-mode autodiff over the graph: each op's VJP emits ordinary nodes, so
// the backward graph is checked, accounted, planned and run like the forward.
// See docs/autodiff.md.
#pragma once

#include <vector>

#include "graph/builder.h"

namespace cf {

// Appends to `b` the graph of d(sum_k <ys[k], dys[k]>)/d(wrt[i]) for each i.
// dys[k] has ys[k]'s type. Returns one gradient per wrt, of the wrt's type;
// an invalid Value when the outputs do not depend on it, or it is a frozen
// parameter, or it is not floating.
//  - Only the nodes that lie on a path from a gradient-taking wrt to an output
//    get VJP nodes, and a VJP is told (VjpContext::needs_grad) which of its
//    inputs need a gradient: work that only frozen parameters (or inputs,
//    constants) need is never built.
//  - A value read by several nodes gets the sum of their gradients ("add").
//  - Backward nodes are built in their forward node's scope.
//  - An op without a VJP on such a path is an Unimplemented error naming the
//    op, its node, its scope and its input types.
StatusOr<std::vector<Value>> Gradients(Builder& b, const std::vector<Value>& ys, const std::vector<Value>& dys,
                                       const std::vector<Value>& wrt);

// Gradient of a scalar (one-element) `loss`: seeds d(loss) = 1 (a "full" node).
StatusOr<std::vector<Value>> Grad(Builder& b, Value loss, const std::vector<Value>& wrt);

// Every trainable (not frozen) parameter of the graph, in creation order.
std::vector<Value> TrainableParameters(Builder& b);

}  // namespace cf
