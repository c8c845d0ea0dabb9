// Numpy broadcasting: the result shape of two operands, and a collapsed
// description of how each operand is indexed, shared by the CPU and CUDA
// kernels of the binary ops and of broadcast_to.
#pragma once

#include <cstdint>

#include "runtime/shape.h"
#include "runtime/status.h"

namespace cf {

// The numpy broadcast of `a` and `b` (right-aligned; a dimension of 1
// stretches); InvalidArgument naming both shapes when they are incompatible.
StatusOr<Shape> BroadcastShapes(const Shape& a, const Shape& b);

// True when `from` broadcasts to exactly `to` (numpy rules, `from` not wider).
bool BroadcastsTo(const Shape& from, const Shape& to);

// The output of a broadcast op with dimensions of size 1 dropped and adjacent
// dimensions merged where both operands index them the same way (both
// contiguous, or both broadcast). Strides are in elements; 0 means the operand
// is broadcast along that dimension. Always rank >= 1 (a one-element output is
// dims {1}). Plain old data, so it can be passed to a CUDA kernel by value.
struct BroadcastPlan {
  int rank = 1;
  int64_t dims[Shape::kMaxRank] = {1};
  int64_t stride_a[Shape::kMaxRank] = {0};
  int64_t stride_b[Shape::kMaxRank] = {0};

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= dims[i];
    return n;
  }
  // Neither operand is broadcast: a flat elementwise loop.
  bool flat() const { return rank == 1 && stride_a[0] == 1 && stride_b[0] == 1; }
};

// Plan for out = f(a, b) where `a` and `b` broadcast to `out`. For one
// operand (broadcast_to), pass b = out.
BroadcastPlan PlanBroadcast(const Shape& out, const Shape& a, const Shape& b);

}  // namespace cf
