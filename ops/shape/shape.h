// Shape and data-movement ops: reshape, permute, concat, split, slice, pad
// (docs/ops/shape.md). All dtypes are supported (they move bytes); none counts
// FLOPs. Axes may be negative (python-style).
#pragma once

#include <cstdint>
#include <vector>

#include "graph/builder.h"

namespace cf {

// "reshape": the same elements under `shape`; one entry may be -1 (inferred).
// A view of x (no copy when the planner aliases it).
Value Reshape(Value x, std::vector<int64_t> shape);

// "permute": out.dim(i) = x.dim(perm[i]); perm entries may be negative.
Value Permute(Value x, std::vector<int64_t> perm);
// Swaps axes a and b (a permute).
Value Transpose(Value x, int a, int b);

// "concat": the inputs joined along `axis` (every other dim equal, one dtype).
Value Concat(const std::vector<Value>& xs, int axis);

// "split": consecutive pieces of x along `axis`, of the given sizes (each >= 1,
// summing to x.dim(axis)).
std::vector<Value> Split(Value x, std::vector<int64_t> sizes, int axis);
// `n` equal pieces along `axis` (x.dim(axis) must be divisible by n).
std::vector<Value> Chunk(Value x, int n, int axis);

// "slice": x[..., start:end:step, ...] along `axis` with python semantics
// (negative start/end count from the end, out-of-range bounds are clamped);
// step >= 1. An empty result is an error.
constexpr int64_t kSliceToEnd = INT64_MAX;
Value Slice(Value x, int axis, int64_t start, int64_t end = kSliceToEnd, int64_t step = 1);

// "pad": pads = {before_0, after_0, before_1, after_1, ...}, one pair per dim
// from the first (2 * rank entries), filled with `value`. Negative entries crop:
// out[i] = x[i - before] where that index is inside x, else `value`.
// Zero padding of an NHWC image by p: Pad(x, {0, 0, p, p, p, p, 0, 0}).
Value Pad(Value x, std::vector<int64_t> pads, double value = 0.0);

// "slice_backward" (the VJP of slice): a zero tensor whose `axis` has length
// `dim`, with grad written at start, start + step, ... along that axis.
Value SliceBackward(Value grad, int axis, int64_t start, int64_t step, int64_t dim);

}  // namespace cf
