// diffusers' AutoencoderKL (the Stable Diffusion VAE) built from its
// config.json: the encoder (image -> the latent distribution's mean and
// log-variance) and the decoder (latents -> image) as separate graphs, since
// a sampler runs only the decoder and training only the encoder.
// Channels-last inside; diffusers' [B, C, H, W] at the boundary. No scaling
// factor is applied: the caller multiplies the latents by
// `scaling_factor` after encoding and divides before decoding
// (docs/models.md "VAE").
//
//   CF_ASSIGN_OR_RETURN(auto cfg, AutoencoderKLConfig::Load("sd15/vae"));
//   Graph g;
//   Builder b(&g);
//   CF_ASSIGN_OR_RETURN(auto d, BuildVaeDecodeGraph(b, cfg, {.height = 512, .width = 512}));
//   // graph input latents [1, 4, 64, 64]; output "output" [1, 3, 512, 512]
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "graph/builder.h"
#include "nn/diffusers_config.h"
#include "nn/layers.h"
#include "nn/weights.h"

namespace cf {

struct AutoencoderKLConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  int64_t latent_channels = 4;
  std::vector<int64_t> block_out_channels;  // per level; down block types DownEncoderBlock2D, up UpDecoderBlock2D
  int64_t layers_per_block = 1;             // resnets per down block (up blocks have one more)
  int64_t norm_num_groups = 32;
  double scaling_factor = 0.18215;            // for the caller; not applied inside
  std::optional<double> shift_factor;         // SD3 / FLUX VAEs; none in SD1.5 / SDXL
  bool use_quant_conv = true;
  bool use_post_quant_conv = true;
  bool mid_block_add_attention = true;
  std::string note;  // unknown keys the reader ignored, for the caller to print

  // Errors name the file and the key: missing block_out_channels or block
  // types, other block types, act_fn other than silu, channel counts not
  // divisible by norm_num_groups.
  static StatusOr<AutoencoderKLConfig> FromDiffusers(const DiffusersConfig& config);
  static StatusOr<AutoencoderKLConfig> Load(const std::string& path);  // a folder or its config.json
  // The released configurations (runwayml/stable-diffusion-v1-5 vae/ and
  // stabilityai/sdxl-vae: the same architecture, scaling 0.18215 / 0.13025).
  static AutoencoderKLConfig StableDiffusion15();
  static AutoencoderKLConfig StableDiffusionXL();

  // The image size divided by this is the latent size (2^(levels - 1): 8).
  int64_t downsample_factor() const { return int64_t{1} << (block_out_channels.size() - 1); }
};

// Intermediate activations by module, channels-last [B, h, w, C]:
// "encoder.conv_in", "encoder.down_blocks.i", "encoder.mid_block";
// "decoder.conv_in", "decoder.mid_block", "decoder.up_blocks.i".
using VaeTaps = std::vector<std::pair<std::string, Value>>;

struct VaeEncodeOutputs {
  Value latent_mean;    // [B, latent, h, w]
  Value latent_logvar;  // [B, latent, h, w], clamped to [-30, 20] (DiagonalGaussianDistribution)
  VaeTaps taps;
};
// image [B, in_channels, H, W] -> the latent distribution; h = H halved
// (levels - 1) times, each time (H + 1 - 3) / 2 + 1 (Downsample2D pads right
// and bottom by one). Parameters encoder.* and quant_conv.* in the
// builder's current scope; errors are recorded in the builder.
VaeEncodeOutputs AutoencoderKLEncode(Builder& b, const AutoencoderKLConfig& config, Value image,
                                     const ParamOptions& params = {});

struct VaeDecodeOutputs {
  Value image;  // [B, out_channels, h · 2^(levels - 1), w · ...]
  VaeTaps taps;
};
// latents [B, latent, h, w] -> image; post_quant_conv.* and decoder.*.
VaeDecodeOutputs AutoencoderKLDecode(Builder& b, const AutoencoderKLConfig& config, Value latents,
                                     const ParamOptions& params = {});

// Whole graphs with diffusers' names: encode reads "image" [B, C, H, W] and
// writes "latent_mean", "latent_logvar"; decode reads "latents"
// [B, latent, H / f, W / f] (f = downsample_factor(); H and W must be
// multiples of it) and writes "output" [B, C, H, W]. Sizes are the image's.
struct VaeGraphShape {
  int64_t batch = 1;
  int64_t height = 512, width = 512;
  DType dtype = DType::f32;
};
StatusOr<VaeEncodeOutputs> BuildVaeEncodeGraph(Builder& b, const AutoencoderKLConfig& config,
                                               const VaeGraphShape& shape, const ParamOptions& params = {});
StatusOr<VaeDecodeOutputs> BuildVaeDecodeGraph(Builder& b, const AutoencoderKLConfig& config,
                                               const VaeGraphShape& shape, const ParamOptions& params = {});

// VAE weights saved before diffusers 0.14 name the mid-block attention's
// projections query / key / value / proj_attn (the deprecated AttentionBlock;
// diffusers renames them at load time, as does this): `files` with those
// presented as to_q / to_k / to_v / to_out.0 (weight and bias), every other
// tensor under its own name. `renamed` (optional) gets how many tensors were
// renamed; files without the old names come back as they are.
StatusOr<WeightFiles> WithCurrentVaeAttentionNames(const WeightFiles& files, int* renamed = nullptr);

}  // namespace cf
