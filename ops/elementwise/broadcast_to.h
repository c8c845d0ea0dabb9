// Helpers of broadcast_to shared by its CPU and CUDA kernels and the VJPs of
// the reductions.
#pragma once

#include <vector>

#include "graph/builder.h"

namespace cf {

// The shape x takes inside the output (same rank as `out`): x itself under
// numpy rules when `axes` is empty, else x's dims with 1 inserted at `axes`.
// An error when x does not fit.
StatusOr<Shape> BroadcastOperandShape(const Shape& x, const Shape& out, absl::Span<const int64_t> axes);

// "broadcast_to" with `axes`: x has `shape` without `axes` (e.g. the result of
// a reduction over `axes` without keepdim) and is repeated along them.
Value BroadcastInAxes(Value x, Shape shape, const std::vector<int64_t>& axes);

}  // namespace cf
