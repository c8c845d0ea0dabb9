// diffusers' PixArtTransformer2DModel (PixArt-alpha and PixArt-Sigma), built
// from its config.json (channels-last inside; diffusers' [B, C, H, W] at the
// boundary), with each block's self-attention chosen per layer
// (nn/attention.h). docs/models.md has the architecture, the choices and the
// checkpoint layout.
//
//   CF_ASSIGN_OR_RETURN(auto cfg, PixArtTransformerConfig::Load("sigma/transformer"));
//   Graph g;
//   Builder b(&g);
//   CF_ASSIGN_OR_RETURN(PixArtOutputs o, BuildPixArtTransformerGraph(b, cfg, {.height = 128, .width = 128}));
//   // graph inputs hidden_states, timestep, encoder_hidden_states (+
//   // encoder_attention_mask, resolution, aspect_ratio); output "output" [B, 8, 128, 128]
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "graph/builder.h"
#include "nn/attention.h"
#include "nn/diffusers_config.h"

namespace cf {

// The configuration the builder understands (PixArtTransformer2DModel's
// keys; the released files say "Transformer2DModel" with norm_type
// "ada_norm_single", which diffusers maps to the same class).
struct PixArtTransformerConfig {
  int64_t heads = 16;      // num_attention_heads
  int64_t head_dim = 72;   // attention_head_dim
  int64_t in_channels = 4;
  int64_t out_channels = 8;  // 8: the learned-sigma output (eps and variance)
  int64_t num_layers = 28;
  int64_t cross_attention_dim = 1152;  // attn2's key / value width (= the inner dim after caption_projection)
  bool attention_bias = true;          // to_q / to_k / to_v biases of attn1 and attn2
  int64_t sample_size = 128;           // the training latent size: base_size = sample_size / patch_size
  int64_t patch_size = 2;
  bool gelu_tanh = true;               // activation_fn "gelu-approximate" (else "gelu")
  bool norm_elementwise_affine = false;
  double norm_eps = 1e-6;
  // Resolved as diffusers does: interpolation_scale, else max(sample_size / 64, 1);
  // use_additional_conditions, else sample_size == 128.
  double interpolation_scale = 2.0;
  bool use_additional_conditions = true;
  int64_t caption_channels = 4096;  // 0: no caption_projection (encoder_hidden_states are cross_attention_dim wide)
  // What the reader ignored (unknown keys), for the caller to print.
  std::string note;

  int64_t inner_dim() const { return heads * head_dim; }
  int64_t base_size() const { return sample_size / patch_size; }

  // Errors name the file and the key: wrong types, values the builder does
  // not implement (another norm_type or activation_fn, double or only
  // cross-attention, vector embeddings, ...) and sizes that do not fit
  // (cross_attention_dim != inner dim with a caption projection, an inner dim
  // not divisible by 3 with additional conditions).
  static StatusOr<PixArtTransformerConfig> FromDiffusers(const DiffusersConfig& config);
  static StatusOr<PixArtTransformerConfig> Load(const std::string& path);  // a folder or its config.json
  // The released configurations (their transformer/config.json, written in the code).
  static PixArtTransformerConfig PixArtAlpha512();     // PixArt-alpha/PixArt-XL-2-512x512
  static PixArtTransformerConfig PixArtAlpha1024MS();  // PixArt-alpha/PixArt-XL-2-1024-MS
  static PixArtTransformerConfig PixArtSigma1024MS();  // PixArt-alpha/PixArt-Sigma-XL-2-1024-MS
};

// One BasicTransformerBlock with norm_type "ada_norm_single", channels-last.
struct PixArtBlockOptions {
  int64_t heads = 16;
  int64_t head_dim = 72;
  double norm_eps = 1e-6;       // norm1, norm2
  bool norm_affine = false;     // norm_elementwise_affine
  bool attention_bias = true;   // q, k, v biases of attn1 and attn2
  bool gelu_tanh = true;        // the feed-forward's GELU
  SelfAttentionChoice self_attention;  // a ConvBlock's kernel and gate as given (0: ConvBlockOptions' 13)
  std::optional<Value> encoder_attention_mask = std::nullopt;  // [B, T], nonzero: keep
  ParamOptions params;
};
struct PixArtBlockOutputs {
  Value out;         // [B, h, w, D]
  Value after_self;  // [B, h, w, D], the state after the self-attention residual add
};
// h [B, h, w, D], context [B, T, Dc], timestep [B, 6D] (adaln_single's output):
//   shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp =
//       chunk6(scale_shift_table [6, D] + timestep.reshape(B, 6, D))     each [B, 1, D]
//   h = h + gate_msa · attn1(norm1(h) · (1 + scale_msa) + shift_msa)   (or the chosen replacement)
//   h = h + attn2(h, context)                                          (no norm before it, as PixArt)
//   h = h + gate_mlp · ff.net.2(GELU(ff.net.0.proj(norm2(h) · (1 + scale_mlp) + shift_mlp)))   inner 4·D
// Parameters in the current scope: scale_shift_table [6, D], attn1 (or
// conv1), attn2, ff.net.0.proj [4D, D], ff.net.2 [D, 4D] (+ norm1 / norm2
// weights with norm_affine).
PixArtBlockOutputs PixArtTransformerBlock(Builder& b, Value h, Value context, Value timestep,
                                          const PixArtBlockOptions& options);

// One transformer block whose self-attention is chosen.
struct PixArtAttentionSite {
  std::string scope;  // "transformer_blocks.3" (below the model's scope)
  int block = 0;
  int64_t channels = 0;
  int64_t height = 0, width = 0;  // the token grid
  SelfAttentionChoice choice;     // what was built
};

struct PixArtBuildOptions {
  // Every block's self-attention unless `per_layer` says otherwise. A
  // ConvBlock takes the released PixArt block's size and gate where the
  // choice leaves them open: kernel 0 is K = 13 and the gate "released" is
  // the released PixArt code's x1 · sigmoid(x2) (docs/paper-facts.md);
  // "paper" keeps the paper's scaled gate.
  SelfAttentionChoice self_attention;
  // Last word per block: return a choice to override (resolved as above).
  std::function<std::optional<SelfAttentionChoice>(const PixArtAttentionSite&)> per_layer;
  ParamOptions params;  // default dtype: hidden_states'
};

struct PixArtInputs {
  Value hidden_states;          // [B, in_channels, H, W] (diffusers' layout), H and W multiples of patch_size
  Value timestep;               // [B] or [] (float or int)
  Value encoder_hidden_states;  // [B, T, caption_channels] (or cross_attention_dim without a caption projection)
  std::optional<Value> encoder_attention_mask = std::nullopt;  // [B, T] u8 / boolean, nonzero: keep
  std::optional<Value> resolution = std::nullopt;    // [B, 2] (height, width) with use_additional_conditions
  std::optional<Value> aspect_ratio = std::nullopt;  // [B, 1]
};

struct PixArtOutputs {
  Value sample;  // [B, out_channels, H, W]
  // Intermediate activations by module, in diffusers' token layout: "pos_embed"
  // [B, h, w, D] (= [B, N, D]), "adaln_single.emb" (the embedded timestep)
  // [B, D], "adaln_single" [B, 6D], "caption_projection" [B, T, D],
  // "transformer_blocks.i" [B, h, w, D] and "transformer_blocks.i.self" (the
  // state right after the self-attention residual add: the distillation
  // feature) [B, h, w, D].
  std::vector<std::pair<std::string, Value>> taps;
  std::vector<PixArtAttentionSite> sites;  // every block, in order
};

// Builds the model in the builder's current scope. Errors (shapes that do not
// fit the config, a bad choice, missing additional conditions) are recorded
// in the builder.
PixArtOutputs PixArtTransformer2D(Builder& b, const PixArtTransformerConfig& config, const PixArtInputs& inputs,
                                  const PixArtBuildOptions& options = {});

// A whole graph with diffusers' input names: hidden_states [B, C, H, W],
// timestep [B] f32, encoder_hidden_states [B, tokens, caption_channels],
// encoder_attention_mask [B, tokens] u8 (with attention_mask), resolution
// [B, 2] and aspect_ratio [B, 1] f32 (with use_additional_conditions); the
// output "output" [B, out_channels, H, W]. Batch 2 is classifier-free
// guidance's; 120 tokens is PixArt-alpha's T5 length (Sigma: 300).
struct PixArtGraphShape {
  int64_t batch = 2;
  int64_t height = 128, width = 128;  // latent size (image / 8)
  int64_t tokens = 120;
  bool attention_mask = false;
  DType dtype = DType::f32;
};
StatusOr<PixArtOutputs> BuildPixArtTransformerGraph(Builder& b, const PixArtTransformerConfig& config,
                                                    const PixArtGraphShape& shape,
                                                    const PixArtBuildOptions& options = {});

}  // namespace cf
