// LinFusion's generalized linear attention (attention.h), composed from
// existing ops. Per (batch, head) it costs O(N d^2) instead of O(N^2 d), and
// every piece (elu, the two small GEMMs, the mean, the division) already has
// CPU and CUDA kernels and a VJP, so autodiff and accounting come for free.
// The N-sized work is four permutes, two elementwise passes for phi, two
// batched GEMMs with N rows and one division; a fused op would save the
// permutes only (measured in docs/linfusion-and-window.md).
#include <cmath>

#include "absl/strings/str_cat.h"
#include "ops/activation/activation.h"
#include "ops/attention/attention.h"
#include "ops/elementwise/elementwise.h"
#include "ops/matmul/matmul.h"
#include "ops/reduce/reduce.h"
#include "ops/shape/shape.h"

namespace cf {
namespace {

Status CheckLinearAttention(const Value& q, const Value& k, const Value& v, const LinearAttentionOptions& o) {
  const auto shapes = [&] {
    return absl::StrCat(" (q ", q.type().ToString(), ", k ", k.type().ToString(), ", v ", v.type().ToString(),
                        ", heads ", o.heads, ")");
  };
  CF_CHECK_ARG(q.rank() == 3, "linear_attention: q must be [B, N, heads*d]", shapes());
  CF_CHECK_ARG(k.shape() == q.shape() && v.shape() == q.shape(),
               "linear_attention: q, k and v must have the same shape [B, N, heads*d]", shapes());
  CF_CHECK_ARG(k.dtype() == q.dtype() && v.dtype() == q.dtype(), "linear_attention: q, k and v must share a dtype",
               shapes());
  CF_CHECK_ARG(o.heads >= 1 && q.dim(2) % o.heads == 0,
               "linear_attention: the channels must be divisible by heads", shapes());
  CF_CHECK_ARG(q.dim(1) >= 1 && q.dim(2) >= 1, "linear_attention: empty tokens or channels", shapes());
  CF_CHECK_ARG(o.eps >= 0, "linear_attention: eps must be >= 0", shapes());
  return absl::OkStatus();
}

}  // namespace

Value LinearAttention(Value q, Value k, Value v, const LinearAttentionOptions& options) {
  if (!q.valid() || !k.valid() || !v.valid()) {
    // An invalid input without a builder is an earlier error; with one (from
    // another op's failure) the ops below report it through their own checks.
    Builder* b = q.b ? q.b : k.b ? k.b : v.b;
    if (b != nullptr && b->ok()) b->Fail(absl::InvalidArgumentError("linear_attention: an input is an invalid Value"));
    return Value{};
  }
  if (Status s = CheckLinearAttention(q, k, v, options); !s.ok()) {
    q.b->Fail(s);
    return Value{};
  }
  const int64_t B = q.dim(0), N = q.dim(1), C = q.dim(2), H = options.heads, d = C / H;
  const double rn = 1.0 / std::sqrt(static_cast<double>(N));
  const std::vector<int64_t> to_heads = {0, 2, 1, 3};  // [B, N, H, d] <-> [B, H, N, d]

  // phi(k) / sqrt(N) in one "scale" after elu: the authors scale k and v by
  // 1/sqrt(N) each before the product so that f16 sums over N cannot
  // overflow; scaling k here and the small kv below is the same product.
  Value phik = Scale(Elu(k), rn, rn);                                        // [B, N, C]
  Value phiq = Elu(q) + 1.0;                                                 // [B, N, C]
  phik = Permute(Reshape(phik, {B, N, H, d}), to_heads);                     // [B, H, N, d]
  phiq = Permute(Reshape(phiq, {B, N, H, d}), to_heads);                     // [B, H, N, d]
  Value vh = Permute(Reshape(v, {B, N, H, d}), to_heads);                    // [B, H, N, d]

  Value kv = MatMul(phik, vh, std::nullopt, {.trans_a = true}) * rn;         // [B, H, d, d]
  Value kmean = Sum(phik, {2}, /*keepdim=*/true) * rn;                       // [B, H, 1, d] = mean_N phi(k)
  Value z = MatMul(phiq, kmean, std::nullopt, {.trans_b = true}) + options.eps;  // [B, H, N, 1]
  Value out = MatMul(phiq, kv) / z;                                          // [B, H, N, d]
  return Reshape(Permute(out, to_heads), {B, N, C});                         // [B, N, C]
}

}  // namespace cf
