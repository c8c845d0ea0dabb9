#include "ops/elementwise/broadcast.h"

#include <algorithm>

namespace cf {

StatusOr<Shape> BroadcastShapes(const Shape& a, const Shape& b) {
  const int rank = std::max(a.rank(), b.rank());
  Shape out;
  for (int i = 0; i < rank; ++i) {
    // Dimension i of the result, right-aligned in both operands.
    const int ia = i - (rank - a.rank()), ib = i - (rank - b.rank());
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1) {
      return absl::InvalidArgumentError(absl::StrCat("shapes ", a.ToString(), " and ", b.ToString(),
                                                     " do not broadcast (dimension ", i, ": ", da, " vs ", db,
                                                     ")"));
    }
    out.push_back(da == 1 ? db : da);
  }
  return out;
}

bool BroadcastsTo(const Shape& from, const Shape& to) {
  if (from.rank() > to.rank()) return false;
  const int off = to.rank() - from.rank();
  for (int i = 0; i < from.rank(); ++i)
    if (from[i] != 1 && from[i] != to[i + off]) return false;
  return true;
}

BroadcastPlan PlanBroadcast(const Shape& out, const Shape& a, const Shape& b) {
  // Per kept output dimension: its size and whether a / b are broadcast along it.
  struct Dim {
    int64_t size;
    bool bcast_a, bcast_b;
  };
  Dim dims[Shape::kMaxRank];
  int n = 0;
  for (int i = 0; i < out.rank(); ++i) {
    if (out[i] == 1) continue;  // size-1 dims index nothing
    const int ia = i - (out.rank() - a.rank()), ib = i - (out.rank() - b.rank());
    const bool ba = ia < 0 || a[ia] == 1, bb = ib < 0 || b[ib] == 1;
    if (n > 0 && dims[n - 1].bcast_a == ba && dims[n - 1].bcast_b == bb) {
      dims[n - 1].size *= out[i];  // same access pattern: merge with the previous dim
    } else {
      dims[n++] = {out[i], ba, bb};
    }
  }
  BroadcastPlan p;
  if (n == 0) return p;  // one element
  p.rank = n;
  int64_t sa = 1, sb = 1;
  for (int i = n - 1; i >= 0; --i) {
    p.dims[i] = dims[i].size;
    p.stride_a[i] = dims[i].bcast_a ? 0 : sa;
    p.stride_b[i] = dims[i].bcast_b ? 0 : sb;
    if (!dims[i].bcast_a) sa *= dims[i].size;
    if (!dims[i].bcast_b) sb *= dims[i].size;
  }
  return p;
}

}  // namespace cf
