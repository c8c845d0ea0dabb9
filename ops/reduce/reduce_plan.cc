#include "ops/reduce/reduce_plan.h"

namespace cf {

ReducePlan PlanReduce(const Shape& x, uint32_t mask) {
  ReducePlan p;
  auto reduce = [mask](int d) { return ((mask >> d) & 1u) != 0; };
  for (int d = 0; d < x.rank(); ++d) {
    if (reduce(d)) p.num_reduce *= x[d];
    else p.num_out *= x[d];
    if (x[d] == 1) continue;
    if (p.rank > 0 && p.reduced[p.rank - 1] == reduce(d)) {
      p.dims[p.rank - 1] *= x[d];
    } else {
      p.dims[p.rank] = x[d];
      p.reduced[p.rank] = reduce(d);
      ++p.rank;
    }
  }
  // [A, R, B] when the runs are at most kept, reduced, kept in that order.
  int i = 0;
  if (i < p.rank && !p.reduced[i]) p.outer = p.dims[i++];
  if (i < p.rank && p.reduced[i]) p.r = p.dims[i++];
  if (i < p.rank && !p.reduced[i]) p.inner = p.dims[i++];
  p.is_3d = i == p.rank;
  return p;
}

}  // namespace cf
