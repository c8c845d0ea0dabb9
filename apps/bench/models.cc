// apps/bench/models.h.
#include "apps/bench/models.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nn/layers.h"
#include "nn/unet2d_condition.h"
#include "ops/attention/attention.h"

namespace cf::bench {

const char* ModelName(Model m) {
  switch (m) {
    case Model::kSd15: return "sd15";
    case Model::kSdxl: return "sdxl";
    case Model::kPixArt: return "pixart";
  }
  return "?";
}

const char* ModelTitle(Model m) {
  switch (m) {
    case Model::kSd15: return "SD1.5";
    case Model::kSdxl: return "SDXL";
    case Model::kPixArt: return "PixArt";
  }
  return "?";
}

const char* MethodName(Method m) {
  switch (m) {
    case Method::kSelfAttention: return "self_attention";
    case Method::kNeighborhood: return "neighborhood";
    case Method::kConvBlock: return "convblock";
    case Method::kLinFusion: return "linfusion";
    case Method::kDitFastAttn: return "ditfastattn";
  }
  return "?";
}

std::vector<Model> AllModels() { return {Model::kSd15, Model::kSdxl, Model::kPixArt}; }
std::vector<Method> AllMethods() {
  return {Method::kSelfAttention, Method::kNeighborhood, Method::kConvBlock, Method::kLinFusion, Method::kDitFastAttn};
}
std::vector<std::string> ModelNames() {
  std::vector<std::string> v;
  for (Model m : AllModels()) v.push_back(ModelName(m));
  return v;
}
std::vector<std::string> MethodNames() {
  std::vector<std::string> v;
  for (Method m : AllMethods()) v.push_back(MethodName(m));
  return v;
}

SelfAttentionChoice ChoiceFor(Method m, const MethodOptions& o) {
  SelfAttentionChoice c;
  switch (m) {
    case Method::kSelfAttention: break;
    case Method::kNeighborhood:
      c.kind = SelfAttentionKind::kNeighborhood;
      c.kernel = o.na_kernel;
      break;
    case Method::kConvBlock:
      c.kind = SelfAttentionKind::kConvBlock;
      c.kernel = o.convblock_kernel;
      break;
    case Method::kLinFusion: c.kind = SelfAttentionKind::kLinFusion; break;
    case Method::kDitFastAttn:
      c.kind = SelfAttentionKind::kWindow;
      c.window = o.window;
      c.window_mode = WindowAttentionMode::kWindowWithResidual;
      break;
  }
  return c;
}

std::vector<Resolution> PaperResolutions(Model m) {
  return {{"512", 512, 512},  {"1024", 1024, 1024}, {"2K", 2560, 1440},
          {"4K", 4096, 2160}, {"8K", 7680, 4320},   {"16K", 15360, 8640}};
}

int64_t PixelsPerToken(Model m) { return m == Model::kSd15 ? 8 : 16; }
// The VAE's 8, times PixArt's patch 2; the UNets round odd latent sizes
// themselves, as diffusers does.
int64_t SizeMultiple(Model m) { return m == Model::kPixArt ? 16 : 8; }

StatusOr<Resolution> ParseResolution(const std::string& text, Model m) {
  for (const Resolution& r : PaperResolutions(m))
    if (r.label == text) return r;
  const std::vector<std::string> wh = absl::StrSplit(text, 'x');
  int64_t w = 0, h = 0;
  if (wh.size() != 2 || !absl::SimpleAtoi(wh[0], &w) || !absl::SimpleAtoi(wh[1], &h) || w <= 0 || h <= 0)
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not one of 512, 1024, 2K, 4K, 8K, 16K or WIDTHxHEIGHT"));
  const int64_t k = SizeMultiple(m);
  if (w % k != 0 || h % k != 0 || w > 65536 || h > 65536)
    return absl::InvalidArgumentError(absl::StrCat("'", text, "': ", ModelName(m), " needs a width and height that are ",
                                                   "multiples of ", k, ", at most 65536"));
  return Resolution{text, w, h};
}

std::string MixerGlob(Method m) {
  return m == Method::kConvBlock ? "*transformer_blocks.*.conv1" : "*transformer_blocks.*.attn1";
}

namespace {

UNet2DConditionConfig UNetConfig(Model m) {
  return m == Model::kSd15 ? UNet2DConditionConfig::StableDiffusion15() : UNet2DConditionConfig::StableDiffusionXL();
}

// PixArt-Sigma, the model the paper distils (bf16, 1024 multi-scale).
PixArtTransformerConfig PixArtConfig() { return PixArtTransformerConfig::PixArtSigma1024MS(); }
constexpr int64_t kPixArtTokens = 300;  // Sigma's T5 length

// A choice's open parameters resolved as the model builders do.
SelfAttentionChoice Resolved(const SelfAttentionChoice& c, int64_t released_kernel, ConvBlockGate released_gate) {
  SelfAttentionChoice r = c;
  if (r.kind == SelfAttentionKind::kConvBlock) {
    if (r.kernel == 0) r.kernel = released_kernel;
    if (r.gate == ConvBlockGate::kReleased) r.gate = released_gate;
  }
  return r;
}

}  // namespace

StatusOr<DenoiserInputs> DenoiserGraphInputs(Builder& b, const BuildSpec& s) {
  const int64_t B = s.batch, h = s.resolution.height / 8, w = s.resolution.width / 8;
  DenoiserInputs in;
  if (s.model == Model::kPixArt) {
    const PixArtTransformerConfig c = PixArtConfig();
    PixArtInputs& p = in.pixart;
    p.hidden_states = b.Input("hidden_states", Shape{B, c.in_channels, h, w}, s.dtype);
    p.timestep = b.Input("timestep", Shape{B}, DType::f32);
    p.encoder_hidden_states = b.Input("encoder_hidden_states", Shape{B, kPixArtTokens, c.caption_channels}, s.dtype);
    if (c.use_additional_conditions) {
      p.resolution = b.Input("resolution", Shape{B, 2}, DType::f32);
      p.aspect_ratio = b.Input("aspect_ratio", Shape{B, 1}, DType::f32);
    }
    in.sample = p.hidden_states;
  } else {
    const UNet2DConditionConfig c = UNetConfig(s.model);
    const UNetGraphShape shape;  // tokens and time ids
    UNetInputs& u = in.unet;
    u.sample = b.Input("sample", Shape{B, c.in_channels, h, w}, s.dtype);
    u.timestep = b.Input("timestep", Shape{B}, DType::f32);
    u.encoder_hidden_states = b.Input("encoder_hidden_states", Shape{B, shape.tokens, c.cross_attention_dim[0]}, s.dtype);
    if (c.text_time) {
      u.text_embeds = b.Input(
          "text_embeds", Shape{B, c.projection_class_embeddings_input_dim - shape.time_ids * c.addition_time_embed_dim},
          s.dtype);
      u.time_ids = b.Input("time_ids", Shape{B, shape.time_ids}, DType::f32);
    }
    in.sample = u.sample;
  }
  CF_RETURN_IF_ERROR(b.status());
  return in;
}

namespace {

// The built model's sites as (height, width, channels, heads, choice).
struct Site {
  int64_t height = 0, width = 0, channels = 0, heads = 0;
  SelfAttentionChoice choice;
};

StatusOr<std::vector<Site>> BuildOn(Builder& b, const BuildSpec& s, const DenoiserInputs& in, Value* out) {
  std::vector<Site> sites;
  if (s.model == Model::kPixArt) {
    const PixArtTransformerConfig c = PixArtConfig();
    PixArtBuildOptions o;
    o.self_attention = ChoiceFor(s.method, s.options);
    o.params = s.params;
    PixArtOutputs p = PixArtTransformer2D(b, c, in.pixart, o);
    CF_RETURN_IF_ERROR(b.status());
    *out = p.sample;
    for (const PixArtAttentionSite& site : p.sites)
      sites.push_back({site.height, site.width, site.channels, c.heads, site.choice});
  } else {
    const UNet2DConditionConfig c = UNetConfig(s.model);
    UNetBuildOptions o;
    o.self_attention = ChoiceFor(s.method, s.options);
    o.params = s.params;
    UNetOutputs u = UNet2DCondition(b, c, in.unet, o);
    CF_RETURN_IF_ERROR(b.status());
    *out = u.sample;
    const int nb = static_cast<int>(c.attention_heads.size());
    for (const UNetAttentionSite& site : u.sites) {
      const int64_t heads = site.part == "down" ? c.attention_heads[site.block]
                            : site.part == "up" ? c.attention_heads[nb - 1 - site.block]
                                                : c.attention_heads.back();
      sites.push_back({site.height, site.width, site.channels, heads, site.choice});
    }
  }
  return sites;
}

}  // namespace

StatusOr<Value> BuildDenoiserOn(Builder& b, const BuildSpec& s, const DenoiserInputs& in) {
  Value out;
  CF_ASSIGN_OR_RETURN(std::vector<Site> sites, BuildOn(b, s, in, &out));
  (void)sites;
  return out;
}

StatusOr<Value> BuildDenoiser(Builder& b, const BuildSpec& s) {
  CF_ASSIGN_OR_RETURN(DenoiserInputs in, DenoiserGraphInputs(b, s));
  CF_ASSIGN_OR_RETURN(Value y, BuildDenoiserOn(b, s, in));
  b.MarkOutput(y, "output");
  CF_RETURN_IF_ERROR(b.status());
  return y;
}

StatusOr<ModuleInfo> BuildModule(Builder& b, const BuildSpec& s) {
  // The sites of the model at this size, from a throwaway shape-only build.
  std::vector<Site> sites;
  {
    Graph probe;
    Builder pb(&probe);
    CF_ASSIGN_OR_RETURN(DenoiserInputs in, DenoiserGraphInputs(pb, s));
    Value out;
    CF_ASSIGN_OR_RETURN(sites, BuildOn(pb, s, in, &out));
  }
  const Site* best = nullptr;
  for (const Site& site : sites)
    if (best == nullptr || site.height * site.width > best->height * best->width ||
        (site.height * site.width == best->height * best->width && site.choice.kernel > best->choice.kernel))
      best = &site;
  if (best == nullptr) return absl::InternalError(absl::StrCat(ModelName(s.model), ": no transformer block"));
  ModuleInfo info;
  info.height = best->height;
  info.width = best->width;
  info.channels = best->channels;
  info.heads = best->heads;
  // PixArt's sites keep a ConvBlock's open kernel and gate; resolve them as its blocks do.
  info.choice = s.model == Model::kPixArt ? Resolved(best->choice, 13, ConvBlockGate::kSigmoid) : best->choice;
  Value x = b.Input("x", Shape{s.batch, info.height, info.width, info.channels}, s.dtype);
  Value y;
  {
    auto scope = b.scope("transformer_blocks.0");
    y = SelfAttentionLayer(b, x, info.choice, info.heads, s.params, /*qkv_bias=*/s.model == Model::kPixArt);
  }
  if (y.valid()) b.MarkOutput(y, "y");
  CF_RETURN_IF_ERROR(b.status());
  return info;
}

}  // namespace cf::bench
