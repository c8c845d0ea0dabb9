// Losses. See docs/ops/loss.md.
#pragma once

#include <optional>

#include "graph/builder.h"

namespace cf {

// "mse_loss": mean((pred - target)^2) over all elements, a rank-0 value of
// pred's dtype. With per_sample_weight w of shape [B] (B = pred's first
// dimension): mean_b(w_b * mean_rest((pred - target)^2)), e.g. Min-SNR
// weights. Differentiable in pred, target and the weight.
Value MseLoss(Value pred, Value target, std::optional<Value> per_sample_weight = std::nullopt);

}  // namespace cf
