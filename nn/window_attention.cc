// DiTFastAttn's residual window attention module (nn/window_attention.h).
#include "nn/window_attention.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ops/attention/attention.h"
#include "ops/elementwise/elementwise.h"
#include "ops/matmul/matmul.h"
#include "ops/shape/shape.h"

namespace cf {
namespace {

Value Projection(Builder& b, Value x, const std::string& name, int64_t C, bool bias, DType dt, bool frozen) {
  auto s = b.scope(name);
  Value w = b.Parameter("weight", Shape{C, C}, dt, {}, frozen);
  std::optional<Value> bv;
  if (bias) bv = b.Parameter("bias", Shape{C}, dt, {}, frozen);
  return Linear(x, w, bv);
}

Status CheckOptions(const Value& x, const WindowAttentionOptions& o) {
  const std::string mode = WindowAttentionModeName(o.mode);
  CF_CHECK_ARG(x.rank() == 3 || x.rank() == 4, "WindowAttention (", mode, "): x must be [B, N, C] or [B, H, W, C], got ",
               x.type().ToString());
  CF_CHECK_ARG(o.window >= 0, "WindowAttention (", mode, "): window must be >= 0, got ", o.window);
  if (o.mode != WindowAttentionMode::kWindowWithResidual) {
    CF_CHECK_ARG(!o.residual.has_value(), "WindowAttention (", mode,
                 "): a residual is only read by window_with_residual steps");
    return absl::OkStatus();
  }
  CF_CHECK_ARG(o.residual.has_value(), "WindowAttention (", mode, "): needs the residual of the last full_and_cache step");
  const Value& r = *o.residual;
  CF_CHECK_ARG(r.valid(), "WindowAttention (", mode, "): the residual is an invalid Value");
  const Shape& s = x.shape();
  const TensorType want{Shape{s[0], s.prod(1, s.rank() - 1), s.dim(-1)}, x.dtype()};
  CF_CHECK_ARG(r.type() == want, "WindowAttention (", mode, "): the residual must be ", want.ToString(), " for x ",
               x.type().ToString(), ", got ", r.type().ToString());
  return absl::OkStatus();
}

}  // namespace

const char* WindowAttentionModeName(WindowAttentionMode mode) {
  switch (mode) {
    case WindowAttentionMode::kFull: return "full";
    case WindowAttentionMode::kFullAndCache: return "full_and_cache";
    case WindowAttentionMode::kWindowWithResidual: return "window_with_residual";
  }
  return "?";
}

WindowAttentionOutputs WindowAttention(Builder& b, Value x, const WindowAttentionOptions& o) {
  if (!x.valid()) {
    if (b.ok()) b.Fail(absl::InvalidArgumentError("WindowAttention: the input is an invalid Value"));
    return {};
  }
  if (Status s = CheckOptions(x, o); !s.ok()) {
    b.Fail(s);
    return {};
  }
  const Shape in_shape = x.shape();  // a copy: building ops may grow the graph
  const int64_t B = in_shape[0], N = in_shape.prod(1, in_shape.rank() - 1), C = in_shape.dim(-1);
  const DType dt = o.param_dtype.value_or(x.dtype());

  Value h = in_shape.rank() == 4 ? Reshape(x, {B, N, C}) : x;                 // [B, N, C]
  Value q = Projection(b, h, "to_q", C, o.qkv_bias, dt, o.frozen);           // [B, N, C]
  Value k = Projection(b, h, "to_k", C, o.qkv_bias, dt, o.frozen);           // [B, N, C]
  Value v = Projection(b, h, "to_v", C, o.qkv_bias, dt, o.frozen);           // [B, N, C]

  WindowAttentionOutputs res;
  Value core;
  switch (o.mode) {
    case WindowAttentionMode::kFull:
      core = Attention(q, k, v, {.heads = o.heads});                          // [B, N, C]
      break;
    case WindowAttentionMode::kFullAndCache: {
      core = Attention(q, k, v, {.heads = o.heads});                          // [B, N, C] o_full
      Value win = Attention(q, k, v, {.heads = o.heads, .window = o.window}); // [B, N, C] o_win
      res.residual = core - win;                                              // [B, N, C] r
      break;
    }
    case WindowAttentionMode::kWindowWithResidual:
      core = Attention(q, k, v, {.heads = o.heads, .window = o.window}) + *o.residual;  // [B, N, C] o_win + r
      break;
  }
  // Back to x's shape before to_out: reshaping an intermediate is a view,
  // reshaping a graph output would be a copy.
  if (in_shape.rank() == 4) core = Reshape(core, std::vector<int64_t>(in_shape.dims().begin(), in_shape.dims().end()));
  res.out = Projection(b, core, "to_out.0", C, o.out_bias, dt, o.frozen);    // x's shape
  if (!b.ok()) return {};
  return res;
}

}  // namespace cf
