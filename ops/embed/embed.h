// Embeddings (docs/ops/embed.md): token embedding lookup (gather) and its
// table gradient, diffusion timestep embeddings and PixArt / MAE 2D sin-cos
// position embeddings.
#pragma once

#include "graph/builder.h"

namespace cf {

// "gather": table [V, D] (floating), indices [...] (i32 / i64) -> [..., D],
// out[n] = table[indices[n]]. An out-of-range index is an InvalidArgument
// error on the CPU; the CUDA kernel writes a row of NaNs for it (no device
// sync). Differentiable w.r.t. the table only (via embedding_backward).
Value Gather(Value table, Value indices);

// "embedding_backward": grad [..., D], indices [...] -> [V, D] (V =
// num_embeddings), row v = sum of grad rows whose index is v, added in token
// order (deterministic on both backends). Out-of-range indices are an error on
// the CPU and skipped on CUDA.
Value EmbeddingBackward(Value grad, Value indices, int64_t num_embeddings);

// Attributes of "timestep_embedding"; defaults are diffusers'
// get_timestep_embedding. Stable Diffusion's U-Net uses flip_sin_to_cos = true
// and downscale_freq_shift = 0.
struct TimestepEmbeddingOptions {
  bool flip_sin_to_cos = false;
  double downscale_freq_shift = 1.0;
  double max_period = 10000.0;
  double scale = 1.0;
  DType dtype = DType::f32;  // of the output
};
// "timestep_embedding": timesteps [B] (float or int) -> [B, dim]:
// half = dim / 2, freq_k = exp(-ln(max_period) * k / (half - shift)),
// arg = scale * t * freq_k, rows [sin(arg), cos(arg)] ([cos, sin] when
// flipped), and a zero column last when dim is odd. Not differentiable.
Value TimestepEmbedding(Value timesteps, int64_t dim, const TimestepEmbeddingOptions& options = {});

// "sincos_pos_embed_2d": no inputs -> [h * w, embed_dim], diffusers'
// get_2d_sincos_pos_embed(embed_dim, (h, w), base_size, interpolation_scale).
// Row r = i * w + j (grid row i, column j). Columns [0, D/2) encode the column
// coordinate pos_w = j / (w / base_size) / interpolation_scale and
// [D/2, D) the row coordinate pos_h = i / (h / base_size) / interpolation_scale;
// each half is [sin(pos * omega_k), cos(pos * omega_k)] for k < D/4 with
// omega_k = 10000^(-k / (D/4)). embed_dim must be divisible by 4. MAE's
// embedding is base_size = grid size, interpolation_scale = 1.
// Like Full, it has no input value, so it takes the Builder first.
struct SinCosPosEmbedOptions {
  double base_size = 16.0;
  double interpolation_scale = 1.0;
  DType dtype = DType::f32;
};
Value SinCosPosEmbed2d(Builder& b, int64_t embed_dim, int64_t h, int64_t w,
                       const SinCosPosEmbedOptions& options = {});

}  // namespace cf
