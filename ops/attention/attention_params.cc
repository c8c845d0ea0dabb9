#include "ops/attention/attention_params.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace cf {
namespace {

bool IsFloat(DType t) { return t == DType::f32 || t == DType::f16 || t == DType::bf16 || t == DType::f64; }

// {a} or {a, b} -> (a, a) or (a, b).
StatusOr<std::pair<int64_t, int64_t>> Pair(absl::string_view op, const Attrs& attrs, const std::string& name,
                                           int64_t def) {
  std::vector<int64_t> v = attrs.Ints(name, {def});
  CF_CHECK_ARG(v.size() == 1 || v.size() == 2, op, ": attribute '", name, "' needs 1 or 2 values, got ", v.size());
  return std::make_pair(v[0], v.size() == 2 ? v[1] : v[0]);
}

}  // namespace

int64_t SdpaParams::VisiblePairs() const {
  if (!causal && window < 0) return nq * nkv;
  int64_t pairs = 0;
  for (int64_t i = 0; i < nq; ++i) pairs += KeyEnd(i) - KeyBegin(i);
  return pairs;
}

std::string SdpaParams::ToString() const {
  std::string s = absl::StrCat("B ", batch, ", Nq ", nq, ", Nkv ", nkv, ", ", heads, " heads x ", head_dim);
  if (causal) absl::StrAppend(&s, ", causal");
  if (window >= 0) absl::StrAppend(&s, ", window ", window);
  if (has_mask) absl::StrAppend(&s, ", key mask");
  return s;
}

StatusOr<SdpaParams> SdpaParamsOf(absl::string_view op, const Attrs& attrs, const TensorType& q,
                                  const TensorType& k, const TensorType& v, const TensorType* mask) {
  const std::string shapes = absl::StrCat("q ", q.ToString(), ", k ", k.ToString(), ", v ", v.ToString(),
                                          mask ? absl::StrCat(", key_mask ", mask->ToString()) : "");
  CF_CHECK_ARG(IsFloat(q.dtype) && k.dtype == q.dtype && v.dtype == q.dtype, op,
               ": q, k and v need one floating dtype (", shapes, ")");
  CF_CHECK_ARG(q.shape.rank() == 3 && k.shape.rank() == 3 && v.shape.rank() == 3, op,
               ": q, k and v must be [B, N, heads*d] (", shapes, ")");
  SdpaParams p;
  p.batch = q.shape.dim(0);
  p.nq = q.shape.dim(1);
  p.nkv = k.shape.dim(1);
  CF_ASSIGN_OR_RETURN(p.heads, attrs.RequireInt("heads"));
  CF_CHECK_ARG(p.heads >= 1, op, ": heads must be >= 1, got ", p.heads);
  const int64_t c = q.shape.dim(2);
  CF_CHECK_ARG(c % p.heads == 0 && c > 0, op, ": q's channels ", c, " are not divisible by heads ", p.heads, " (",
               shapes, ")");
  p.head_dim = c / p.heads;
  CF_CHECK_ARG(k.shape.dim(0) == p.batch && v.shape.dim(0) == p.batch, op, ": batch mismatch between q, k and v (",
               shapes, ")");
  CF_CHECK_ARG(k.shape.dim(2) == c && v.shape.dim(2) == c, op, ": k and v need q's ", c, " channels (", shapes, ")");
  CF_CHECK_ARG(v.shape.dim(1) == p.nkv, op, ": k and v need the same number of tokens (", shapes, ")");
  p.scale = attrs.Float("scale", 1.0 / std::sqrt(static_cast<double>(p.head_dim)));
  CF_CHECK_ARG(std::isfinite(p.scale), op, ": scale must be finite, got ", p.scale);
  p.causal = attrs.Bool("causal", false);
  p.window = attrs.Int("window", -1);
  CF_CHECK_ARG(p.window >= -1, op, ": window must be >= 0 (or -1 for none), got ", p.window);
  CF_CHECK_ARG(p.window < 0 || p.nq == p.nkv, op, ": a window band needs self-attention (Nq == Nkv) (", shapes, ")");
  if (mask) {
    p.has_mask = true;
    CF_CHECK_ARG(mask->dtype == DType::boolean || mask->dtype == DType::u8, op,
                 ": key_mask must be boolean or u8 (", shapes, ")");
    CF_CHECK_ARG(mask->shape == Shape({p.batch, p.nkv}), op, ": key_mask must be [B, Nkv] = [", p.batch, ", ", p.nkv,
                 "] (", shapes, ")");
  }
  return p;
}

std::string NaParams::ToString() const {
  return absl::StrCat("x[", batch, ", ", height, ", ", width, ", ", heads, " x ", head_dim, "] kernel ", kh, "x", kw,
                      " dilation ", dh, "x", dw);
}

StatusOr<NaParams> NaParamsOf(absl::string_view op, const Attrs& attrs, const TensorType& q, const TensorType& k,
                              const TensorType& v) {
  const std::string shapes = absl::StrCat("q ", q.ToString(), ", k ", k.ToString(), ", v ", v.ToString());
  CF_CHECK_ARG(IsFloat(q.dtype) && k.dtype == q.dtype && v.dtype == q.dtype, op,
               ": q, k and v need one floating dtype (", shapes, ")");
  CF_CHECK_ARG(q.shape.rank() == 4, op, ": q, k and v must be [B, H, W, heads*d] (", shapes, ")");
  CF_CHECK_ARG(k.shape == q.shape && v.shape == q.shape, op, ": q, k and v need the same shape (", shapes, ")");
  NaParams p;
  p.batch = q.shape.dim(0);
  p.height = q.shape.dim(1);
  p.width = q.shape.dim(2);
  CF_ASSIGN_OR_RETURN(p.heads, attrs.RequireInt("heads"));
  CF_CHECK_ARG(p.heads >= 1, op, ": heads must be >= 1, got ", p.heads);
  const int64_t c = q.shape.dim(3);
  CF_CHECK_ARG(c % p.heads == 0 && c > 0, op, ": channels ", c, " are not divisible by heads ", p.heads, " (", shapes,
               ")");
  p.head_dim = c / p.heads;
  CF_ASSIGN_OR_RETURN(auto kernel, Pair(op, attrs, "kernel", 0));
  CF_ASSIGN_OR_RETURN(auto dilation, Pair(op, attrs, "dilation", 1));
  std::tie(p.kh, p.kw) = kernel;
  std::tie(p.dh, p.dw) = dilation;
  CF_CHECK_ARG(p.kh % 2 == 1 && p.kw % 2 == 1 && p.kh >= 3 && p.kw >= 3 && p.kh <= 31 && p.kw <= 31, op,
               ": the kernel must be odd and in [3, 31] per axis, got ", p.kh, "x", p.kw, " (", shapes, ")");
  CF_CHECK_ARG(p.dh >= 1 && p.dw >= 1, op, ": dilation must be >= 1, got ", p.dh, "x", p.dw);
  CF_CHECK_ARG(p.kh * p.dh <= p.height && p.kw * p.dw <= p.width, op, ": kernel ", p.kh, "x", p.kw, " with dilation ",
               p.dh, "x", p.dw, " does not fit the ", p.height, "x", p.width, " map (", shapes, ")");
  p.scale = attrs.Float("scale", 1.0 / std::sqrt(static_cast<double>(p.head_dim)));
  CF_CHECK_ARG(std::isfinite(p.scale), op, ": scale must be finite, got ", p.scale);
  return p;
}

}  // namespace cf
