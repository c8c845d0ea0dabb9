// nn/autoencoder_kl.h. The structure follows diffusers' AutoencoderKL,
// Encoder, Decoder, DownEncoderBlock2D, UpDecoderBlock2D and UNetMidBlock2D
// (resnet eps 1e-6, temb_channels None, one single-head attention of
// head dim C with group norm, biases and the residual inside), written from
// their documented behaviour.
#include "nn/autoencoder_kl.h"

#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nn/attention.h"
#include "nn/resnet.h"
#include "ops/activation/activation.h"
#include "ops/elementwise/elementwise.h"
#include "ops/shape/shape.h"

namespace cf {

namespace {

constexpr double kEps = 1e-6;  // every GroupNorm of diffusers' Encoder / Decoder

Status Unsupported(const DiffusersConfig& c, const std::string& key, const std::string& value) {
  return absl::UnimplementedError(
      absl::StrCat("config ", c.source(), ": AutoencoderKL with ", key, " = ", value, " is not implemented"));
}

class VaeBuilder {
 public:
  // `part`: "encoder" or "decoder", the taps' prefix.
  VaeBuilder(Builder& b, const AutoencoderKLConfig& c, const ParamOptions& p, const char* part, VaeTaps* taps)
      : b_(b), c_(c), p_(p), part_(part), taps_(taps) {}

  Value Resnet(Value h, int64_t out) {
    return ResnetBlock2D(b_, h, {.out_channels = out, .groups = c_.norm_num_groups, .eps = kEps, .params = p_});
  }

  // UNetMidBlock2D without a time embedding: resnet, attention, resnet.
  Value MidBlock(Value h) {
    auto s = b_.scope("mid_block");
    const int64_t C = h.dim(-1);
    {
      auto sr = b_.scope("resnets.0");
      h = Resnet(h, C);                                                                  // [B, h, w, C]
    }
    if (c_.mid_block_add_attention) {
      // Attention(heads=1, dim_head=C, residual_connection=True): the group
      // norm is inside the module, the residual added after to_out.
      auto sa = b_.scope("attentions.0");
      Value n = GroupNormLayer(b_, "group_norm", h, c_.norm_num_groups, kEps, true, p_);   // [B, h, w, C]
      h = h + AttentionModule(b_, n, std::nullopt,
                              {.heads = 1, .head_dim = C, .qkv_bias = true, .params = p_});  // [B, h, w, C]
    }
    {
      auto sr = b_.scope("resnets.1");
      h = Resnet(h, C);                                                                  // [B, h, w, C]
    }
    return h;
  }

  // conv_norm_out -> SiLU -> conv_out (3x3).
  Value Out(Value h, int64_t out) {
    h = Silu(GroupNormLayer(b_, "conv_norm_out", h, c_.norm_num_groups, kEps, true, p_));  // [B, h, w, C]
    return Conv2dLayer(b_, "conv_out", h, out, 3, 1, 1, true, p_);                       // [B, h, w, out]
  }

  void Tap(const std::string& name, Value v) { taps_->push_back({absl::StrCat(part_, ".", name), v}); }

 private:
  Builder& b_;
  const AutoencoderKLConfig& c_;
  const ParamOptions& p_;
  const char* part_;
  VaeTaps* taps_;
};

// max(min(x, hi), lo) exactly inside [lo, hi] (x + 0 and y - 0), and within
// an ulp of the bound outside, from relu (leaky_relu with slope 0): the
// runtime has no clamp op.
Value Clamp(Value x, double lo, double hi) {
  Value y = x + LeakyRelu(Scale(x, -1.0, lo), 0.0);  // max(x, lo)
  return y - LeakyRelu(Scale(y, 1.0, -hi), 0.0);      // min(y, hi)
}

bool CheckInput(Builder& b, const char* what, Value x, int64_t channels, const char* layout) {
  if (!x.valid()) {
    if (b.ok()) b.Fail(absl::InvalidArgumentError(absl::StrCat("AutoencoderKL ", what, ": an invalid input Value")));
    return false;
  }
  return Check(b, x.rank() == 4 && x.dim(1) == channels,
               absl::InvalidArgumentError(absl::StrCat("AutoencoderKL ", what, ": input must be [B, ", channels, ", ",
                                                       layout, "], got ", x.type().ToString())));
}

}  // namespace

StatusOr<AutoencoderKLConfig> AutoencoderKLConfig::FromDiffusers(const DiffusersConfig& c) {
  AutoencoderKLConfig a;
  CF_ASSIGN_OR_RETURN(std::vector<std::string> down, c.StringList("down_block_types"));
  CF_ASSIGN_OR_RETURN(std::vector<std::string> up, c.StringList("up_block_types"));
  const int n = static_cast<int>(down.size());
  if (n == 0 || up.size() != down.size())
    return absl::InvalidArgumentError(absl::StrCat("config ", c.source(), ": ", n, " down_block_types and ",
                                                   up.size(), " up_block_types (need the same number, >= 1)"));
  for (const std::string& t : down)
    if (t != "DownEncoderBlock2D") return Unsupported(c, "a down block type", t);
  for (const std::string& t : up)
    if (t != "UpDecoderBlock2D") return Unsupported(c, "an up block type", t);
  CF_ASSIGN_OR_RETURN(a.block_out_channels, c.IntList("block_out_channels", n));
  CF_ASSIGN_OR_RETURN(a.in_channels, c.Int("in_channels", 3));
  CF_ASSIGN_OR_RETURN(a.out_channels, c.Int("out_channels", 3));
  CF_ASSIGN_OR_RETURN(a.latent_channels, c.Int("latent_channels", 4));
  CF_ASSIGN_OR_RETURN(a.layers_per_block, c.Int("layers_per_block", 1));
  CF_ASSIGN_OR_RETURN(a.norm_num_groups, c.Int("norm_num_groups", 32));
  CF_ASSIGN_OR_RETURN(a.scaling_factor, c.Double("scaling_factor", 0.18215));
  if (c.Has("shift_factor")) {
    CF_ASSIGN_OR_RETURN(double shift, c.Double("shift_factor"));
    a.shift_factor = shift;
  }
  CF_ASSIGN_OR_RETURN(a.use_quant_conv, c.Bool("use_quant_conv", true));
  CF_ASSIGN_OR_RETURN(a.use_post_quant_conv, c.Bool("use_post_quant_conv", true));
  CF_ASSIGN_OR_RETURN(a.mid_block_add_attention, c.Bool("mid_block_add_attention", true));
  CF_ASSIGN_OR_RETURN(std::string act, c.String("act_fn", "silu"));
  if (act != "silu") return Unsupported(c, "act_fn", absl::StrCat("\"", act, "\" (only \"silu\" is)"));
  // For the caller (latents_mean / latents_std: per-channel normalisation of
  // some later VAEs) or of no use at inference (force_upcast: f16 pipelines
  // run the VAE in f32; choose --dtype).
  c.Accept({"sample_size", "force_upcast", "latents_mean", "latents_std", "shift_factor"});
  if (const std::string note = c.UnknownKeysNote(); !note.empty()) a.note = note;

  if (a.layers_per_block < 1 || a.latent_channels < 1 || a.in_channels < 1 || a.out_channels < 1)
    return absl::InvalidArgumentError(absl::StrCat("config ", c.source(),
                                                   ": layers_per_block, latent_channels, in_channels and "
                                                   "out_channels must be >= 1"));
  for (int i = 0; i < n; ++i)
    if (a.block_out_channels[i] < 1 || a.norm_num_groups < 1 || a.block_out_channels[i] % a.norm_num_groups != 0)
      return absl::InvalidArgumentError(absl::StrCat("config ", c.source(), ": block_out_channels[", i, "] = ",
                                                     a.block_out_channels[i], " is not divisible by norm_num_groups ",
                                                     a.norm_num_groups));
  return a;
}

StatusOr<AutoencoderKLConfig> AutoencoderKLConfig::Load(const std::string& path) {
  CF_ASSIGN_OR_RETURN(DiffusersConfig c, DiffusersConfig::Load(path));
  return FromDiffusers(c);
}

// runwayml/stable-diffusion-v1-5 vae/config.json (docs/paper-facts.md).
AutoencoderKLConfig AutoencoderKLConfig::StableDiffusion15() {
  AutoencoderKLConfig a;
  a.block_out_channels = {128, 256, 512, 512};
  a.layers_per_block = 2;
  a.norm_num_groups = 32;
  a.scaling_factor = 0.18215;
  return a;
}

AutoencoderKLConfig AutoencoderKLConfig::StableDiffusionXL() {
  AutoencoderKLConfig a = StableDiffusion15();
  a.scaling_factor = 0.13025;
  return a;
}

VaeEncodeOutputs AutoencoderKLEncode(Builder& b, const AutoencoderKLConfig& c, Value image, const ParamOptions& o) {
  if (!CheckInput(b, "encode", image, c.in_channels, "H, W")) return {};
  ParamOptions p = o;
  p.dtype = p.For(image);
  const int nb = static_cast<int>(c.block_out_channels.size());
  const int64_t L = c.latent_channels;
  VaeEncodeOutputs out;
  Value h;
  {
    auto s = b.scope("encoder");
    VaeBuilder v(b, c, p, "encoder", &out.taps);
    h = Permute(image, {0, 2, 3, 1});                                                    // [B, H, W, Cin]
    h = Conv2dLayer(b, "conv_in", h, c.block_out_channels[0], 3, 1, 1, true, p);       // [B, H, W, C0]
    v.Tap("conv_in", h);
    for (int i = 0; i < nb; ++i) {
      auto sd = b.scope(absl::StrCat("down_blocks.", i));
      const int64_t C = c.block_out_channels[i];
      for (int64_t j = 0; j < c.layers_per_block; ++j) {
        auto sr = b.scope(absl::StrCat("resnets.", j));
        h = v.Resnet(h, C);                                                              // [B, h, w, C]
      }
      if (i + 1 < nb) {
        // Downsample2D(padding=0): F.pad (0, 1, 0, 1), then the stride-2 conv.
        auto sp = b.scope("downsamplers.0");
        h = Pad(h, {0, 0, 0, 1, 0, 1, 0, 0});                                           // [B, h + 1, w + 1, C]
        h = Downsample2D(b, h, C, 0, p);                                                 // [B, ceil(h/2), ..., C]
      }
      v.Tap(absl::StrCat("down_blocks.", i), h);
    }
    h = v.MidBlock(h);                                                                   // [B, h, w, Clast]
    v.Tap("mid_block", h);
    h = v.Out(h, 2 * L);                                                                 // [B, h, w, 2L]
  }
  if (c.use_quant_conv) h = Conv2dLayer(b, "quant_conv", h, 2 * L, 1, 1, 0, true, p);  // [B, h, w, 2L]
  // DiagonalGaussianDistribution: mean and logvar are the two channel halves.
  std::vector<Value> halves = Chunk(h, 2, 3);                                            // 2 x [B, h, w, L]
  if (!b.ok() || halves.size() != 2) return {};
  out.latent_mean = Permute(halves[0], {0, 3, 1, 2});                                    // [B, L, h, w]
  out.latent_logvar = Permute(Clamp(halves[1], -30.0, 20.0), {0, 3, 1, 2});              // [B, L, h, w]
  if (!b.ok()) return {};
  return out;
}

VaeDecodeOutputs AutoencoderKLDecode(Builder& b, const AutoencoderKLConfig& c, Value latents,
                                     const ParamOptions& o) {
  if (!CheckInput(b, "decode", latents, c.latent_channels, "h, w")) return {};
  ParamOptions p = o;
  p.dtype = p.For(latents);
  const int nb = static_cast<int>(c.block_out_channels.size());
  const int64_t L = c.latent_channels;
  VaeDecodeOutputs out;
  Value h = Permute(latents, {0, 2, 3, 1});                                              // [B, h, w, L]
  if (c.use_post_quant_conv) h = Conv2dLayer(b, "post_quant_conv", h, L, 1, 1, 0, true, p);  // [B, h, w, L]
  {
    auto s = b.scope("decoder");
    VaeBuilder v(b, c, p, "decoder", &out.taps);
    h = Conv2dLayer(b, "conv_in", h, c.block_out_channels.back(), 3, 1, 1, true, p);   // [B, h, w, Clast]
    v.Tap("conv_in", h);
    h = v.MidBlock(h);                                                                   // [B, h, w, Clast]
    v.Tap("mid_block", h);
    for (int i = 0; i < nb; ++i) {
      auto su = b.scope(absl::StrCat("up_blocks.", i));
      const int64_t C = c.block_out_channels[nb - 1 - i];  // reversed
      for (int64_t j = 0; j < c.layers_per_block + 1; ++j) {
        auto sr = b.scope(absl::StrCat("resnets.", j));
        h = v.Resnet(h, C);                                                              // [B, h, w, C]
      }
      if (i + 1 < nb) {
        auto sp = b.scope("upsamplers.0");
        h = Upsample2D(b, h, C, std::nullopt, p);                                        // [B, 2h, 2w, C]
      }
      v.Tap(absl::StrCat("up_blocks.", i), h);
    }
    h = v.Out(h, c.out_channels);                                                        // [B, H, W, Cout]
  }
  out.image = Permute(h, {0, 3, 1, 2});                                                  // [B, Cout, H, W]
  if (!b.ok()) return {};
  return out;
}

StatusOr<VaeEncodeOutputs> BuildVaeEncodeGraph(Builder& b, const AutoencoderKLConfig& c, const VaeGraphShape& s,
                                               const ParamOptions& p) {
  Value image = b.Input("image", Shape{s.batch, c.in_channels, s.height, s.width}, s.dtype);
  VaeEncodeOutputs out = AutoencoderKLEncode(b, c, image, p);
  CF_RETURN_IF_ERROR(b.status());
  b.MarkOutput(out.latent_mean, "latent_mean");
  b.MarkOutput(out.latent_logvar, "latent_logvar");
  CF_RETURN_IF_ERROR(b.status());
  return out;
}

StatusOr<VaeDecodeOutputs> BuildVaeDecodeGraph(Builder& b, const AutoencoderKLConfig& c, const VaeGraphShape& s,
                                               const ParamOptions& p) {
  const int64_t f = c.downsample_factor();
  if (s.height % f != 0 || s.width % f != 0)
    return absl::InvalidArgumentError(absl::StrCat("AutoencoderKL decode: image size ", s.height, "x", s.width,
                                                   " is not a multiple of the VAE's factor ", f));
  Value latents = b.Input("latents", Shape{s.batch, c.latent_channels, s.height / f, s.width / f}, s.dtype);
  VaeDecodeOutputs out = AutoencoderKLDecode(b, c, latents, p);
  CF_RETURN_IF_ERROR(b.status());
  b.MarkOutput(out.image, "output");
  CF_RETURN_IF_ERROR(b.status());
  return out;
}

StatusOr<WeightFiles> WithCurrentVaeAttentionNames(const WeightFiles& files, int* renamed) {
  static const std::pair<const char*, const char*> kOld[] = {
      {"query", "to_q"}, {"key", "to_k"}, {"value", "to_v"}, {"proj_attn", "to_out.0"}};
  std::map<std::string, WeightAlias> aliases;
  int n = 0;
  for (const std::string& key : files.names()) {
    std::string name = key;
    const size_t at = key.find(".mid_block.attentions.0.");
    if (at != std::string::npos) {
      const size_t start = at + std::strlen(".mid_block.attentions.0.");
      for (const auto& [from, to] : kOld)
        for (const char* leaf : {".weight", ".bias"})
          if (key.compare(start, std::string::npos, absl::StrCat(from, leaf)) == 0)
            name = absl::StrCat(key.substr(0, start), to, leaf);
    }
    if (name != key) ++n;
    if (aliases.count(name))
      return absl::InvalidArgumentError(absl::StrCat("weights from ", absl::StrJoin(files.files(), ", "),
                                                     ": both '", aliases.at(name).source, "' and '", key,
                                                     "' would be '", name, "' (old and new attention names mixed)"));
    aliases[name].source = key;
  }
  if (renamed) *renamed = n;
  if (n == 0) return files;
  return files.WithAliases(aliases);
}

}  // namespace cf
