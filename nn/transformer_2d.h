// diffusers' BasicTransformerBlock (norm_type "layer_norm", GEGLU
// feed-forward) and Transformer2DModel (continuous input) as SD1.5 and SDXL
// use them, channels-last, with attn1 replaced by the per-layer choice of
// nn/attention.h.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "graph/builder.h"
#include "nn/attention.h"

namespace cf {

struct TransformerBlockOptions {
  int64_t heads = 8;
  int64_t head_dim = 40;
  double norm_eps = 1e-5;      // norm1..3
  bool attention_bias = false;  // q, k, v biases of attn1 and attn2
  SelfAttentionChoice self_attention;
  ParamOptions params;
};

// h [B, H, W, C], context [B, T, D] -> [B, H, W, C]:
//   h = h + attn1(norm1(h))            (or the chosen replacement, nn/attention.h)
//   h = h + attn2(norm2(h), context)   cross-attention
//   h = h + ff.net.2(GEGLU(ff.net.0.proj(norm3(h))))   inner 4·C
// Parameters in the current scope: norm1, attn1 (or conv1), norm2, attn2,
// norm3, ff.net.0.proj [8C, C], ff.net.2 [C, 4C].
Value BasicTransformerBlock(Builder& b, Value h, Value context, const TransformerBlockOptions& options);

struct Transformer2DOptions {
  int64_t heads = 8;
  int64_t head_dim = 40;
  int64_t num_layers = 1;
  int64_t norm_groups = 32;
  bool use_linear_projection = false;  // SDXL: nn.Linear; SD1.5: a 1x1 conv (the same map channels-last)
  bool attention_bias = false;
  // One choice per transformer block (empty: self-attention everywhere; one
  // entry: every block).
  std::vector<SelfAttentionChoice> self_attention;
  ParamOptions params;
};

// x [B, H, W, C], context [B, T, D] -> [B, H, W, C]:
//   h = proj_in(norm(x))        GroupNorm(groups, eps 1e-6); [B, H, W, inner]
//   h = transformer_blocks.i(h, context) for i < num_layers
//   out = proj_out(h) + x       [B, H, W, C]
// proj_in [inner, C] and proj_out [C, inner] load from nn.Linear or from the
// 1x1 nn.Conv2d's [out, in, 1, 1].
Value Transformer2D(Builder& b, Value x, Value context, const Transformer2DOptions& options);

}  // namespace cf
