// nn/transformer_2d.h.
#include "nn/transformer_2d.h"

#include "absl/strings/str_cat.h"
#include "ops/activation/activation.h"
#include "ops/elementwise/elementwise.h"

namespace cf {

Value BasicTransformerBlock(Builder& b, Value h, Value context, const TransformerBlockOptions& o) {
  if (!h.valid() || !context.valid()) return Value{};
  const int64_t C = h.dim(-1);
  const ParamOptions& p = o.params;
  Value n = LayerNormLayer(b, "norm1", h, o.norm_eps, true, p);                                 // [B, H, W, C]
  h = h + SelfAttentionLayer(b, n, o.self_attention, o.heads, p);                               // [B, H, W, C]
  n = LayerNormLayer(b, "norm2", h, o.norm_eps, true, p);                                       // [B, H, W, C]
  {
    auto s = b.scope("attn2");
    h = h + AttentionModule(b, n, context,
                            {.heads = o.heads, .head_dim = o.head_dim, .qkv_bias = o.attention_bias, .params = p});
  }                                                                                              // [B, H, W, C]
  n = LayerNormLayer(b, "norm3", h, o.norm_eps, true, p);                                       // [B, H, W, C]
  Value f = Geglu(LinearLayer(b, "ff.net.0.proj", n, 8 * C, true, p));                          // [B, H, W, 4C]
  return h + LinearLayer(b, "ff.net.2", f, C, true, p);                                         // [B, H, W, C]
}

Value Transformer2D(Builder& b, Value x, Value context, const Transformer2DOptions& o) {
  if (!x.valid() || !context.valid()) return Value{};
  if (!Check(b, x.rank() == 4,
             absl::InvalidArgumentError(
                 absl::StrCat("Transformer2DModel: x must be [B, H, W, C], got ", x.type().ToString()))))
    return Value{};
  if (!Check(b, o.self_attention.size() <= 1 || static_cast<int64_t>(o.self_attention.size()) == o.num_layers,
             absl::InvalidArgumentError(absl::StrCat("Transformer2DModel: ", o.self_attention.size(),
                                                     " self-attention choices for ", o.num_layers, " blocks"))))
    return Value{};
  const int64_t C = x.dim(-1), inner = o.heads * o.head_dim;
  Value h = GroupNormLayer(b, "norm", x, o.norm_groups, 1e-6, true, o.params);  // [B, H, W, C]
  h = LinearLayer(b, "proj_in", h, inner, true, o.params);                      // [B, H, W, inner]
  for (int64_t i = 0; i < o.num_layers; ++i) {
    auto s = b.scope(absl::StrCat("transformer_blocks.", i));
    TransformerBlockOptions bo;
    bo.heads = o.heads;
    bo.head_dim = o.head_dim;
    bo.attention_bias = o.attention_bias;
    bo.params = o.params;
    if (!o.self_attention.empty()) bo.self_attention = o.self_attention[o.self_attention.size() == 1 ? 0 : i];
    h = BasicTransformerBlock(b, h, context, bo);                               // [B, H, W, inner]
  }
  return LinearLayer(b, "proj_out", h, C, true, o.params) + x;                  // [B, H, W, C]
}

}  // namespace cf
