// diffusers' UNet2DConditionModel as Stable Diffusion 1.5 and SDXL use it,
// built from its config.json (channels-last inside; diffusers' [B, C, H, W]
// at the boundary), with each transformer block's self-attention chosen per
// layer (nn/attention.h). docs/models.md has the architecture, the choices
// and the checkpoint layout.
//
//   CF_ASSIGN_OR_RETURN(auto cfg, UNet2DConditionConfig::Load("sd15/unet"));
//   Graph g;
//   Builder b(&g);
//   CF_ASSIGN_OR_RETURN(UNetOutputs u, BuildUNet2DConditionGraph(b, cfg, {.height = 64, .width = 64}));
//   // graph inputs sample, timestep, encoder_hidden_states (+ text_embeds,
//   // time_ids for SDXL); graph output "output" [B, 4, 64, 64]
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

// The configuration the builder understands. Per-block lists are expanded
// from diffusers' "int or tuple" keys; down-block order.
struct UNet2DConditionConfig {
  int64_t in_channels = 4;
  int64_t out_channels = 4;
  bool center_input_sample = false;
  bool flip_sin_to_cos = true;
  double freq_shift = 0.0;
  std::vector<std::string> down_block_types;  // CrossAttnDownBlock2D | DownBlock2D
  std::string mid_block_type = "UNetMidBlock2DCrossAttn";  // or "" (none)
  std::vector<std::string> up_block_types;    // CrossAttnUpBlock2D | UpBlock2D
  std::vector<int64_t> block_out_channels;
  std::vector<int64_t> layers_per_block;                      // per down block (up blocks have one more)
  int64_t downsample_padding = 1;
  double mid_block_scale_factor = 1.0;
  int64_t norm_num_groups = 32;
  double norm_eps = 1e-5;
  std::vector<int64_t> cross_attention_dim;                   // per down block
  std::vector<int64_t> transformer_layers_per_block;          // per down block (mid: the last)
  std::vector<int64_t> reverse_transformer_layers_per_block;  // per up block
  // Heads per down block: num_attention_heads, else attention_head_dim, which
  // diffusers reads as the number of heads (SD1.5's 8 is 8 heads of
  // 40/80/160; SDXL's [5, 10, 20] are heads of 64).
  std::vector<int64_t> attention_heads;
  bool use_linear_projection = false;
  int64_t conv_in_kernel = 3;
  int64_t conv_out_kernel = 3;
  int64_t time_embed_dim = 0;  // time_embedding_dim, default 4 · block_out_channels[0]
  // SDXL: addition_embed_type "text_time".
  bool text_time = false;
  int64_t addition_time_embed_dim = 0;
  int64_t projection_class_embeddings_input_dim = 0;
  // The authors' ConvFusion keys (0: no ConvBlock in that block); empty when absent.
  std::vector<int64_t> down_conv1_kernels, up_conv1_kernels;
  int64_t mid_conv1_kernel = 0;
  bool has_conv1_kernels = false;
  // What the reader ignored (unknown keys), for the caller to print.
  std::string note;

  // Errors name the file and the key: a missing required key
  // (block_out_channels, down_block_types, up_block_types,
  // cross_attention_dim), wrong types or list lengths, and values the builder
  // does not implement (class embeddings, other block types, ...).
  static StatusOr<UNet2DConditionConfig> FromDiffusers(const DiffusersConfig& config);
  static StatusOr<UNet2DConditionConfig> Load(const std::string& path);  // a folder or its config.json
  // The released configurations (their config.json, written in the code).
  static UNet2DConditionConfig StableDiffusion15();
  static UNet2DConditionConfig StableDiffusionXL();
};

// One transformer block whose self-attention is chosen.
struct UNetAttentionSite {
  std::string scope;       // "down_blocks.1.attentions.0.transformer_blocks.1" (below the UNet's scope)
  std::string part;        // "down", "mid", "up"
  int block = 0;           // index in down_blocks / up_blocks (0 for mid)
  int64_t channels = 0;
  int64_t height = 0, width = 0;  // the map's size at this block
  int64_t config_kernel = 0;      // the authors' conv1 key for this block (0: none or absent)
  int64_t released_kernel = 0;    // the released ConvBlock size for this block (0: unknown)
  SelfAttentionChoice choice;     // what was built
};

struct UNetBuildOptions {
  // Every transformer block's self-attention, unless the config's conv1 keys
  // or `per_layer` say otherwise. A ConvBlock with kernel 0 takes the
  // config's size for its block, else the released size (SD1.5 / SDXL), else 13.
  SelfAttentionChoice self_attention;
  // The authors' config keys select ConvBlocks (of their size) where > 0.
  bool config_conv1_kernels = true;
  // Last word per block: return a choice to override (kernel 0 resolved as above).
  std::function<std::optional<SelfAttentionChoice>(const UNetAttentionSite&)> per_layer;
  ParamOptions params;  // default dtype: the sample's
};

struct UNetInputs {
  Value sample;                 // [B, in_channels, H, W] (diffusers' layout)
  Value timestep;               // [B] or [] (float or int)
  Value encoder_hidden_states;  // [B, T, cross_attention_dim]
  std::optional<Value> text_embeds = std::nullopt;  // SDXL: [B, Dt]
  std::optional<Value> time_ids = std::nullopt;     // SDXL: [B, n], n · addition_time_embed_dim + Dt = projection dim
};

struct UNetOutputs {
  Value sample;  // [B, out_channels, H, W]
  // Intermediate activations, channels-last, by module: "time_embedding"
  // and (SDXL) "add_embedding" [B, T], "conv_in", "down_blocks.i" (the
  // block's last output), "mid_block", "up_blocks.i" [B, h, w, C].
  std::vector<std::pair<std::string, Value>> taps;
  std::vector<UNetAttentionSite> sites;  // every transformer block, in build order
};

// Builds the model in the builder's current scope. Errors (shapes that do not
// fit the config, a bad choice) are recorded in the builder.
UNetOutputs UNet2DCondition(Builder& b, const UNet2DConditionConfig& config, const UNetInputs& inputs,
                            const UNetBuildOptions& options = {});

// A whole graph with diffusers' input names: sample [B, C, H, W], timestep
// [B], encoder_hidden_states [B, tokens, D], and for SDXL text_embeds
// [B, Dt] and time_ids [B, 6]; the output "output" [B, C, H, W]. Batch 2 is
// classifier-free guidance's (the paper's accounting shape).
struct UNetGraphShape {
  int64_t batch = 2;
  int64_t height = 64, width = 64;  // latent size (image / 8)
  int64_t tokens = 77;
  int64_t time_ids = 6;             // SDXL
  DType dtype = DType::f32;
};
StatusOr<UNetOutputs> BuildUNet2DConditionGraph(Builder& b, const UNet2DConditionConfig& config,
                                                const UNetGraphShape& shape, const UNetBuildOptions& options = {});

}  // namespace cf
