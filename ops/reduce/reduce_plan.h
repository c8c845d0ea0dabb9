// How a sum over some axes is laid out in memory, shared by the CPU and CUDA
// reduction engines (used by sum, mean and sum_to). Size-1 dimensions are
// dropped and adjacent dimensions that are both reduced or both kept are
// merged; the common layouts then become [A, R, B]: sum over R of an A x B
// grid of rows (B = 1: contiguous rows; A = 1: columns, e.g. a bias gradient).
#pragma once

#include <cstdint>

#include "runtime/shape.h"

namespace cf {

struct ReducePlan {
  int rank = 0;  // collapsed rank (0: a single element)
  int64_t dims[Shape::kMaxRank] = {};
  bool reduced[Shape::kMaxRank] = {};
  int64_t num_out = 1;     // product of kept dimensions
  int64_t num_reduce = 1;  // elements summed per output
  // Set when the collapsed layout is [A, R, B] (any of A, R, B may be 1).
  bool is_3d = false;
  int64_t outer = 1, r = 1, inner = 1;
};

// Bit d of `mask` says whether dimension d of `x` is summed.
ReducePlan PlanReduce(const Shape& x, uint32_t mask);

// A mean's factor 1 / n, n = x_numel / out_numel elements per output (0 when
// there are none).
inline double MeanScale(int64_t x_numel, int64_t out_numel) {
  const int64_t n = x_numel / (out_numel > 1 ? out_numel : 1);
  return n > 0 ? 1.0 / static_cast<double>(n) : 0.0;
}

}  // namespace cf
