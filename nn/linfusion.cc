// The LinFusion attention module (nn/linfusion.h). Parameter names follow the
// authors' GeneralizedLinearAttention (a diffusers Attention with two extra
// nn.Sequential MLPs, `to_q_` and `to_k_`; index 2 is the LeakyReLU, which
// has no parameters).
#include "nn/linfusion.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "ops/activation/activation.h"
#include "ops/attention/attention.h"
#include "ops/elementwise/elementwise.h"
#include "ops/matmul/matmul.h"
#include "ops/norm/norm.h"
#include "ops/shape/shape.h"

namespace cf {
namespace {

// Linear(in -> out) named `name` in the current scope: `name.weight` [out, in]
// and, with `bias`, `name.bias` [out].
Value Projection(Builder& b, Value x, const std::string& name, int64_t in, int64_t out, bool bias, DType dt,
                 bool frozen) {
  auto s = b.scope(name);
  Value w = b.Parameter("weight", Shape{out, in}, dt, {}, frozen);
  std::optional<Value> bv;
  if (bias) bv = b.Parameter("bias", Shape{out}, dt, {}, frozen);
  return Linear(x, w, bv);
}

// to_q_ / to_k_: Linear(C, mid) -> LayerNorm(mid) -> LeakyReLU -> Linear(mid, C).
Value Mlp(Builder& b, Value x, const std::string& name, int64_t C, int64_t mid, const LinFusionOptions& o, DType dt) {
  auto s = b.scope(name);
  Value h = Projection(b, x, "0", C, mid, true, dt, o.frozen);  // [B, N, mid]
  {
    auto ln = b.scope("1");
    h = LayerNorm(h, b.Parameter("weight", Shape{mid}, dt, {}, o.frozen),
                  b.Parameter("bias", Shape{mid}, dt, {}, o.frozen), o.norm_eps);  // [B, N, mid]
  }
  h = LeakyRelu(h, o.negative_slope);                                 // [B, N, mid]
  return Projection(b, h, "3", mid, C, true, dt, o.frozen);           // [B, N, C]
}

}  // namespace

Value LinFusionAttention(Builder& b, Value x, const LinFusionOptions& o) {
  if (!x.valid()) {
    if (b.ok()) b.Fail(absl::InvalidArgumentError("LinFusionAttention: the input is an invalid Value"));
    return Value{};
  }
  const Shape in_shape = x.shape();  // a copy: building ops may grow the graph
  if (in_shape.rank() != 3 && in_shape.rank() != 4) {
    b.Fail(absl::InvalidArgumentError(absl::StrCat("LinFusionAttention: x must be [B, N, C] or [B, H, W, C], got ",
                                                   x.type().ToString())));
    return Value{};
  }
  const int64_t B = in_shape[0], N = in_shape.prod(1, in_shape.rank() - 1), C = in_shape.dim(-1);
  const int64_t mid = o.mid_dim > 0 ? o.mid_dim : C;
  const DType dt = o.param_dtype.value_or(x.dtype());

  Value h = in_shape.rank() == 4 ? Reshape(x, {B, N, C}) : x;                  // [B, N, C]
  Value q = Projection(b, h + Mlp(b, h, "to_q_", C, mid, o, dt), "to_q", C, C, o.qkv_bias, dt, o.frozen);  // [B, N, C]
  Value k = Projection(b, h + Mlp(b, h, "to_k_", C, mid, o, dt), "to_k", C, C, o.qkv_bias, dt, o.frozen);  // [B, N, C]
  Value v = Projection(b, h, "to_v", C, C, o.qkv_bias, dt, o.frozen);          // [B, N, C]
  Value a = LinearAttention(q, k, v, {.heads = o.heads, .eps = o.eps});       // [B, N, C]
  // Back to x's shape before to_out: reshaping an intermediate is a view,
  // reshaping a graph output would be a copy.
  if (in_shape.rank() == 4) a = Reshape(a, std::vector<int64_t>(in_shape.dims().begin(), in_shape.dims().end()));
  return Projection(b, a, "to_out.0", C, C, true, dt, o.frozen);               // x's shape
}

}  // namespace cf
