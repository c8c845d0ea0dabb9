// Reverse-mode autodiff over the graph: each op's VJP emits ordinary nodes, so
// the backward graph is checked, accounted, planned and run like the forward.
// See docs/autodiff.md.
#pragma once

#include <vector>

#include "graph/builder.h"

namespace cf {

// Appends to `b` the graph of d(sum_k <ys[k], dys[k]>)/d(wrt[i]) for each i.
// dys[k] has ys[k]'s type. Returns one gradient per wrt; an invalid Value when
// the loss does not depend on it or it is a frozen parameter (no gradient
// nodes are built for frozen parameters or for work only they need).
StatusOr<std::vector<Value>> Gradients(Builder& b, const std::vector<Value>& ys, const std::vector<Value>& dys,
                                       const std::vector<Value>& wrt);

// Gradient of a scalar (one-element) `loss`: seeds d(loss) = 1.
StatusOr<std::vector<Value>> Grad(Builder& b, Value loss, const std::vector<Value>& wrt);

// Every trainable (not frozen) parameter of the graph, in creation order.
std::vector<Value> TrainableParameters(Builder& b);

}  // namespace cf
