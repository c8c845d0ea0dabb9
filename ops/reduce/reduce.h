// Reductions and softmax. See docs/ops/reduce.md.
#pragma once

#include <vector>

#include "graph/builder.h"

namespace cf {

// "sum" / "mean" over `axes` (negative allowed; empty: all axes). With keepdim
// the reduced axes stay as size 1. Accumulation in f32 (f64 for f64).
Value Sum(Value x, std::vector<int64_t> axes = {}, bool keepdim = false);
Value Mean(Value x, std::vector<int64_t> axes = {}, bool keepdim = false);

// "softmax" over the last axis (numerically stable: max subtracted first).
Value Softmax(Value x);

// The reduced-axis bit mask of `axes` for a rank-`rank` input (empty: all
// axes), or an error naming a bad or repeated axis.
StatusOr<uint32_t> ReduceMask(absl::Span<const int64_t> axes, int rank);

}  // namespace cf
