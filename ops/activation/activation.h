// Activations, each with a fused backward op. See docs/ops/activation.md.
#pragma once

#include "graph/builder.h"

namespace cf {

// "silu": x * sigmoid(x).
Value Silu(Value x);
// "gelu": 0.5 x (1 + erf(x / sqrt 2)); with approximate_tanh the tanh form
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). Attribute approximate =
// "none" | "tanh".
Value Gelu(Value x, bool approximate_tanh = false);
// "geglu" (diffusers GEGLU after its projection): x [..., 2D] is split into
// (h, gate) halves of the last dimension; the result is h * gelu(gate), [..., D].
Value Geglu(Value x, bool approximate_tanh = false);
// "quick_gelu": x * sigmoid(1.702 x) (CLIP).
Value QuickGelu(Value x);
// "leaky_relu": x > 0 ? x : negative_slope * x.
Value LeakyRelu(Value x, double negative_slope = 0.01);
// "elu": x > 0 ? x : alpha * (exp(x) - 1).
Value Elu(Value x, double alpha = 1.0);
// "sigmoid": 1 / (1 + exp(-x)).
Value Sigmoid(Value x);

}  // namespace cf
