// Shared by the norm family's .cc and .cu files: how a tensor is viewed by
// the kernels, and attribute defaults (one place, so the CPU and CUDA kernels
// and the shape rules agree).
#pragma once

#include <string>

#include "ops/op.h"

namespace cf::norm_internal {

constexpr int64_t kDefaultGroups = 32;
constexpr double kDefaultEps = 1e-5;

// The attributes groups and eps, or their defaults.
inline int64_t GroupsOf(const Attrs& a) { return a.Int("groups", kDefaultGroups); }
inline double EpsOf(const Attrs& a) { return a.Float("eps", kDefaultEps); }

// group_norm's optional activation after the affine: "none" (default) or
// "silu" (the ResNet block's GroupNorm -> SiLU in one pass).
inline std::string ActivationOf(const Attrs& a) { return a.Str("activation", "none"); }
inline bool SiluOf(const Attrs& a) { return ActivationOf(a) == "silu"; }

// group_norm views x [N, ..., C] as [N, P, C] with P the product of the
// spatial dims, and channels split into G groups of Cg = C / G.
struct GnDims {
  int64_t N, P, C, G, Cg;
};
inline GnDims GnDimsOf(const Shape& x, const Attrs& a) {
  const int64_t n = x.dim(0), c = x.dim(-1), groups = GroupsOf(a);
  return {n, x.prod(1, x.rank() - 1), c, groups, c / groups};
}

// layer_norm / adaln_modulate: rows of C.
inline int64_t RowsOf(const Shape& x) { return x.prod(0, x.rank() - 1); }

}  // namespace cf::norm_internal
