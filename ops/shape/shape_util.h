// Helpers shared by the shape ops' definitions (not part of the public API).
#pragma once

#include "runtime/config.h"  // CF_HAS_CUDA

#include <vector>

#include "absl/strings/str_join.h"
#include "ops/op.h"

namespace cf::shape_internal {

inline std::vector<int64_t> DimsOf(const Shape& s) { return {s.dims().begin(), s.dims().end()}; }

// The attribute `name` (default `def`) as an axis of a rank-`rank` tensor;
// negative counts from the end.
inline StatusOr<int> AxisAttr(const Attrs& attrs, const char* name, int64_t def, int rank) {
  const int64_t a = attrs.Int(name, def);
  const int64_t n = a < 0 ? a + rank : a;
  CF_CHECK_ARG(n >= 0 && n < rank, name, " ", a, " is out of range for rank ", rank);
  return static_cast<int>(n);
}

// Elements before / after `axis` (the outer rows and the inner run).
inline int64_t Outer(const Shape& s, int axis) { return s.prod(0, axis); }
inline int64_t Inner(const Shape& s, int axis) { return s.prod(axis + 1, s.rank()); }

}  // namespace cf::shape_internal

// Data-movement kernels are device-agnostic (they describe a CopyLayout and the
// engine runs it on the kernel's device), so one function serves both backends.
#if CF_HAS_CUDA
#define CF_REGISTER_COPY_KERNEL(op, fn) \
  CF_REGISTER_KERNEL(op, kCPU, fn);     \
  CF_REGISTER_KERNEL(op, kCUDA, fn)
#else
#define CF_REGISTER_COPY_KERNEL(op, fn) CF_REGISTER_KERNEL(op, kCPU, fn)
#endif
