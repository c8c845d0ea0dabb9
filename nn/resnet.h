// diffusers' ResnetBlock2D (time_embedding_norm "default"), Downsample2D and
// Upsample2D (both with their convolution), channels-last.
#pragma once

#include <cstdint>
#include <optional>

#include "graph/builder.h"
#include "nn/layers.h"

namespace cf {

struct ResnetOptions {
  int64_t out_channels = 0;      // 0: the input's
  int64_t groups = 32;           // norm1 and norm2 (diffusers' groups_out defaults to groups)
  double eps = 1e-5;
  double output_scale_factor = 1.0;
  ParamOptions params;
};

// x [B, H, W, Cin], temb [B, T] (the time embedding, before the block's SiLU)
// -> [B, H, W, Cout]:
//   h = conv1(silu(norm1(x)))                       [B, H, W, Cout]   3x3
//   h = h + time_emb_proj(silu(temb))[:, None, None] [B, H, W, Cout]
//   h = conv2(silu(norm2(h)))                       [B, H, W, Cout]   3x3 (dropout: inference)
//   out = (conv_shortcut(x) or x + h) / output_scale_factor
// In the builder's current scope: norm1, conv1 [Cout, 3, 3, Cin],
// time_emb_proj [Cout, T], norm2, conv2 [Cout, 3, 3, Cout], and
// conv_shortcut [Cout, Cin] (a 1x1 conv) when Cin != Cout.
Value ResnetBlock2D(Builder& b, Value x, Value temb, const ResnetOptions& options);
// The same without a time embedding (temb_channels=None, the VAE's): no
// time_emb_proj, nothing added between conv1 and norm2.
Value ResnetBlock2D(Builder& b, Value x, const ResnetOptions& options);

// Downsample2D(use_conv=True): conv [Cout, 3, 3, C], stride 2, padding `padding`
// (diffusers' downsample_padding, 1 in SD), in scope "conv". [B, H, W, C] ->
// [B, (H + 2p - 3) / 2 + 1, ..., Cout].
Value Downsample2D(Builder& b, Value x, int64_t out_channels, int64_t padding = 1, const ParamOptions& params = {});

// Upsample2D(use_conv=True): nearest 2x (or to `size` (H', W') with H' = 2H
// or 2H - 1, F.interpolate's nearest, as diffusers does when the input size
// is not a multiple of the model's downsampling factor), then conv
// [Cout, 3, 3, C] padding 1 in scope "conv".
Value Upsample2D(Builder& b, Value x, int64_t out_channels, std::optional<Size2> size = std::nullopt,
                 const ParamOptions& params = {});

}  // namespace cf
