// Normalisation ops, channels-last. See docs/ops/norm.md.
#pragma once

#include <optional>
#include <string>

#include "graph/builder.h"

namespace cf {

// "group_norm": x [N, ..., C] (rank >= 2; the dims between N and C are the
// spatial positions), normalised per (n, group) over all positions and the
// C/groups channels of the group (biased variance, PyTorch's nn.GroupNorm).
// gamma and beta [C] are both given (affine) or both absent (no affine).
// activation "silu" applies silu after the affine (attribute activation).
Value GroupNorm(Value x, std::optional<Value> gamma, std::optional<Value> beta, int64_t groups = 32,
                double eps = 1e-5, const std::string& activation = "none");

// "layer_norm": x [..., C] normalised over the last dim; gamma, beta [C] both
// given or both absent (PixArt: no affine, eps 1e-6).
Value LayerNorm(Value x, std::optional<Value> gamma = std::nullopt, std::optional<Value> beta = std::nullopt,
                double eps = 1e-5);

// "adaln_modulate": x [B, T, C] * (1 + scale) + shift, with shift and scale
// [B, C] or [B, 1, C] broadcast over T (DiT / PixArt adaLN).
Value AdaLnModulate(Value x, Value shift, Value scale);

}  // namespace cf
