// Host-side pieces shared by the pool family's op definitions: argument
// checks, the shape rules of the resampling ops and their backward ops, and
// the VJP that calls a backward op with the input's spatial size.
#pragma once

#include <vector>

#include "ops/op.h"
#include "ops/pool/pool_internal.h"

namespace cf::pool_internal {

// x must be a floating NHWC image.
inline Status CheckNhwc(const TensorType& x, const char* what = "x") {
  CF_CHECK_ARG(x.shape.rank() == 4, what, " must be [N, H, W, C], got ", x.shape.ToString());
  CF_CHECK_ARG(IsFloating(x.dtype), what, " must be floating, got ", DTypeName(x.dtype));
  return absl::OkStatus();
}

// A pair attribute given as [a, b] or [a] (both a); `def` when absent.
inline StatusOr<std::vector<int64_t>> PairAttr(const Attrs& attrs, const std::string& name,
                                               std::vector<int64_t> def) {
  if (!attrs.Has(name)) return def;
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> v, attrs.RequireInts(name));
  if (v.size() == 1) v.push_back(v[0]);
  CF_CHECK_ARG(v.size() == 2, "attribute ", name, " must have 1 or 2 values, got ", v.size());
  return v;
}

// avg_pool2d's kernel, stride (default: the kernel) and padding (default 0),
// checked against PyTorch's rules.
inline StatusOr<PoolGeom> ParsePoolGeom(const Attrs& a) {
  CF_CHECK_ARG(a.Has("kernel"), "missing attribute 'kernel' ([kh, kw])");
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> k, PairAttr(a, "kernel", {}));
  std::vector<int64_t> s = k;
  if (!a.Ints("stride").empty()) {
    CF_ASSIGN_OR_RETURN(s, PairAttr(a, "stride", k));
  }
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> p, PairAttr(a, "padding", {0, 0}));
  CF_CHECK_ARG(k[0] >= 1 && k[1] >= 1, "kernel must be >= 1, got ", k[0], "x", k[1]);
  CF_CHECK_ARG(s[0] >= 1 && s[1] >= 1, "stride must be >= 1, got ", s[0], "x", s[1]);
  CF_CHECK_ARG(p[0] >= 0 && p[1] >= 0, "padding must be >= 0, got ", p[0], "x", p[1]);
  CF_CHECK_ARG(p[0] <= k[0] / 2 && p[1] <= k[1] / 2, "padding ", p[0], "x", p[1],
               " must be at most half the kernel ", k[0], "x", k[1]);
  CF_CHECK_ARG(!a.Bool("ceil_mode", false), "ceil_mode=true is not supported");
  CF_CHECK_ARG(a.Bool("count_include_pad", true), "count_include_pad=false is not supported");
  return PoolGeom{k[0], k[1], s[0], s[1], p[0], p[1]};
}

// The [oh, ow] (or [s]) attribute `name` of a resampling op, required, >= 1.
StatusOr<std::vector<int64_t>> SizeAttr(const Attrs& a, const std::string& name);

// A backward op's attribute input_hw [H, W], >= 1.
StatusOr<std::vector<int64_t>> InputHwAttr(const Attrs& a);

// Output of resampling x [N, H, W, C] (checked by the caller) to the size in
// attribute `size_attr`: [N, oh, ow, C].
StatusOr<std::vector<TensorType>> ResampledTypes(const TensorType& x, const Attrs& a, const std::string& size_attr);

// Shape rule of adaptive_avg_pool2d_backward and resize_bilinear_backward:
// dy [N, oh, ow, C] -> dx [N, H, W, C] with attribute input_hw.
StatusOr<std::vector<TensorType>> InferResampledBackward(const OpCall& c);

// VJP of a one-input pool op: `backward_op`(dy) with `attrs` plus input_hw,
// the forward input's [H, W].
StatusOr<std::vector<Value>> BackwardWithInputHw(VjpContext& ctx, const char* backward_op, Attrs attrs);

}  // namespace cf::pool_internal
