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

bool HasDenoiser(Model m) { return m != Model::kPixArt; }

std::string MixerGlob(Method m) {
  return m == Method::kConvBlock ? "*transformer_blocks.*.conv1" : "*transformer_blocks.*.attn1";
}

UNet2DConditionConfig UNetConfig(Model m) {
  return m == Model::kSd15 ? UNet2DConditionConfig::StableDiffusion15() : UNet2DConditionConfig::StableDiffusionXL();
}

namespace {

UNetBuildOptions UNetOptions(const BuildSpec& s) {
  UNetBuildOptions o;
  o.self_attention = ChoiceFor(s.method, s.options);
  o.params = s.params;
  return o;
}

StatusOr<UNetOutputs> BuildUNet(Builder& b, const BuildSpec& s) {
  const UNet2DConditionConfig cfg = UNetConfig(s.model);
  UNetGraphShape shape;
  shape.batch = s.batch;
  shape.height = s.resolution.height / 8;
  shape.width = s.resolution.width / 8;
  shape.dtype = s.dtype;
  return BuildUNet2DConditionGraph(b, cfg, shape, UNetOptions(s));
}

// PixArt's attn1 replacements: the model's attention has biases on q, k, v
// and out; 16 heads of 72; the released ConvBlock is K 13 with the sigmoid gate.
Value PixArtMixer(Builder& b, Value x, const SelfAttentionChoice& c, const ParamOptions& p) {
  constexpr int64_t kHeads = 16;
  const int64_t B = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  switch (c.kind) {
    case SelfAttentionKind::kSelfAttention: {
      auto s = b.scope("attn1");
      return AttentionModule(b, x, std::nullopt,
                             {.heads = kHeads, .head_dim = C / kHeads, .qkv_bias = true, .params = p});
    }
    case SelfAttentionKind::kNeighborhood: {
      auto s = b.scope("attn1");
      if (c.kernel * c.dilation > H || c.kernel * c.dilation > W)
        return AttentionModule(b, x, std::nullopt,
                               {.heads = kHeads, .head_dim = C / kHeads, .qkv_bias = true, .params = p});
      Value q = LinearLayer(b, "to_q", x, C, true, p);  // [B, H, W, C]
      Value k = LinearLayer(b, "to_k", x, C, true, p);
      Value v = LinearLayer(b, "to_v", x, C, true, p);
      Value a = NeighborhoodAttention(q, k, v, {.heads = kHeads, .kernel = c.kernel, .dilation = c.dilation});
      return LinearLayer(b, "to_out.0", a, C, true, p);
    }
    case SelfAttentionKind::kConvBlock: {
      auto s = b.scope("conv1");
      ConvBlockOptions o;
      o.kernel = c.kernel == 0 ? 13 : c.kernel;
      o.gate = ConvBlockGate::kSigmoid;
      o.param_dtype = p.dtype;
      o.frozen = p.frozen;
      return ConvBlock(b, x, o);
    }
    case SelfAttentionKind::kLinFusion: {
      auto s = b.scope("attn1");
      LinFusionOptions o;
      o.qkv_bias = true;
      o.param_dtype = p.dtype;
      o.frozen = p.frozen;
      return LinFusionAttention(b, x, o);
    }
    case SelfAttentionKind::kWindow: {
      auto s = b.scope("attn1");
      WindowAttentionOptions o;
      o.heads = kHeads;
      o.window = c.window;
      o.mode = c.window_mode;
      o.qkv_bias = true;
      o.param_dtype = p.dtype;
      o.frozen = p.frozen;
      if (c.window_mode == WindowAttentionMode::kWindowWithResidual)
        o.residual = b.Input(b.Qualified("residual"), Shape{B, H * W, C}, x.dtype());
      return WindowAttention(b, x, o).out;
    }
  }
  return Value{};
}

}  // namespace

StatusOr<Value> BuildDenoiser(Builder& b, const BuildSpec& s) {
  if (!HasDenoiser(s.model))
    return absl::UnimplementedError(absl::StrCat(ModelName(s.model), ": the whole denoiser is not built yet ",
                                                 "(nn/pixart_transformer has not landed); its modules are"));
  CF_ASSIGN_OR_RETURN(UNetOutputs u, BuildUNet(b, s));
  return u.sample;
}

StatusOr<UNetInputs> UNetGraphInputs(Builder& b, const BuildSpec& s) {
  if (!HasDenoiser(s.model)) return absl::UnimplementedError(absl::StrCat(ModelName(s.model), " is not a UNet"));
  const UNet2DConditionConfig c = UNetConfig(s.model);
  const UNetGraphShape shape;  // tokens and time ids
  const int64_t B = s.batch;
  UNetInputs in;
  in.sample = b.Input("sample", Shape{B, c.in_channels, s.resolution.height / 8, s.resolution.width / 8}, s.dtype);
  in.timestep = b.Input("timestep", Shape{B}, DType::f32);
  in.encoder_hidden_states = b.Input("encoder_hidden_states", Shape{B, shape.tokens, c.cross_attention_dim[0]}, s.dtype);
  if (c.text_time) {
    in.text_embeds = b.Input(
        "text_embeds", Shape{B, c.projection_class_embeddings_input_dim - shape.time_ids * c.addition_time_embed_dim},
        s.dtype);
    in.time_ids = b.Input("time_ids", Shape{B, shape.time_ids}, DType::f32);
  }
  CF_RETURN_IF_ERROR(b.status());
  return in;
}

StatusOr<UNetOutputs> BuildUNetOn(Builder& b, const BuildSpec& s, const UNetInputs& in) {
  UNetOutputs u = UNet2DCondition(b, UNetConfig(s.model), in, UNetOptions(s));
  CF_RETURN_IF_ERROR(b.status());
  return u;
}

StatusOr<ModuleInfo> BuildModule(Builder& b, const BuildSpec& s) {
  ModuleInfo info;
  info.choice = ChoiceFor(s.method, s.options);
  if (s.model == Model::kPixArt) {
    info.height = s.resolution.height / 16;
    info.width = s.resolution.width / 16;
    info.channels = 1152;
    info.heads = 16;
    if (info.choice.kind == SelfAttentionKind::kConvBlock && info.choice.kernel == 0) info.choice.kernel = 13;
  } else {
    // The sites of the model at this size, from a throwaway shape-only build.
    Graph probe;
    Builder pb(&probe);
    CF_ASSIGN_OR_RETURN(UNetOutputs u, BuildUNet(pb, s));
    const UNetAttentionSite* best = nullptr;
    for (const UNetAttentionSite& site : u.sites)
      if (best == nullptr || site.height * site.width > best->height * best->width ||
          (site.height * site.width == best->height * best->width && site.choice.kernel > best->choice.kernel))
        best = &site;
    if (best == nullptr) return absl::InternalError(absl::StrCat(ModelName(s.model), ": no transformer block"));
    const UNet2DConditionConfig cfg = UNetConfig(s.model);
    const int nb = static_cast<int>(cfg.attention_heads.size());
    info.height = best->height;
    info.width = best->width;
    info.channels = best->channels;
    info.heads = best->part == "down"  ? cfg.attention_heads[best->block]
                 : best->part == "up" ? cfg.attention_heads[nb - 1 - best->block]
                                      : cfg.attention_heads.back();
    info.choice = best->choice;
  }
  Value x = b.Input("x", Shape{s.batch, info.height, info.width, info.channels}, s.dtype);
  Value y;
  {
    auto scope = b.scope("transformer_blocks.0");
    y = s.model == Model::kPixArt ? PixArtMixer(b, x, info.choice, s.params)
                                  : SelfAttentionLayer(b, x, info.choice, info.heads, s.params);
  }
  if (y.valid()) b.MarkOutput(y, "y");
  CF_RETURN_IF_ERROR(b.status());
  return info;
}

}  // namespace cf::bench
