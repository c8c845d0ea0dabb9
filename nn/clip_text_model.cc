// nn/clip_text_model.h. The structure follows transformers' CLIPTextModel,
// CLIPTextTransformer, CLIPEncoderLayer, CLIPAttention, CLIPMLP and
// CLIPTextModelWithProjection, written from their documented behaviour.
#include "nn/clip_text_model.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ops/activation/activation.h"
#include "ops/attention/attention.h"
#include "ops/elementwise/elementwise.h"
#include "ops/embed/embed.h"
#include "ops/matmul/matmul.h"
#include "ops/shape/shape.h"

namespace cf {

namespace {

constexpr const char* kPlain = "CLIPTextModel";
constexpr const char* kProjected = "CLIPTextModelWithProjection";
// transformers' legacy end-token id: pooled at argmax(input_ids).
constexpr int64_t kLegacyEos = 2;
// The buffer older checkpoints hold next to the weights.
constexpr const char* kPositionIds = "text_model.embeddings.position_ids";

}  // namespace

std::string ClipTextConfig::Describe() const {
  std::string s = absl::StrCat(with_projection ? kProjected : kPlain, " (", num_layers, " layers, width ", hidden_size,
                               ", ", heads, " heads, ", quick_gelu ? "quick_gelu" : "gelu", ", vocab ", vocab_size,
                               ", ", max_positions, " positions");
  if (with_projection) absl::StrAppend(&s, ", projection ", projection_dim);
  return s + ")";
}

StatusOr<ClipTextConfig> ClipTextConfig::FromTransformers(const DiffusersConfig& c) {
  const auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("config ", c.source(), ": ", why));
  };
  CF_ASSIGN_OR_RETURN(std::string model_type, c.String("model_type", "clip_text_model"));
  if (model_type != "clip_text_model")
    return bad(absl::StrCat("model_type \"", model_type, "\" is not a CLIP text model (\"clip_text_model\"; a whole ",
                            "CLIPModel's config nests it under text_config)"));
  ClipTextConfig p;
  if (c.Has("architectures")) {
    CF_ASSIGN_OR_RETURN(std::vector<std::string> arch, c.StringList("architectures"));
    if (arch.size() != 1 || (arch[0] != kPlain && arch[0] != kProjected))
      return bad(absl::StrCat("architectures [", absl::StrJoin(arch, ", "), "] is not [\"", kPlain, "\"] or [\"",
                              kProjected, "\"]"));
    p.with_projection = arch[0] == kProjected;
  }
  CF_ASSIGN_OR_RETURN(p.vocab_size, c.Int("vocab_size", 49408));
  CF_ASSIGN_OR_RETURN(p.hidden_size, c.Int("hidden_size", 512));
  CF_ASSIGN_OR_RETURN(p.intermediate_size, c.Int("intermediate_size", 2048));
  CF_ASSIGN_OR_RETURN(p.num_layers, c.Int("num_hidden_layers", 12));
  CF_ASSIGN_OR_RETURN(p.heads, c.Int("num_attention_heads", 8));
  CF_ASSIGN_OR_RETURN(p.max_positions, c.Int("max_position_embeddings", 77));
  CF_ASSIGN_OR_RETURN(std::string act, c.String("hidden_act", "quick_gelu"));
  if (act != "quick_gelu" && act != "gelu")
    return absl::UnimplementedError(absl::StrCat("config ", c.source(), ": hidden_act \"", act,
                                                 "\" is not implemented (\"quick_gelu\" and \"gelu\" are)"));
  p.quick_gelu = act == "quick_gelu";
  CF_ASSIGN_OR_RETURN(p.layer_norm_eps, c.Double("layer_norm_eps", 1e-5));
  CF_ASSIGN_OR_RETURN(p.projection_dim, c.Int("projection_dim", 512));
  CF_ASSIGN_OR_RETURN(p.eos_token_id, c.Int("eos_token_id", 49407));
  // The tokenizer's business (bos, pad), training only (dropout,
  // initialisation) or the file's own metadata.
  c.Accept({"bos_token_id", "pad_token_id", "attention_dropout", "dropout", "initializer_factor", "initializer_range",
            "torch_dtype", "dtype", "transformers_version", "output_attentions", "output_hidden_states",
            "use_return_dict", "return_dict", "tie_word_embeddings"});
  if (const std::string note = c.UnknownKeysNote(); !note.empty()) p.note = note;
  if (p.vocab_size < 1 || p.hidden_size < 1 || p.intermediate_size < 1 || p.num_layers < 0 || p.heads < 1 ||
      p.max_positions < 1 || (p.with_projection && p.projection_dim < 1))
    return bad(absl::StrCat("vocab_size ", p.vocab_size, ", hidden_size ", p.hidden_size, ", intermediate_size ",
                            p.intermediate_size, ", num_hidden_layers ", p.num_layers, ", num_attention_heads ",
                            p.heads, ", max_position_embeddings ", p.max_positions, ", projection_dim ",
                            p.projection_dim, " must be positive (num_hidden_layers >= 0)"));
  if (p.hidden_size % p.heads != 0)
    return bad(absl::StrCat("hidden_size ", p.hidden_size, " is not divisible by num_attention_heads ", p.heads));
  if (!(p.layer_norm_eps > 0) || !std::isfinite(p.layer_norm_eps))
    return bad(absl::StrCat("layer_norm_eps must be > 0, got ", p.layer_norm_eps));
  return p;
}

StatusOr<ClipTextConfig> ClipTextConfig::Load(const std::string& path) {
  CF_ASSIGN_OR_RETURN(DiffusersConfig c, DiffusersConfig::Load(path));
  return FromTransformers(c);
}

// docs/paper-facts.md "Model configurations"; tests/data/clip/*_config.json.
ClipTextConfig ClipTextConfig::ClipVitL14() {
  ClipTextConfig p;
  p.hidden_size = 768;
  p.intermediate_size = 3072;
  p.num_layers = 12;
  p.heads = 12;
  p.projection_dim = 768;
  p.eos_token_id = kLegacyEos;
  return p;
}

ClipTextConfig ClipTextConfig::OpenClipBigG() {
  ClipTextConfig p;
  p.with_projection = true;
  p.hidden_size = 1280;
  p.intermediate_size = 5120;
  p.num_layers = 32;
  p.heads = 20;
  p.quick_gelu = false;
  p.projection_dim = 1280;
  p.eos_token_id = kLegacyEos;
  return p;
}

namespace {

// CLIPEncoderLayer: pre-norm attention and MLP, each with a residual.
Value EncoderLayer(Builder& b, const ClipTextConfig& c, Value h, const std::optional<Value>& mask,
                   const ParamOptions& p) {
  const int64_t D = c.hidden_size;
  Value n = LayerNormLayer(b, "layer_norm1", h, c.layer_norm_eps, true, p);                 // [B, T, D]
  {
    auto s = b.scope("self_attn");
    Value q = LinearLayer(b, "q_proj", n, D, true, p);                                       // [B, T, D]
    Value k = LinearLayer(b, "k_proj", n, D, true, p);                                       // [B, T, D]
    Value v = LinearLayer(b, "v_proj", n, D, true, p);                                       // [B, T, D]
    Value a = Attention(q, k, v, {.heads = c.heads, .causal = true, .key_mask = mask});      // [B, T, D]
    h = h + LinearLayer(b, "out_proj", a, D, true, p);                                       // [B, T, D]
  }
  n = LayerNormLayer(b, "layer_norm2", h, c.layer_norm_eps, true, p);                       // [B, T, D]
  {
    auto s = b.scope("mlp");
    Value f = c.quick_gelu ? QuickGelu(LinearLayer(b, "fc1", n, c.intermediate_size, true, p))
                           : LinearLayer(b, "fc1", n, c.intermediate_size, true, p, "gelu");  // [B, T, I]
    h = h + LinearLayer(b, "fc2", f, D, true, p);                                             // [B, T, D]
  }
  return h;
}

bool IsIndex(DType t) { return t == DType::i32 || t == DType::i64; }

// "N what:\n  a\n  b ..." with at most 50 names (a UNet folder given as a
// text encoder has hundreds).
std::string KeyList(const std::vector<std::string>& v, const char* what) {
  const size_t shown = std::min<size_t>(v.size(), 50);
  std::string s = absl::StrCat(v.size(), " ", what, ":\n  ",
                               absl::StrJoin(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(shown), "\n  "));
  if (shown < v.size()) absl::StrAppend(&s, "\n  ... and ", v.size() - shown, " more");
  return s;
}

}  // namespace

ClipTextOutputs ClipTextModel(Builder& b, const ClipTextConfig& c, const ClipTextInputs& in,
                              const ClipTextBuildOptions& o) {
  const auto fail = [&](const std::string& why) {
    if (b.ok()) b.Fail(absl::InvalidArgumentError(absl::StrCat(c.with_projection ? kProjected : kPlain, ": ", why)));
    return ClipTextOutputs{};
  };
  if (!in.input_ids.valid() || (in.attention_mask && !in.attention_mask->valid()) ||
      (in.pooled_index && !in.pooled_index->valid()))
    return fail("an input is an invalid Value");
  const Shape is = in.input_ids.shape();
  if (is.rank() != 2 || !IsIndex(in.input_ids.dtype()) || is[1] < 1 || is[1] > c.max_positions)
    return fail(absl::StrCat("input_ids must be [B, T] i32 or i64 with 1 <= T <= max_position_embeddings ",
                             c.max_positions, ", got ", in.input_ids.type().ToString()));
  const int64_t B = is[0], T = is[1], D = c.hidden_size;
  if (in.attention_mask && in.attention_mask->type().shape != is)
    return fail(absl::StrCat("attention_mask must be [", B, ", ", T, "], got ", in.attention_mask->type().ToString()));
  if (in.pooled_index && (in.pooled_index->type().shape != Shape({B}) || !IsIndex(in.pooled_index->dtype())))
    return fail(absl::StrCat("pooled_index must be [", B, "] i32 or i64, got ", in.pooled_index->type().ToString()));

  ParamOptions p = o.params;
  p.dtype = p.dtype.value_or(DType::f32);
  const DType dt = *p.dtype;
  ClipTextOutputs res;
  Value h;
  {
    auto s = b.scope("text_model");
    {
      auto se = b.scope("embeddings");
      Value tok, pos;
      {
        auto st = b.scope("token_embedding");
        tok = b.Parameter("weight", Shape{c.vocab_size, D}, dt, {}, p.frozen);                  // [V, D]
      }
      {
        auto sp = b.scope("position_embedding");
        pos = b.Parameter("weight", Shape{c.max_positions, D}, dt, {}, p.frozen);               // [P, D]
      }
      h = Gather(tok, in.input_ids) + Slice(pos, 0, 0, T);                                     // [B, T, D]
    }
    res.hidden_states.push_back(h);
    {
      auto se = b.scope("encoder");
      for (int64_t i = 0; i < c.num_layers; ++i) {
        auto sl = b.scope(absl::StrCat("layers.", i));
        h = EncoderLayer(b, c, h, in.attention_mask, p);                                       // [B, T, D]
        res.hidden_states.push_back(h);
      }
    }
    res.last_hidden_state = LayerNormLayer(b, "final_layer_norm", h, c.layer_norm_eps, true, p);  // [B, T, D]
  }
  if (in.pooled_index) {
    res.pooled_output = Gather(Reshape(res.last_hidden_state, {B * T, D}), *in.pooled_index);    // [B, D]
    if (c.with_projection)
      res.text_embeds = LinearLayer(b, "text_projection", res.pooled_output, c.projection_dim, false, p);  // [B, P]
  }
  if (!b.ok()) return {};
  return res;
}

StatusOr<ClipTextOutputs> BuildClipTextGraph(Builder& b, const ClipTextConfig& c, const ClipTextGraphShape& s,
                                             const ClipTextBuildOptions& o) {
  ClipTextInputs in;
  in.input_ids = b.Input("input_ids", Shape{s.batch, s.tokens}, DType::i64);
  if (s.attention_mask) in.attention_mask = b.Input("attention_mask", Shape{s.batch, s.tokens}, DType::u8);
  if (s.pooled) in.pooled_index = b.Input("pooled_index", Shape{s.batch}, DType::i64);
  ClipTextBuildOptions opts = o;
  if (!opts.params.dtype) opts.params.dtype = s.dtype;
  ClipTextOutputs out = ClipTextModel(b, c, in, opts);
  CF_RETURN_IF_ERROR(b.status());
  b.MarkOutput(out.last_hidden_state, "last_hidden_state");
  if (c.num_layers >= 1) b.MarkOutput(out.hidden_states[out.hidden_states.size() - 2], "hidden_states_penultimate");
  if (out.pooled_output.valid()) b.MarkOutput(out.pooled_output, "pooled_output");
  if (out.text_embeds.valid()) b.MarkOutput(out.text_embeds, "text_embeds");
  CF_RETURN_IF_ERROR(b.status());
  return out;
}

StatusOr<Tensor> ClipPooledIndex(const Tensor& input_ids, const ClipTextConfig& c) {
  if (input_ids.shape().rank() != 2 || input_ids.shape()[1] < 1)
    return absl::InvalidArgumentError(
        absl::StrCat("input_ids must be [B, T] with T >= 1, got ", input_ids.shape().ToString()));
  const int64_t B = input_ids.shape()[0], T = input_ids.shape()[1];
  CF_ASSIGN_OR_RETURN(std::vector<double> ids, input_ids.ToVector<double>());
  std::vector<int64_t> rows(static_cast<size_t>(B));
  for (int64_t r = 0; r < B; ++r) {
    int64_t best = 0;  // argmax and "first equal" both give the first position on ties / no match
    for (int64_t t = 0; t < T; ++t) {
      const double v = ids[static_cast<size_t>(r * T + t)];
      if (!(v >= 0 && v < static_cast<double>(c.vocab_size)) || v != std::floor(v))
        return absl::InvalidArgumentError(absl::StrCat("input_ids[", r, ", ", t, "] = ", v,
                                                       " is not a token id in [0, vocab_size ", c.vocab_size, ")"));
      if (c.eos_token_id == kLegacyEos) {
        if (v > ids[static_cast<size_t>(r * T + best)]) best = t;
      } else if (v == static_cast<double>(c.eos_token_id) &&
                 ids[static_cast<size_t>(r * T + best)] != static_cast<double>(c.eos_token_id)) {
        best = t;
      }
    }
    rows[static_cast<size_t>(r)] = r * T + best;
  }
  return Tensor::FromValues<int64_t>(rows, Shape{B});
}

StatusOr<LoadedWeights> LoadClipTextWeights(const Graph& graph, const WeightFiles& files, const std::string& scope) {
  LoadWeightsOptions lo;
  lo.prefix = scope;
  // transformers 5 writes a CLIPTextModel's keys without "text_model.".
  if (!files.contains("text_model.embeddings.token_embedding.weight") &&
      files.contains("embeddings.token_embedding.weight"))
    lo.prefix = scope + "text_model.";
  lo.allow_missing = lo.allow_unexpected = true;  // reported below, together
  CF_ASSIGN_OR_RETURN(LoadedWeights w, LoadWeights(graph, files, lo));
  // With the transformers 5 prefix, parameters outside text_model.
  // (text_projection) are not looked for by LoadWeights: name them missing.
  if (lo.prefix != scope) {
    for (int id : graph.Parameters()) {
      const ValueInfo& v = graph.value(id);
      if (v.name.compare(0, scope.size(), scope) == 0 && v.name.compare(0, lo.prefix.size(), lo.prefix) != 0)
        w.missing.push_back(absl::StrCat(v.name.substr(scope.size()), " ", v.type.ToString()));
    }
  }
  std::vector<std::string> unexpected;
  for (const std::string& u : w.unexpected) {
    const std::string key = u.substr(0, u.find(' '));
    if (key != kPositionIds && key != "embeddings.position_ids") unexpected.push_back(u);
  }
  if (!w.missing.empty() || !unexpected.empty()) {
    std::vector<std::string> parts;
    if (!w.missing.empty()) parts.push_back(KeyList(w.missing, "missing (parameters the files lack)"));
    if (!unexpected.empty()) parts.push_back(KeyList(unexpected, "unexpected (tensors no parameter takes)"));
    return absl::InvalidArgumentError(absl::StrCat(
        "CLIP text encoder weights from ", absl::StrJoin(files.files(), ", "), " (read as ",
        lo.prefix == scope ? "text_model.* keys" : "transformers 5 keys, no text_model. prefix", "): ",
        absl::StrJoin(parts, "\n")));
  }
  return w;
}

}  // namespace cf
