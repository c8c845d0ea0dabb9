#include "ops/conv/conv_params.h"

namespace cf {
namespace {

// [a, b] or [a] (both) from `attrs`, `def` when absent.
StatusOr<std::pair<int64_t, int64_t>> Pair(const Attrs& attrs, const std::string& name, int64_t def) {
  if (!attrs.Has(name)) return std::make_pair(def, def);
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> v, attrs.RequireInts(name));
  CF_CHECK_ARG(v.size() == 1 || v.size() == 2, "attribute '", name, "' must have 1 or 2 entries, got ", v.size());
  return std::make_pair(v[0], v.size() == 2 ? v[1] : v[0]);
}

// A hint when the shapes look like PyTorch's NCHW input / OIHW weight (the
// usual mistake when porting), empty otherwise.
std::string LayoutHint(const Shape& x, const Shape& w) {
  const bool weight_oihw = w[1] > w[3] && w[2] == w[3];  // [Cout, Cin, k, k]: channels before a square kernel
  const bool input_nchw = x[1] < x[3] && x[2] == x[3] && w[1] > 0 && x[1] % w[1] == 0;
  if (!weight_oihw && !input_nchw) return "";
  return absl::StrCat(" (", weight_oihw ? "the weight looks OIHW" : "", weight_oihw && input_nchw ? " and " : "",
                      input_nchw ? "the input looks NCHW" : "",
                      "; this runtime is channels-last: input [N, H, W, Cin], weight [Cout, kh, kw, Cin/groups]; "
                      "PyTorch checkpoints are converted at load time)");
}

}  // namespace

std::string ConvParams::ToString() const {
  return absl::StrCat("x", input_shape().ToString(), " w", weight_shape().ToString(), " stride ", sh, "x", sw,
                      " pad ", ph, "x", pw, " dil ", dh, "x", dw, " groups ", groups);
}

StatusOr<ConvParams> ConvParamsOf(const Attrs& attrs, const Shape& x, const Shape& w) {
  CF_CHECK_ARG(x.rank() == 4, "input must be NHWC [N, H, W, Cin], got ", x.ToString());
  CF_CHECK_ARG(w.rank() == 4, "weight must be [Cout, kh, kw, Cin/groups], got ", w.ToString());
  ConvParams p;
  p.n = x[0];
  p.h = x[1];
  p.w = x[2];
  p.cin = x[3];
  p.cout = w[0];
  p.kh = w[1];
  p.kw = w[2];
  CF_ASSIGN_OR_RETURN(auto stride, Pair(attrs, "stride", 1));
  CF_ASSIGN_OR_RETURN(auto pad, Pair(attrs, "padding", 0));
  CF_ASSIGN_OR_RETURN(auto dil, Pair(attrs, "dilation", 1));
  p.sh = stride.first;
  p.sw = stride.second;
  p.ph = pad.first;
  p.pw = pad.second;
  p.dh = dil.first;
  p.dw = dil.second;
  p.groups = attrs.Int("groups", 1);
  CF_CHECK_ARG(p.sh >= 1 && p.sw >= 1, "stride must be >= 1, got ", p.sh, "x", p.sw);
  CF_CHECK_ARG(p.dh >= 1 && p.dw >= 1, "dilation must be >= 1, got ", p.dh, "x", p.dw);
  CF_CHECK_ARG(p.ph >= 0 && p.pw >= 0, "padding must be >= 0, got ", p.ph, "x", p.pw);
  CF_CHECK_ARG(p.kh >= 1 && p.kw >= 1, "kernel must be at least 1x1, weight ", w.ToString());
  CF_CHECK_ARG(p.groups >= 1, "groups must be >= 1, got ", p.groups);
  CF_CHECK_ARG(p.cin % p.groups == 0, "groups ", p.groups, " does not divide the input channels ", p.cin,
               " (input ", x.ToString(), ")", LayoutHint(x, w));
  CF_CHECK_ARG(p.cout % p.groups == 0, "groups ", p.groups, " does not divide the output channels ", p.cout,
               " (weight ", w.ToString(), ")");
  CF_CHECK_ARG(w[3] == p.cin / p.groups, "channel mismatch: input ", x.ToString(), " has ", p.cin,
               " channels, so weight ", w.ToString(), " needs Cin/groups = ", p.cin / p.groups, " in its last dim",
               LayoutHint(x, w));
  const int64_t eff_h = (p.kh - 1) * p.dh + 1, eff_w = (p.kw - 1) * p.dw + 1;
  const int64_t span_h = p.h + 2 * p.ph - eff_h, span_w = p.w + 2 * p.pw - eff_w;
  CF_CHECK_ARG(span_h >= 0 && span_w >= 0, "output would be empty: input ", x.ToString(), " padded by ", p.ph, "x",
               p.pw, " is smaller than the dilated kernel ", eff_h, "x", eff_w, LayoutHint(x, w));
  p.ho = span_h / p.sh + 1;
  p.wo = span_w / p.sw + 1;
  return p;
}

StatusOr<ConvForm> ConvFormOf(const Attrs& attrs, size_t num_inputs) {
  ConvForm f;
  f.image_bias = attrs.Bool("image_bias", false);
  f.residual = attrs.Bool("residual", false);
  CF_ASSIGN_OR_RETURN(f.act, gemm::ParseActivation(attrs.Str("activation", "none")));
  const size_t fixed = 2 + f.image_bias + f.residual;
  CF_CHECK_ARG(num_inputs == fixed || num_inputs == fixed + 1, "expected ", fixed, " or ", fixed + 1,
               " inputs (x, weight, [bias]", f.image_bias ? ", image_bias" : "", f.residual ? ", residual" : "",
               "), got ", num_inputs);
  f.has_bias = num_inputs == fixed + 1;
  return f;
}

Attrs ConvAttrsOnly(const Attrs& attrs) {
  Attrs out;
  for (const char* name : {"stride", "padding", "dilation", "groups", "allow_tf32"}) {
    auto it = attrs.map().find(name);
    if (it != attrs.map().end()) out.Set(name, it->second);
  }
  return out;
}

}  // namespace cf
