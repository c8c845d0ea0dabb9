// nn/unet2d_condition.h. The structure follows diffusers'
// UNet2DConditionModel.__init__ / forward (get_down_block, get_up_block,
// CrossAttnDownBlock2D, UNetMidBlock2DCrossAttn, CrossAttnUpBlock2D, ...),
// written from their documented behaviour.
#include "nn/unet2d_condition.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nn/resnet.h"
#include "nn/transformer_2d.h"
#include "ops/activation/activation.h"
#include "ops/elementwise/elementwise.h"
#include "ops/embed/embed.h"
#include "ops/shape/shape.h"

namespace cf {

namespace {

Status Unsupported(const DiffusersConfig& c, const std::string& key, const std::string& value) {
  return absl::UnimplementedError(absl::StrCat("config ", c.source(), ": UNet2DConditionModel with ", key, " = ",
                                               value, " is not implemented"));
}

// A key that must hold its default (the builder implements nothing else).
Status ExpectNull(const DiffusersConfig& c, const std::string& key) {
  if (c.Has(key)) return Unsupported(c, key, "a value (only null is)");
  return absl::OkStatus();
}
Status ExpectString(const DiffusersConfig& c, const std::string& key, const std::string& want) {
  CF_ASSIGN_OR_RETURN(std::string v, c.String(key, want));
  if (v != want) return Unsupported(c, key, absl::StrCat("\"", v, "\" (only \"", want, "\" is)"));
  return absl::OkStatus();
}
Status ExpectFalse(const DiffusersConfig& c, const std::string& key, int n) {
  CF_ASSIGN_OR_RETURN(std::vector<bool> v, c.BoolList(key, n, false));
  for (bool x : v)
    if (x) return Unsupported(c, key, "true");
  return absl::OkStatus();
}

}  // namespace

StatusOr<UNet2DConditionConfig> UNet2DConditionConfig::FromDiffusers(const DiffusersConfig& c) {
  UNet2DConditionConfig u;
  CF_ASSIGN_OR_RETURN(u.down_block_types, c.StringList("down_block_types"));
  CF_ASSIGN_OR_RETURN(u.up_block_types, c.StringList("up_block_types"));
  const int n = static_cast<int>(u.down_block_types.size());
  CF_ASSIGN_OR_RETURN(u.block_out_channels, c.IntList("block_out_channels", n));
  if (u.up_block_types.size() != u.down_block_types.size())
    return absl::InvalidArgumentError(absl::StrCat("config ", c.source(), ": ", n, " down_block_types but ",
                                                   u.up_block_types.size(), " up_block_types"));
  for (const std::string& t : u.down_block_types)
    if (t != "CrossAttnDownBlock2D" && t != "DownBlock2D") return Unsupported(c, "a down block type", t);
  for (const std::string& t : u.up_block_types)
    if (t != "CrossAttnUpBlock2D" && t != "UpBlock2D") return Unsupported(c, "an up block type", t);
  CF_ASSIGN_OR_RETURN(auto mid, c.OptionalString("mid_block_type"));
  u.mid_block_type = c.Contains("mid_block_type") ? mid.value_or("") : "UNetMidBlock2DCrossAttn";  // null: none
  if (!u.mid_block_type.empty() && u.mid_block_type != "UNetMidBlock2DCrossAttn")
    return Unsupported(c, "mid_block_type", u.mid_block_type);

  CF_ASSIGN_OR_RETURN(u.in_channels, c.Int("in_channels", 4));
  CF_ASSIGN_OR_RETURN(u.out_channels, c.Int("out_channels", 4));
  CF_ASSIGN_OR_RETURN(u.center_input_sample, c.Bool("center_input_sample", false));
  CF_ASSIGN_OR_RETURN(u.flip_sin_to_cos, c.Bool("flip_sin_to_cos", true));
  CF_ASSIGN_OR_RETURN(u.freq_shift, c.Double("freq_shift", 0.0));
  CF_ASSIGN_OR_RETURN(u.layers_per_block, c.IntListOr("layers_per_block", n, 2));
  CF_ASSIGN_OR_RETURN(u.downsample_padding, c.Int("downsample_padding", 1));
  CF_ASSIGN_OR_RETURN(u.mid_block_scale_factor, c.Double("mid_block_scale_factor", 1.0));
  CF_ASSIGN_OR_RETURN(u.norm_num_groups, c.Int("norm_num_groups", 32));
  CF_ASSIGN_OR_RETURN(u.norm_eps, c.Double("norm_eps", 1e-5));
  CF_ASSIGN_OR_RETURN(u.cross_attention_dim, c.IntList("cross_attention_dim", n));
  CF_ASSIGN_OR_RETURN(u.transformer_layers_per_block, c.IntListOr("transformer_layers_per_block", n, 1));
  if (c.Has("reverse_transformer_layers_per_block")) {
    // diffusers' form is a list of lists (per up block, per layer); only
    // one count per up block is implemented.
    CF_ASSIGN_OR_RETURN(u.reverse_transformer_layers_per_block,
                        c.IntList("reverse_transformer_layers_per_block", n));
  } else {
    u.reverse_transformer_layers_per_block.assign(u.transformer_layers_per_block.rbegin(),
                                                  u.transformer_layers_per_block.rend());
  }
  if (c.Has("num_attention_heads")) {
    CF_ASSIGN_OR_RETURN(u.attention_heads, c.IntList("num_attention_heads", n));
    c.Accept({"attention_head_dim"});
  } else {
    CF_ASSIGN_OR_RETURN(u.attention_heads, c.IntListOr("attention_head_dim", n, 8));
  }
  CF_ASSIGN_OR_RETURN(u.use_linear_projection, c.Bool("use_linear_projection", false));
  CF_ASSIGN_OR_RETURN(u.conv_in_kernel, c.Int("conv_in_kernel", 3));
  CF_ASSIGN_OR_RETURN(u.conv_out_kernel, c.Int("conv_out_kernel", 3));
  CF_ASSIGN_OR_RETURN(u.time_embed_dim, c.Int("time_embedding_dim", 4 * u.block_out_channels[0]));

  CF_ASSIGN_OR_RETURN(auto add, c.OptionalString("addition_embed_type"));
  if (add.has_value() && *add != "text_time") return Unsupported(c, "addition_embed_type", *add);
  u.text_time = add.has_value();
  if (u.text_time) {
    CF_ASSIGN_OR_RETURN(u.addition_time_embed_dim, c.Int("addition_time_embed_dim"));
    CF_ASSIGN_OR_RETURN(u.projection_class_embeddings_input_dim, c.Int("projection_class_embeddings_input_dim"));
  } else {
    c.Accept({"addition_time_embed_dim", "projection_class_embeddings_input_dim"});
  }

  // The authors' ConvFusion keys (docs/paper-facts.md): 0 where a block has none.
  if (c.Has("down_blocks_conv1_kernel_sizes") || c.Has("up_blocks_conv1_kernel_sizes") ||
      c.Has("mid_block_conv1_kernel_size")) {
    u.has_conv1_kernels = true;
    CF_ASSIGN_OR_RETURN(u.down_conv1_kernels, c.IntListOr("down_blocks_conv1_kernel_sizes", n, 0));
    CF_ASSIGN_OR_RETURN(u.up_conv1_kernels, c.IntListOr("up_blocks_conv1_kernel_sizes", n, 0));
    CF_ASSIGN_OR_RETURN(u.mid_conv1_kernel, c.Int("mid_block_conv1_kernel_size", 0));
  }

  // What the builder does not implement must keep its default.
  CF_RETURN_IF_ERROR(ExpectString(c, "act_fn", "silu"));
  CF_RETURN_IF_ERROR(ExpectString(c, "time_embedding_type", "positional"));
  CF_RETURN_IF_ERROR(ExpectString(c, "resnet_time_scale_shift", "default"));
  CF_RETURN_IF_ERROR(ExpectString(c, "attention_type", "default"));
  for (const char* k : {"class_embed_type", "num_class_embeds", "encoder_hid_dim", "encoder_hid_dim_type",
                        "time_cond_proj_dim", "time_embedding_act_fn", "timestep_post_act", "cross_attention_norm"})
    CF_RETURN_IF_ERROR(ExpectNull(c, k));
  for (const char* k : {"only_cross_attention", "dual_cross_attention", "class_embeddings_concat",
                        "resnet_skip_time_act", "mid_block_only_cross_attention"})
    CF_RETURN_IF_ERROR(ExpectFalse(c, k, n));
  // Training-only or numerically irrelevant at f32 (upcast_attention: the
  // attention op accumulates in f32 anyway).
  c.Accept({"sample_size", "dropout", "upcast_attention", "resnet_out_scale_factor", "addition_embed_type_num_heads"});
  if (const std::string note = c.UnknownKeysNote(); !note.empty()) u.note = note;

  for (size_t i = 0; i < u.block_out_channels.size(); ++i)
    if (u.block_out_channels[i] % u.norm_num_groups != 0 || u.block_out_channels[i] % u.attention_heads[i] != 0)
      return absl::InvalidArgumentError(absl::StrCat("config ", c.source(), ": block_out_channels[", i, "] = ",
                                                     u.block_out_channels[i], " is not divisible by norm_num_groups ",
                                                     u.norm_num_groups, " and the ", u.attention_heads[i], " heads"));
  return u;
}

StatusOr<UNet2DConditionConfig> UNet2DConditionConfig::Load(const std::string& path) {
  CF_ASSIGN_OR_RETURN(DiffusersConfig c, DiffusersConfig::Load(path));
  return FromDiffusers(c);
}

// runwayml/stable-diffusion-v1-5 unet/config.json (docs/paper-facts.md).
UNet2DConditionConfig UNet2DConditionConfig::StableDiffusion15() {
  UNet2DConditionConfig u;
  u.down_block_types = {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"};
  u.up_block_types = {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"};
  u.block_out_channels = {320, 640, 1280, 1280};
  u.layers_per_block = {2, 2, 2, 2};
  u.cross_attention_dim = {768, 768, 768, 768};
  u.transformer_layers_per_block = {1, 1, 1, 1};
  u.reverse_transformer_layers_per_block = {1, 1, 1, 1};
  u.attention_heads = {8, 8, 8, 8};
  u.time_embed_dim = 1280;
  return u;
}

// stabilityai/stable-diffusion-xl-base-1.0 unet/config.json.
UNet2DConditionConfig UNet2DConditionConfig::StableDiffusionXL() {
  UNet2DConditionConfig u;
  u.down_block_types = {"DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"};
  u.up_block_types = {"CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"};
  u.block_out_channels = {320, 640, 1280};
  u.layers_per_block = {2, 2, 2};
  u.cross_attention_dim = {2048, 2048, 2048};
  u.transformer_layers_per_block = {1, 2, 10};
  u.reverse_transformer_layers_per_block = {10, 2, 1};
  u.attention_heads = {5, 10, 20};
  u.use_linear_projection = true;
  u.time_embed_dim = 1280;
  u.text_time = true;
  u.addition_time_embed_dim = 256;
  u.projection_class_embeddings_input_dim = 2816;
  return u;
}

namespace {

// The released ConvBlock sizes per block (docs/paper-facts.md), recognised
// by the channel layout; 0 where unknown.
struct ReleasedKernels {
  std::vector<int64_t> down, up;
  int64_t mid = 0;
};
ReleasedKernels Released(const UNet2DConditionConfig& c) {
  if (c.block_out_channels == std::vector<int64_t>{320, 640, 1280, 1280}) return {{7, 9, 5, 0}, {0, 5, 9, 11}, 3};
  if (c.block_out_channels == std::vector<int64_t>{320, 640, 1280}) return {{0, 9, 7}, {9, 13, 0}, 9};
  return {};
}

int64_t At(const std::vector<int64_t>& v, int i) { return i < static_cast<int>(v.size()) ? v[i] : 0; }

// Builds one model; keeps the state the blocks share.
class UNetBuilder {
 public:
  UNetBuilder(Builder& b, const UNet2DConditionConfig& c, const UNetBuildOptions& o, Value context)
      : b_(b), c_(c), o_(o), context_(context), released_(Released(c)) {}

  UNetOutputs* out() { return &out_; }
  const ReleasedKernels& released() const { return released_; }

  // The choice for one transformer block: the options', then the config's
  // conv1 size (unless the options name a ConvBlock size themselves), then
  // per_layer; a ConvBlock of size 0 takes the config's, else the released, else 13.
  SelfAttentionChoice Choose(UNetAttentionSite site) {
    SelfAttentionChoice ch = o_.self_attention;
    if (o_.config_conv1_kernels && site.config_kernel > 0) {
      if (ch.kind != SelfAttentionKind::kConvBlock) {
        ch = SelfAttentionChoice();
        ch.kind = SelfAttentionKind::kConvBlock;
      }
      if (o_.self_attention.kind != SelfAttentionKind::kConvBlock || o_.self_attention.kernel == 0)
        ch.kernel = site.config_kernel;
    }
    if (o_.per_layer)
      if (auto over = o_.per_layer(site)) ch = *over;
    if (ch.kind == SelfAttentionKind::kConvBlock && ch.kernel == 0)
      ch.kernel = site.config_kernel > 0 ? site.config_kernel : site.released_kernel > 0 ? site.released_kernel : 13;
    return ch;
  }

  // attentions.j of a block: a Transformer2DModel whose blocks get their choices.
  Value Attention(Value h, const std::string& part, int block, int64_t heads, int64_t layers, int64_t config_kernel,
                  int64_t released_kernel) {
    const int64_t C = h.dim(-1);
    Transformer2DOptions t;
    t.heads = heads;
    t.head_dim = C / heads;
    t.num_layers = layers;
    t.norm_groups = c_.norm_num_groups;
    t.use_linear_projection = c_.use_linear_projection;
    t.params = o_.params;
    for (int64_t i = 0; i < layers; ++i) {
      UNetAttentionSite site;
      site.scope = b_.Qualified(absl::StrCat("transformer_blocks.", i));
      site.part = part;
      site.block = block;
      site.channels = C;
      site.height = h.dim(1);
      site.width = h.dim(2);
      site.config_kernel = config_kernel;
      site.released_kernel = released_kernel;
      site.choice = Choose(site);
      t.self_attention.push_back(site.choice);
      out_.sites.push_back(site);
    }
    return Transformer2D(b_, h, context_, t);
  }

  Value Resnet(Value h, Value temb, int64_t out, double scale = 1.0) {
    return ResnetBlock2D(b_, h, temb,
                         {.out_channels = out, .groups = c_.norm_num_groups, .eps = c_.norm_eps,
                          .output_scale_factor = scale, .params = o_.params});
  }

  void Tap(const std::string& name, Value v) { out_.taps.push_back({name, v}); }

 private:
  Builder& b_;
  const UNet2DConditionConfig& c_;
  const UNetBuildOptions& o_;
  Value context_;
  const ReleasedKernels released_;
  UNetOutputs out_;
};

// TimestepEmbedding: linear_1 -> SiLU -> linear_2, in scope `name`.
Value TimeMlp(Builder& b, const std::string& name, Value x, int64_t dim, const ParamOptions& p) {
  auto s = b.scope(name);
  Value h = LinearLayer(b, "linear_1", x, dim, true, p, "silu");  // [B, dim]
  return LinearLayer(b, "linear_2", h, dim, true, p);             // [B, dim]
}

}  // namespace

UNetOutputs UNet2DCondition(Builder& b, const UNet2DConditionConfig& c, const UNetInputs& in,
                            const UNetBuildOptions& o) {
  if (!in.sample.valid() || !in.timestep.valid() || !in.encoder_hidden_states.valid()) {
    if (b.ok()) b.Fail(absl::InvalidArgumentError("UNet2DConditionModel: an input is an invalid Value"));
    return {};
  }
  const Shape ss = in.sample.shape();
  const int nb = static_cast<int>(c.block_out_channels.size());
  if (!Check(b, ss.rank() == 4 && ss[1] == c.in_channels,
             absl::InvalidArgumentError(absl::StrCat("UNet2DConditionModel: sample must be [B, ", c.in_channels,
                                                     ", H, W], got ", in.sample.type().ToString()))) ||
      !Check(b, nb > 0 && c.layers_per_block.size() == static_cast<size_t>(nb),
             absl::InvalidArgumentError("UNet2DConditionModel: the config's per-block lists disagree")) ||
      !Check(b, c.text_time == (in.text_embeds.has_value() && in.time_ids.has_value()),
             absl::InvalidArgumentError(absl::StrCat(
                 "UNet2DConditionModel: text_embeds and time_ids are ",
                 c.text_time ? "required (addition_embed_type text_time)" : "not used by this config"))))
    return {};
  const int64_t B = ss[0];
  ParamOptions p = o.params;
  p.dtype = p.For(in.sample);
  UNetBuildOptions opts = o;
  opts.params = p;
  UNetBuilder u(b, c, opts, in.encoder_hidden_states);

  // ---- time embedding
  Value t = in.timestep;
  if (t.rank() == 0) t = BroadcastTo(Reshape(t, {1}), Shape{B});                               // [B]
  Value t_emb = Cast(TimestepEmbedding(t, c.block_out_channels[0],
                                       {.flip_sin_to_cos = c.flip_sin_to_cos, .downscale_freq_shift = c.freq_shift}),
                     *p.dtype);                                                                // [B, C0]
  Value emb = TimeMlp(b, "time_embedding", t_emb, c.time_embed_dim, p);                       // [B, T]
  u.Tap("time_embedding", emb);
  if (c.text_time) {
    const int64_t n = in.time_ids->dim(1);
    Value ids = Reshape(*in.time_ids, {B * n});                                                // [B·n]
    Value te = TimestepEmbedding(ids, c.addition_time_embed_dim,
                                 {.flip_sin_to_cos = c.flip_sin_to_cos, .downscale_freq_shift = c.freq_shift});
    te = Cast(Reshape(te, {B, n * c.addition_time_embed_dim}), *p.dtype);                     // [B, n·256]
    Value add = Concat({*in.text_embeds, te}, 1);                                              // [B, Dt + n·256]
    Value aug = TimeMlp(b, "add_embedding", add, c.time_embed_dim, p);                        // [B, T]
    u.Tap("add_embedding", aug);
    emb = emb + aug;                                                                           // [B, T]
  }

  // ---- input
  Value h = Permute(in.sample, {0, 2, 3, 1});                                                  // [B, H, W, Cin]
  if (c.center_input_sample) h = Scale(h, 2.0, -1.0);
  h = Conv2dLayer(b, "conv_in", h, c.block_out_channels[0], c.conv_in_kernel, 1, (c.conv_in_kernel - 1) / 2, true,
                  p);                                                                          // [B, H, W, C0]
  u.Tap("conv_in", h);
  std::vector<Value> skips = {h};

  // ---- down blocks
  for (int i = 0; i < nb; ++i) {
    auto s = b.scope(absl::StrCat("down_blocks.", i));
    const bool cross = c.down_block_types[i] == "CrossAttnDownBlock2D", last = i == nb - 1;
    const int64_t C = c.block_out_channels[i];
    for (int64_t j = 0; j < c.layers_per_block[i]; ++j) {
      {
        auto sr = b.scope(absl::StrCat("resnets.", j));
        h = u.Resnet(h, emb, C);                                                               // [B, h, w, C]
      }
      if (cross) {
        auto sa = b.scope(absl::StrCat("attentions.", j));
        h = u.Attention(h, "down", i, c.attention_heads[i], c.transformer_layers_per_block[i],
                        At(c.down_conv1_kernels, i), At(u.released().down, i));                 // [B, h, w, C]
      }
      skips.push_back(h);
    }
    if (!last) {
      auto sd = b.scope("downsamplers.0");
      h = Downsample2D(b, h, C, c.downsample_padding, p);                                      // [B, h/2, w/2, C]
      skips.push_back(h);
    }
    u.Tap(absl::StrCat("down_blocks.", i), h);
  }

  // ---- mid block
  if (!c.mid_block_type.empty()) {
    auto s = b.scope("mid_block");
    const int64_t C = c.block_out_channels.back();
    {
      auto sr = b.scope("resnets.0");
      h = u.Resnet(h, emb, C, c.mid_block_scale_factor);                                      // [B, h, w, C]
    }
    {
      auto sa = b.scope("attentions.0");
      h = u.Attention(h, "mid", 0, c.attention_heads.back(), c.transformer_layers_per_block.back(),
                      c.mid_conv1_kernel, u.released().mid);                                    // [B, h, w, C]
    }
    {
      auto sr = b.scope("resnets.1");
      h = u.Resnet(h, emb, C, c.mid_block_scale_factor);                                      // [B, h, w, C]
    }
    u.Tap("mid_block", h);
  }

  // ---- up blocks (reversed channels, heads and layer counts)
  for (int i = 0; i < nb; ++i) {
    auto s = b.scope(absl::StrCat("up_blocks.", i));
    const int r = nb - 1 - i;  // the matching down block
    const bool cross = c.up_block_types[i] == "CrossAttnUpBlock2D", last = i == nb - 1;
    const int64_t C = c.block_out_channels[r];
    const int64_t layers = c.layers_per_block[r] + 1;
    for (int64_t j = 0; j < layers; ++j) {
      if (!Check(b, !skips.empty(), absl::InvalidArgumentError("UNet2DConditionModel: ran out of skip connections")))
        return {};
      Value skip = skips.back();
      skips.pop_back();
      h = Concat({h, skip}, 3);                                                                // [B, h, w, C + Cskip]
      {
        auto sr = b.scope(absl::StrCat("resnets.", j));
        h = u.Resnet(h, emb, C);                                                               // [B, h, w, C]
      }
      if (cross) {
        auto sa = b.scope(absl::StrCat("attentions.", j));
        h = u.Attention(h, "up", i, c.attention_heads[r], c.reverse_transformer_layers_per_block[i],
                        At(c.up_conv1_kernels, i), At(u.released().up, i));                     // [B, h, w, C]
      }
    }
    if (!last) {
      // To the size of the next skip (2x, or 2x - 1 where a stride-2 conv
      // rounded an odd size up), as diffusers' forward_upsample_size does.
      auto su = b.scope("upsamplers.0");
      std::optional<Size2> size;
      if (!skips.empty()) size = Size2{skips.back().dim(1), skips.back().dim(2)};
      h = Upsample2D(b, h, C, size, p);                                                        // [B, 2h, 2w, C]
    }
    u.Tap(absl::StrCat("up_blocks.", i), h);
  }

  // ---- output
  h = Silu(GroupNormLayer(b, "conv_norm_out", h, c.norm_num_groups, c.norm_eps, true, p));   // [B, H, W, C0]
  h = Conv2dLayer(b, "conv_out", h, c.out_channels, c.conv_out_kernel, 1, (c.conv_out_kernel - 1) / 2, true,
                  p);                                                                          // [B, H, W, Cout]
  UNetOutputs res = std::move(*u.out());
  res.sample = Permute(h, {0, 3, 1, 2});                                                       // [B, Cout, H, W]
  if (!b.ok()) return {};
  return res;
}

StatusOr<UNetOutputs> BuildUNet2DConditionGraph(Builder& b, const UNet2DConditionConfig& c,
                                                const UNetGraphShape& s, const UNetBuildOptions& o) {
  UNetInputs in;
  in.sample = b.Input("sample", Shape{s.batch, c.in_channels, s.height, s.width}, s.dtype);
  in.timestep = b.Input("timestep", Shape{s.batch}, DType::f32);
  in.encoder_hidden_states =
      b.Input("encoder_hidden_states", Shape{s.batch, s.tokens, c.cross_attention_dim[0]}, s.dtype);
  if (c.text_time) {
    const int64_t text = c.projection_class_embeddings_input_dim - s.time_ids * c.addition_time_embed_dim;
    if (text <= 0)
      return absl::InvalidArgumentError(absl::StrCat(
          "UNet2DConditionModel: projection_class_embeddings_input_dim ", c.projection_class_embeddings_input_dim,
          " leaves no room for text_embeds beside ", s.time_ids, " time ids of ", c.addition_time_embed_dim));
    in.text_embeds = b.Input("text_embeds", Shape{s.batch, text}, s.dtype);
    in.time_ids = b.Input("time_ids", Shape{s.batch, s.time_ids}, DType::f32);
  }
  UNetOutputs out = UNet2DCondition(b, c, in, o);
  if (out.sample.valid()) b.MarkOutput(out.sample, "output");
  CF_RETURN_IF_ERROR(b.status());
  return out;
}

}  // namespace cf
