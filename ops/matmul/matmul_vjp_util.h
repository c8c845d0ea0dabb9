// Shared by the VJPs of "matmul" and "linear".
#pragma once

#include <string>

#include "graph/builder.h"

namespace cf {

// dL/dz for y = act(z) given g = dL/dy, through the activation op's own VJP
// (ops/activation): `act` is "gelu", "gelu_tanh" or "silu"; y is the forward
// output (act(z)), passed so VJPs that use their output need no recompute.
StatusOr<Value> ActivationVjp(Builder& b, const std::string& act, Value z, Value y, Value g);

}  // namespace cf
