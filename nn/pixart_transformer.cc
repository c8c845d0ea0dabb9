// nn/pixart_transformer.h. The structure follows diffusers'
// PixArtTransformer2DModel.__init__ / forward, PatchEmbed, AdaLayerNormSingle,
// PixArtAlphaCombinedTimestepSizeEmbeddings, PixArtAlphaTextProjection and
// BasicTransformerBlock's "ada_norm_single" path, written from their
// documented behaviour.
#include "nn/pixart_transformer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "ops/activation/activation.h"
#include "ops/elementwise/elementwise.h"
#include "ops/embed/embed.h"
#include "ops/norm/norm.h"
#include "ops/shape/shape.h"

namespace cf {

namespace {

Status Unsupported(const DiffusersConfig& c, const std::string& key, const std::string& value) {
  return absl::UnimplementedError(absl::StrCat("config ", c.source(), ": PixArtTransformer2DModel with ", key, " = ",
                                               value, " is not implemented"));
}

Status ExpectString(const DiffusersConfig& c, const std::string& key, const std::string& want) {
  CF_ASSIGN_OR_RETURN(std::string v, c.String(key, want));
  if (v != want) return Unsupported(c, key, absl::StrCat("\"", v, "\" (only \"", want, "\" is)"));
  return absl::OkStatus();
}

Status ExpectFalse(const DiffusersConfig& c, const std::string& key) {
  CF_ASSIGN_OR_RETURN(bool v, c.Bool(key, false));
  if (v) return Unsupported(c, key, "true");
  return absl::OkStatus();
}

}  // namespace

StatusOr<PixArtTransformerConfig> PixArtTransformerConfig::FromDiffusers(const DiffusersConfig& c) {
  const std::string cls = c.class_name();
  if (!cls.empty() && cls != "PixArtTransformer2DModel" && cls != "Transformer2DModel" && cls != "PixArtConv2DModel")
    return absl::InvalidArgumentError(
        absl::StrCat("config ", c.source(), ": _class_name \"", cls, "\" is not a PixArt transformer"));
  // The released files say Transformer2DModel; diffusers builds a PixArt model
  // from them only for this norm type, so it is checked first.
  CF_RETURN_IF_ERROR(ExpectString(c, "norm_type", "ada_norm_single"));
  PixArtTransformerConfig p;
  CF_ASSIGN_OR_RETURN(p.heads, c.Int("num_attention_heads", 16));
  CF_ASSIGN_OR_RETURN(p.head_dim, c.Int("attention_head_dim", 72));
  CF_ASSIGN_OR_RETURN(p.in_channels, c.Int("in_channels", 4));
  CF_ASSIGN_OR_RETURN(p.out_channels, c.Int("out_channels", 8));
  CF_ASSIGN_OR_RETURN(p.num_layers, c.Int("num_layers", 28));
  // Absent (or null, which the reader cannot tell apart; in diffusers null
  // drops attn2, a Latte layout not implemented here): the default 1152.
  CF_ASSIGN_OR_RETURN(p.cross_attention_dim, c.Int("cross_attention_dim", 1152));
  CF_ASSIGN_OR_RETURN(p.attention_bias, c.Bool("attention_bias", true));
  CF_ASSIGN_OR_RETURN(p.sample_size, c.Int("sample_size", 128));
  CF_ASSIGN_OR_RETURN(p.patch_size, c.Int("patch_size", 2));
  CF_ASSIGN_OR_RETURN(std::string act, c.String("activation_fn", "gelu-approximate"));
  if (act != "gelu-approximate" && act != "gelu")
    return Unsupported(c, "activation_fn", absl::StrCat("\"", act, "\" (\"gelu-approximate\" and \"gelu\" are)"));
  p.gelu_tanh = act == "gelu-approximate";
  CF_ASSIGN_OR_RETURN(int64_t ada_embeds, c.Int("num_embeds_ada_norm", 1000));  // unused by adaLN-single
  (void)ada_embeds;
  CF_ASSIGN_OR_RETURN(p.norm_elementwise_affine, c.Bool("norm_elementwise_affine", false));
  CF_ASSIGN_OR_RETURN(p.norm_eps, c.Double("norm_eps", 1e-6));
  // diffusers: interpolation_scale, else max(sample_size // 64, 1);
  // use_additional_conditions, else sample_size == 128.
  if (c.Has("interpolation_scale")) {
    CF_ASSIGN_OR_RETURN(p.interpolation_scale, c.Double("interpolation_scale"));
  } else {
    p.interpolation_scale = static_cast<double>(std::max<int64_t>(p.sample_size / 64, 1));
  }
  CF_ASSIGN_OR_RETURN(p.use_additional_conditions, c.Bool("use_additional_conditions", p.sample_size == 128));
  CF_ASSIGN_OR_RETURN(auto caption, c.OptionalInt("caption_channels"));
  p.caption_channels = caption.value_or(0);
  CF_RETURN_IF_ERROR(ExpectString(c, "attention_type", "default"));
  // Transformer2DModel's keys in the released files: they must keep the
  // values of the PixArt path.
  if (c.Has("num_vector_embeds")) return Unsupported(c, "num_vector_embeds", "a value (only null is)");
  CF_RETURN_IF_ERROR(ExpectFalse(c, "only_cross_attention"));
  CF_RETURN_IF_ERROR(ExpectFalse(c, "double_self_attention"));
  // Unused by the PixArt path (use_linear_projection, norm_num_groups),
  // training-only (dropout) or numerically irrelevant here (upcast_attention:
  // the attention op accumulates in f32).
  c.Accept({"use_linear_projection", "norm_num_groups", "dropout", "upcast_attention"});
  if (const std::string note = c.UnknownKeysNote(); !note.empty()) p.note = note;

  const auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("config ", c.source(), ": ", why));
  };
  if (p.heads < 1 || p.head_dim < 1 || p.in_channels < 1 || p.out_channels < 1 || p.num_layers < 0 ||
      p.patch_size < 1 || p.sample_size < p.patch_size)
    return bad(absl::StrCat("num_attention_heads ", p.heads, ", attention_head_dim ", p.head_dim, ", in_channels ",
                            p.in_channels, ", out_channels ", p.out_channels, ", num_layers ", p.num_layers,
                            ", patch_size ", p.patch_size, ", sample_size ", p.sample_size,
                            " must be positive (sample_size >= patch_size)"));
  if (p.inner_dim() % 4 != 0) return bad(absl::StrCat("the inner dim ", p.inner_dim(), " (heads x head dim) must be "
                                                      "divisible by 4 for the 2D sin-cos position embedding"));
  if (p.caption_channels > 0 && p.cross_attention_dim != p.inner_dim())
    return bad(absl::StrCat("cross_attention_dim ", p.cross_attention_dim, " differs from the inner dim ",
                            p.inner_dim(), " that caption_projection produces"));
  if (p.use_additional_conditions && p.inner_dim() % 3 != 0)
    return bad(absl::StrCat("use_additional_conditions needs an inner dim divisible by 3 (2 x D/3 resolution + D/3 "
                            "aspect-ratio channels are added to the timestep embedding), got ",
                            p.inner_dim()));
  if (p.interpolation_scale <= 0) return bad(absl::StrCat("interpolation_scale must be > 0, got ",
                                                          p.interpolation_scale));
  return p;
}

StatusOr<PixArtTransformerConfig> PixArtTransformerConfig::Load(const std::string& path) {
  CF_ASSIGN_OR_RETURN(DiffusersConfig c, DiffusersConfig::Load(path));
  return FromDiffusers(c);
}

// The released files (docs/paper-facts.md, tests/data/pixart/*_config.json):
// 28 blocks of 16 heads x 72, patch 2, 4 -> 8 channels, T5's 4096-wide captions.
PixArtTransformerConfig PixArtTransformerConfig::PixArtAlpha512() {
  PixArtTransformerConfig p;
  p.sample_size = 64;
  p.interpolation_scale = 1;
  p.use_additional_conditions = false;
  return p;
}

PixArtTransformerConfig PixArtTransformerConfig::PixArtAlpha1024MS() { return PixArtTransformerConfig(); }

PixArtTransformerConfig PixArtTransformerConfig::PixArtSigma1024MS() {
  PixArtTransformerConfig p;
  p.use_additional_conditions = false;
  return p;
}

namespace {

// TimestepEmbedding: linear_1 -> SiLU -> linear_2, in scope `name`.
Value TimeMlp(Builder& b, const std::string& name, Value x, int64_t dim, const ParamOptions& p) {
  auto s = b.scope(name);
  Value h = LinearLayer(b, "linear_1", x, dim, true, p, "silu");  // [B, dim]
  return LinearLayer(b, "linear_2", h, dim, true, p);             // [B, dim]
}

// diffusers' Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0) in `dt`.
Value Sinusoid256(Value t, DType dt) {
  return TimestepEmbedding(t, 256, {.flip_sin_to_cos = true, .downscale_freq_shift = 0.0, .dtype = dt});
}

// x [B, h, w, D] as [B, h·w, D] and back (views).
Value Tokens(Value x) { return Reshape(x, {x.dim(0), x.dim(1) * x.dim(2), x.dim(3)}); }

}  // namespace

PixArtBlockOutputs PixArtTransformerBlock(Builder& b, Value h, Value context, Value timestep,
                                          const PixArtBlockOptions& o) {
  if (!h.valid() || !context.valid() || !timestep.valid()) return {};
  const Shape hs = h.shape();
  if (!Check(b, hs.rank() == 4 && timestep.type().shape == Shape({hs[0], 6 * hs[3]}),
             absl::InvalidArgumentError(absl::StrCat("PixArt block: h must be [B, h, w, D] and timestep [B, 6D], got ",
                                                     h.type().ToString(), " and ", timestep.type().ToString()))))
    return {};
  const int64_t B = hs[0], D = hs[3];
  const ParamOptions& p = o.params;
  const auto grid = [&](Value v) { return Reshape(v, {B, hs[1], hs[2], D}); };
  const auto per_channel = [&](Value v) { return Reshape(v, {B, 1, 1, D}); };  // [B, 1, D] over the grid

  Value table = b.Parameter("scale_shift_table", Shape{6, D}, p.For(h), {}, p.frozen);
  std::vector<Value> m = Chunk(Reshape(timestep, {B, 6, D}) + table, 6, 1);  // 6 x [B, 1, D]
  const Value &shift_msa = m[0], &scale_msa = m[1], &gate_msa = m[2];
  const Value &shift_mlp = m[3], &scale_mlp = m[4], &gate_mlp = m[5];

  Value n = LayerNormLayer(b, "norm1", h, o.norm_eps, o.norm_affine, p);                        // [B, h, w, D]
  n = grid(AdaLnModulate(Tokens(n), shift_msa, scale_msa));                                     // [B, h, w, D]
  Value a = SelfAttentionLayer(b, n, o.self_attention, o.heads, p, o.attention_bias);           // [B, h, w, D]
  h = h + per_channel(gate_msa) * a;                                                            // [B, h, w, D]
  PixArtBlockOutputs out;
  out.after_self = h;
  {
    auto s = b.scope("attn2");
    h = h + AttentionModule(b, h, context,
                            {.heads = o.heads, .head_dim = o.head_dim, .qkv_bias = o.attention_bias, .params = p,
                             .key_mask = o.encoder_attention_mask});                            // [B, h, w, D]
  }
  n = LayerNormLayer(b, "norm2", h, o.norm_eps, o.norm_affine, p);                              // [B, h, w, D]
  n = grid(AdaLnModulate(Tokens(n), shift_mlp, scale_mlp));                                     // [B, h, w, D]
  Value f = LinearLayer(b, "ff.net.0.proj", n, 4 * D, true, p, o.gelu_tanh ? "gelu_tanh" : "gelu");  // [B, h, w, 4D]
  f = LinearLayer(b, "ff.net.2", f, D, true, p);                                                // [B, h, w, D]
  out.out = h + per_channel(gate_mlp) * f;                                                      // [B, h, w, D]
  return out;
}

PixArtOutputs PixArtTransformer2D(Builder& b, const PixArtTransformerConfig& c, const PixArtInputs& in,
                                  const PixArtBuildOptions& o) {
  const auto fail = [&](const std::string& why) {
    if (b.ok()) b.Fail(absl::InvalidArgumentError(absl::StrCat("PixArtTransformer2DModel: ", why)));
    return PixArtOutputs{};
  };
  if (!in.hidden_states.valid() || !in.timestep.valid() || !in.encoder_hidden_states.valid() ||
      (in.encoder_attention_mask && !in.encoder_attention_mask->valid()) ||
      (in.resolution && !in.resolution->valid()) || (in.aspect_ratio && !in.aspect_ratio->valid()))
    return fail("an input is an invalid Value");
  const Shape xs = in.hidden_states.shape(), es = in.encoder_hidden_states.shape();
  const int64_t P = c.patch_size, D = c.inner_dim();
  if (xs.rank() != 4 || xs[1] != c.in_channels || xs[2] % P != 0 || xs[3] % P != 0)
    return fail(absl::StrCat("hidden_states must be [B, ", c.in_channels, ", H, W] with H and W multiples of the patch "
                             "size ", P, ", got ", in.hidden_states.type().ToString()));
  const int64_t B = xs[0], h = xs[2] / P, w = xs[3] / P;
  const int64_t text_dim = c.caption_channels > 0 ? c.caption_channels : c.cross_attention_dim;
  if (es.rank() != 3 || es[0] != B || es[2] != text_dim)
    return fail(absl::StrCat("encoder_hidden_states must be [", B, ", T, ", text_dim, "], got ",
                             in.encoder_hidden_states.type().ToString()));
  if (in.encoder_attention_mask && in.encoder_attention_mask->type().shape != Shape({B, es[1]}))
    return fail(absl::StrCat("encoder_attention_mask must be [", B, ", ", es[1], "], got ",
                             in.encoder_attention_mask->type().ToString()));
  if (c.use_additional_conditions != (in.resolution.has_value() && in.aspect_ratio.has_value()))
    return fail(absl::StrCat("resolution and aspect_ratio are ",
                             c.use_additional_conditions ? "required (use_additional_conditions)"
                                                         : "not used by this config"));
  if (c.use_additional_conditions &&
      (in.resolution->type().shape != Shape({B, 2}) || in.aspect_ratio->type().shape != Shape({B, 1})))
    return fail(absl::StrCat("resolution must be [", B, ", 2] and aspect_ratio [", B, ", 1], got ",
                             in.resolution->type().ToString(), " and ", in.aspect_ratio->type().ToString()));

  ParamOptions p = o.params;
  p.dtype = p.For(in.hidden_states);
  const DType dt = *p.dtype;
  PixArtOutputs res;

  // ---- pos_embed: patches (a PxP conv of stride P) plus 2D sin-cos positions
  Value x = Permute(in.hidden_states, {0, 2, 3, 1});                                           // [B, H, W, Cin]
  {
    auto s = b.scope("pos_embed");
    x = Conv2dLayer(b, "proj", x, D, P, P, 0, true, p);                                        // [B, h, w, D]
    Value pos = SinCosPosEmbed2d(b, D, h, w,
                                 {.base_size = static_cast<double>(c.base_size()),
                                  .interpolation_scale = c.interpolation_scale, .dtype = dt});  // [h·w, D]
    x = x + Reshape(pos, {h, w, D});                                                           // [B, h, w, D]
  }
  res.taps.push_back({"pos_embed", x});

  // ---- adaln_single: the timestep (and micro-condition) embedding, and its 6·D modulation
  Value t = in.timestep;
  if (t.rank() == 0) t = BroadcastTo(Reshape(t, {1}), Shape{B});                               // [B]
  Value embedded, t6;
  {
    auto s = b.scope("adaln_single");
    {
      auto se = b.scope("emb");
      embedded = TimeMlp(b, "timestep_embedder", Sinusoid256(t, dt), D, p);                    // [B, D]
      if (c.use_additional_conditions) {
        Value r = Sinusoid256(Reshape(*in.resolution, {2 * B}), dt);                            // [2B, 256]
        r = Reshape(TimeMlp(b, "resolution_embedder", r, D / 3, p), {B, 2 * (D / 3)});         // [B, 2D/3]
        Value ar = Sinusoid256(Reshape(*in.aspect_ratio, {B}), dt);                             // [B, 256]
        ar = TimeMlp(b, "aspect_ratio_embedder", ar, D / 3, p);                                 // [B, D/3]
        embedded = embedded + Concat({r, ar}, 1);                                               // [B, D]
      }
    }
    t6 = LinearLayer(b, "linear", Silu(embedded), 6 * D, true, p);                             // [B, 6D]
  }
  res.taps.push_back({"adaln_single.emb", embedded});
  res.taps.push_back({"adaln_single", t6});

  // ---- caption_projection: Linear -> GELU(tanh) -> Linear
  Value context = in.encoder_hidden_states;
  if (c.caption_channels > 0) {
    auto s = b.scope("caption_projection");
    context = LinearLayer(b, "linear_1", context, D, true, p, "gelu_tanh");                    // [B, T, D]
    context = LinearLayer(b, "linear_2", context, D, true, p);                                 // [B, T, D]
    res.taps.push_back({"caption_projection", context});
  }

  // ---- transformer blocks
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string name = absl::StrCat("transformer_blocks.", i);
    auto s = b.scope(name);
    PixArtAttentionSite site{.scope = b.current_scope(), .block = i, .channels = D, .height = h, .width = w,
                             .choice = o.self_attention};
    if (o.per_layer)
      if (auto over = o.per_layer(site)) site.choice = *over;
    if (site.choice.kind == SelfAttentionKind::kConvBlock) {  // the released PixArt ConvBlock where left open
      if (site.choice.kernel == 0) site.choice.kernel = 13;
      if (site.choice.gate == ConvBlockGate::kReleased) site.choice.gate = ConvBlockGate::kSigmoid;
    }
    PixArtBlockOptions bo;
    bo.heads = c.heads;
    bo.head_dim = c.head_dim;
    bo.norm_eps = c.norm_eps;
    bo.norm_affine = c.norm_elementwise_affine;
    bo.attention_bias = c.attention_bias;
    bo.gelu_tanh = c.gelu_tanh;
    bo.self_attention = site.choice;
    bo.encoder_attention_mask = in.encoder_attention_mask;
    bo.params = p;
    PixArtBlockOutputs blk = PixArtTransformerBlock(b, x, context, t6, bo);
    x = blk.out;                                                                                // [B, h, w, D]
    res.taps.push_back({name + ".self", blk.after_self});
    res.taps.push_back({name, x});
    res.sites.push_back(site);
  }

  // ---- output: norm_out, the final modulation, proj_out, unpatchify
  {
    Value table = b.Parameter("scale_shift_table", Shape{2, D}, dt, {}, p.frozen);
    std::vector<Value> ss = Chunk(Reshape(embedded, {B, 1, D}) + table, 2, 1);                  // shift, scale [B, 1, D]
    Value n = LayerNormLayer(b, "norm_out", Tokens(x), 1e-6, false, p);                         // [B, N, D]
    n = AdaLnModulate(n, ss[0], ss[1]);                                                         // [B, N, D]
    Value y = LinearLayer(b, "proj_out", n, P * P * c.out_channels, true, p);                  // [B, N, P·P·Cout]
    y = Reshape(y, {B, h, w, P, P, c.out_channels});                                            // [B, h, w, P, P, Cout]
    y = Permute(y, {0, 5, 1, 3, 2, 4});                                                         // [B, Cout, h, P, w, P]
    res.sample = Reshape(y, {B, c.out_channels, h * P, w * P});                                 // [B, Cout, H, W]
  }
  if (!b.ok()) return {};
  return res;
}

StatusOr<PixArtOutputs> BuildPixArtTransformerGraph(Builder& b, const PixArtTransformerConfig& c,
                                                    const PixArtGraphShape& s, const PixArtBuildOptions& o) {
  PixArtInputs in;
  in.hidden_states = b.Input("hidden_states", Shape{s.batch, c.in_channels, s.height, s.width}, s.dtype);
  in.timestep = b.Input("timestep", Shape{s.batch}, DType::f32);
  in.encoder_hidden_states =
      b.Input("encoder_hidden_states",
              Shape{s.batch, s.tokens, c.caption_channels > 0 ? c.caption_channels : c.cross_attention_dim}, s.dtype);
  if (s.attention_mask) in.encoder_attention_mask = b.Input("encoder_attention_mask", Shape{s.batch, s.tokens}, DType::u8);
  if (c.use_additional_conditions) {
    in.resolution = b.Input("resolution", Shape{s.batch, 2}, DType::f32);
    in.aspect_ratio = b.Input("aspect_ratio", Shape{s.batch, 1}, DType::f32);
  }
  PixArtOutputs out = PixArtTransformer2D(b, c, in, o);
  if (out.sample.valid()) b.MarkOutput(out.sample, "output");
  CF_RETURN_IF_ERROR(b.status());
  return out;
}

}  // namespace cf
