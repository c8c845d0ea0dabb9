// nn/ldm_checkpoint.h. The names are the original repositories' module
// paths (CompVis/stable-diffusion ldm/modules/diffusionmodules/openaimodel.py
// and model.py, Stability-AI/generative-models' sgm, OpenCLIP's
// TextTransformer) against diffusers'; the facts were checked against
// diffusers' own converter (loaders/single_file_utils.py: convert_ldm_unet_checkpoint,
// convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint,
// convert_open_clip_checkpoint) by tools/make_ldm_golden.py.
#include "nn/ldm_checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace cf {

namespace {

namespace fs = std::filesystem;

constexpr const char* kUnetPrefix = "model.diffusion_model.";
constexpr const char* kVaePrefixes[] = {"first_stage_model.", "vae."};
constexpr const char* kClipSd15 = "cond_stage_model.transformer.";
constexpr const char* kOpenClipSd2 = "cond_stage_model.model.";
constexpr const char* kClipSdxl = "conditioner.embedders.0.transformer.";
constexpr const char* kOpenClipSdxl = "conditioner.embedders.1.model.";
constexpr const char* kOpenClipRefiner = "conditioner.embedders.0.model.";

// How the part of a key after a rule's prefix is renamed.
enum class Kind {
  kPlain,        // the same suffix
  kExact,        // the whole key, no suffix
  kTransposed,   // the whole key, a matrix stored transposed (OpenCLIP's text_projection)
  kUnetResnet,   // openaimodel ResBlock -> ResnetBlock2D
  kVaeResnet,    // model.py ResnetBlock -> ResnetBlock2D
  kVaeAttention, // model.py AttnBlock (1x1 convs) -> Attention (linears)
  kOpenClipLayer // OpenCLIP ResidualAttentionBlock -> CLIPEncoderLayer (q/k/v packed in in_proj)
};

struct Rule {
  std::string ldm, diffusers;  // prefixes (whole keys for kExact, kTransposed)
  Kind kind;
};

using Renames = std::vector<std::pair<absl::string_view, absl::string_view>>;  // LDM suffix head -> diffusers

const Renames& RenamesOf(Kind k) {
  static const Renames none;
  static const Renames unet_resnet = {{"in_layers.0.", "norm1."},     {"in_layers.2.", "conv1."},
                                      {"out_layers.0.", "norm2."},    {"out_layers.3.", "conv2."},
                                      {"emb_layers.1.", "time_emb_proj."}, {"skip_connection.", "conv_shortcut."}};
  static const Renames vae_resnet = {{"norm1.", "norm1."}, {"conv1.", "conv1."},          {"norm2.", "norm2."},
                                     {"conv2.", "conv2."}, {"nin_shortcut.", "conv_shortcut."}};
  static const Renames vae_attention = {{"norm.", "group_norm."}, {"q.", "to_q."}, {"k.", "to_k."},
                                        {"v.", "to_v."},          {"proj_out.", "to_out.0."}};
  static const Renames open_clip = {{"ln_1.", "layer_norm1."},       {"ln_2.", "layer_norm2."},
                                    {"mlp.c_fc.", "mlp.fc1."},       {"mlp.c_proj.", "mlp.fc2."},
                                    {"attn.out_proj.", "self_attn.out_proj."}};
  switch (k) {
    case Kind::kUnetResnet: return unet_resnet;
    case Kind::kVaeResnet: return vae_resnet;
    case Kind::kVaeAttention: return vae_attention;
    case Kind::kOpenClipLayer: return open_clip;
    default: return none;
  }
}

bool WholeKey(Kind k) { return k == Kind::kExact || k == Kind::kTransposed; }

// The rule with the longest prefix that `key` starts with (on the LDM side,
// or the diffusers side with `inverse`); null when none.
const Rule* Match(const std::vector<Rule>& rules, absl::string_view key, bool inverse) {
  const Rule* best = nullptr;
  for (const Rule& r : rules) {
    const std::string& p = inverse ? r.diffusers : r.ldm;
    const bool fits = WholeKey(r.kind) ? key == p : absl::StartsWith(key, p);
    if (fits && (best == nullptr || p.size() > (inverse ? best->diffusers : best->ldm).size())) best = &r;
  }
  return best;
}

// "<head><i>." at the start of `key`: i, else -1.
int IndexAfter(absl::string_view key, absl::string_view head) {
  if (!absl::StartsWith(key, head)) return -1;
  key.remove_prefix(head.size());
  const size_t dot = key.find('.');
  int i = 0;
  if (dot == absl::string_view::npos || !absl::SimpleAtoi(key.substr(0, dot), &i) || i < 0) return -1;
  return i;
}

// Largest "<head><i>." index among `keys`, plus one (0 when none).
int CountAfter(const std::vector<std::string>& keys, absl::string_view head) {
  int n = 0;
  for (const std::string& k : keys) n = std::max(n, IndexAfter(k, head) + 1);
  return n;
}

// ---- UNet ------------------------------------------------------------------

// openaimodel's UNetModel: input_blocks.0 is conv_in, then per level
// `layers` blocks [ResBlock, SpatialTransformer?] and (but the last level) a
// Downsample (input_blocks.i.0.op); middle_block [ResBlock, SpatialTransformer,
// ResBlock]; output_blocks, per level from the deepest, layers + 1 blocks
// [ResBlock, SpatialTransformer?, Upsample (conv) on the last but the last
// level's]. SpatialTransformer's insides have diffusers' names already.
StatusOr<std::vector<Rule>> UnetRules(const std::vector<std::string>& keys, const std::string& where) {
  std::set<int> downs;
  for (const std::string& k : keys) {
    const int i = IndexAfter(k, "input_blocks.");
    if (i >= 0 && absl::StartsWith(k, absl::StrCat("input_blocks.", i, ".0.op."))) downs.insert(i);
  }
  const int inputs = CountAfter(keys, "input_blocks."), outputs = CountAfter(keys, "output_blocks.");
  const int levels = static_cast<int>(downs.size()) + 1;
  const int resnets = inputs - 1 - static_cast<int>(downs.size());
  const auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("ldm checkpoint '", where, "': cannot read the UNet's block layout (",
                                                   inputs, " input_blocks, ", downs.size(), " downsamplers, ",
                                                   outputs, " output_blocks): ", why));
  };
  if (inputs < 2) return bad("no input blocks past conv_in");
  if (resnets % levels != 0) return bad(absl::StrCat(resnets, " resnet blocks do not divide into ", levels, " levels"));
  const int layers = resnets / levels;
  if (outputs != levels * (layers + 1))
    return bad(absl::StrCat("expected ", levels * (layers + 1), " output blocks for ", levels, " levels of ", layers));
  std::vector<Rule> r = {{"time_embed.0.", "time_embedding.linear_1.", Kind::kPlain},
                         {"time_embed.2.", "time_embedding.linear_2.", Kind::kPlain},
                         {"label_emb.0.0.", "add_embedding.linear_1.", Kind::kPlain},  // SDXL's text-time MLP
                         {"label_emb.0.2.", "add_embedding.linear_2.", Kind::kPlain},
                         {"input_blocks.0.0.", "conv_in.", Kind::kPlain},
                         {"out.0.", "conv_norm_out.", Kind::kPlain},
                         {"out.2.", "conv_out.", Kind::kPlain},
                         {"middle_block.0.", "mid_block.resnets.0.", Kind::kUnetResnet},
                         {"middle_block.1.", "mid_block.attentions.0.", Kind::kPlain},
                         {"middle_block.2.", "mid_block.resnets.1.", Kind::kUnetResnet}};
  for (int b = 0; b < levels; ++b) {
    const std::string down = absl::StrCat("down_blocks.", b, ".");
    for (int j = 0; j < layers; ++j) {
      const std::string in = absl::StrCat("input_blocks.", 1 + b * (layers + 1) + j, ".");
      r.push_back({in + "0.", absl::StrCat(down, "resnets.", j, "."), Kind::kUnetResnet});
      r.push_back({in + "1.", absl::StrCat(down, "attentions.", j, "."), Kind::kPlain});
    }
    if (b + 1 < levels) {
      const int i = 1 + b * (layers + 1) + layers;
      if (!downs.count(i)) return bad(absl::StrCat("input_blocks.", i, " should be level ", b, "'s downsampler"));
      r.push_back({absl::StrCat("input_blocks.", i, ".0.op."), down + "downsamplers.0.conv.", Kind::kPlain});
    }
    const std::string up = absl::StrCat("up_blocks.", b, ".");
    for (int j = 0; j <= layers; ++j) {
      const int i = b * (layers + 1) + j;
      const std::string out = absl::StrCat("output_blocks.", i, ".");
      r.push_back({out + "0.", absl::StrCat(up, "resnets.", j, "."), Kind::kUnetResnet});
      r.push_back({out + "1.", absl::StrCat(up, "attentions.", j, "."), Kind::kPlain});
      if (j == layers && b + 1 < levels) {
        // The Upsample follows the SpatialTransformer when the level has one.
        const bool after_attention = std::any_of(keys.begin(), keys.end(), [&](const std::string& k) {
          return absl::StartsWith(k, out + "2.conv.");
        });
        r.push_back({out + (after_attention ? "2.conv." : "1.conv."), up + "upsamplers.0.conv.", Kind::kPlain});
      }
    }
  }
  return r;
}

// ---- VAE -------------------------------------------------------------------

// model.py's Encoder / Decoder: down.i.block.j, down.i.downsample.conv,
// mid.block_1 / attn_1 / block_2, norm_out; the decoder's up.i counts from
// the lowest resolution's opposite end (up.0 is the last to run, diffusers'
// up_blocks.{levels - 1}).
std::vector<Rule> VaeRules(const std::vector<std::string>& keys) {
  const int levels = std::max(CountAfter(keys, "encoder.down."), CountAfter(keys, "decoder.up."));
  int down_layers = 0, up_layers = 0;
  for (int i = 0; i < levels; ++i) {
    down_layers = std::max(down_layers, CountAfter(keys, absl::StrCat("encoder.down.", i, ".block.")));
    up_layers = std::max(up_layers, CountAfter(keys, absl::StrCat("decoder.up.", i, ".block.")));
  }
  std::vector<Rule> r = {{"quant_conv.", "quant_conv.", Kind::kPlain},
                         {"post_quant_conv.", "post_quant_conv.", Kind::kPlain}};
  for (const char* part : {"encoder.", "decoder."}) {
    const std::string p = part;
    r.push_back({p + "conv_in.", p + "conv_in.", Kind::kPlain});
    r.push_back({p + "conv_out.", p + "conv_out.", Kind::kPlain});
    r.push_back({p + "norm_out.", p + "conv_norm_out.", Kind::kPlain});
    r.push_back({p + "mid.block_1.", p + "mid_block.resnets.0.", Kind::kVaeResnet});
    r.push_back({p + "mid.block_2.", p + "mid_block.resnets.1.", Kind::kVaeResnet});
    r.push_back({p + "mid.attn_1.", p + "mid_block.attentions.0.", Kind::kVaeAttention});
  }
  for (int i = 0; i < levels; ++i) {
    for (int j = 0; j < down_layers; ++j)
      r.push_back({absl::StrCat("encoder.down.", i, ".block.", j, "."),
                   absl::StrCat("encoder.down_blocks.", i, ".resnets.", j, "."), Kind::kVaeResnet});
    r.push_back({absl::StrCat("encoder.down.", i, ".downsample.conv."),
                 absl::StrCat("encoder.down_blocks.", i, ".downsamplers.0.conv."), Kind::kPlain});
    const int d = levels - 1 - i;
    for (int j = 0; j < up_layers; ++j)
      r.push_back({absl::StrCat("decoder.up.", i, ".block.", j, "."),
                   absl::StrCat("decoder.up_blocks.", d, ".resnets.", j, "."), Kind::kVaeResnet});
    r.push_back({absl::StrCat("decoder.up.", i, ".upsample.conv."),
                 absl::StrCat("decoder.up_blocks.", d, ".upsamplers.0.conv."), Kind::kPlain});
  }
  return r;
}

// ---- text encoders ---------------------------------------------------------

// OpenCLIP's TextTransformer -> transformers' CLIPTextModelWithProjection.
std::vector<Rule> OpenClipRules(const std::vector<std::string>& keys) {
  std::vector<Rule> r = {{"token_embedding.", "text_model.embeddings.token_embedding.", Kind::kPlain},
                         {"positional_embedding", "text_model.embeddings.position_embedding.weight", Kind::kExact},
                         {"ln_final.", "text_model.final_layer_norm.", Kind::kPlain},
                         {"text_projection", "text_projection.weight", Kind::kTransposed}};
  const int layers = CountAfter(keys, "transformer.resblocks.");
  for (int i = 0; i < layers; ++i)
    r.push_back({absl::StrCat("transformer.resblocks.", i, "."), absl::StrCat("text_model.encoder.layers.", i, "."),
                 Kind::kOpenClipLayer});
  return r;
}

// OpenCLIP's packed attention input projection, split row-wise into diffusers' q, k, v.
constexpr absl::string_view kInProj[] = {"attn.in_proj_weight", "attn.in_proj_bias"};
constexpr absl::string_view kQkv[] = {"self_attn.q_proj.", "self_attn.k_proj.", "self_attn.v_proj."};

// Names no diffusers model loads: buffers.
bool Ignored(const std::string& component, absl::string_view key) {
  if (component == "text_encoder") return key == "text_model.embeddings.position_ids";
  if (component == "text_encoder_2") return key == "logit_scale";
  return false;
}

// Adds the aliases of LDM key `key` (relative to the prefix) to `out`;
// false when no rule places it.
bool MapKey(const std::vector<Rule>& rules, const std::string& key, const SafetensorsTensorInfo& info,
            const std::string& full, std::map<std::string, WeightAlias>& out) {
  const Rule* r = Match(rules, key, /*inverse=*/false);
  if (r == nullptr) return false;
  const absl::string_view suffix = absl::string_view(key).substr(r->ldm.size());
  WeightAlias a;
  a.source = full;
  switch (r->kind) {
    case Kind::kPlain:
    case Kind::kExact:
      out[absl::StrCat(r->diffusers, suffix)] = a;
      return true;
    case Kind::kTransposed:
      if (info.shape.rank() != 2) return false;
      a.transpose = true;
      out[r->diffusers] = a;
      return true;
    case Kind::kOpenClipLayer:
      for (int w = 0; w < 2; ++w) {
        if (suffix != kInProj[w]) continue;
        const int64_t rows = info.shape.rank() == 2 - w ? info.shape[0] : 0;
        if (rows == 0 || rows % 3 != 0) return false;
        for (int64_t q = 0; q < 3; ++q) {
          WeightAlias s = a;
          s.row_begin = q * rows / 3;
          s.row_end = (q + 1) * rows / 3;
          out[absl::StrCat(r->diffusers, kQkv[q], w == 0 ? "weight" : "bias")] = s;
        }
        return true;
      }
      break;
    default:
      break;
  }
  for (const auto& [from, to] : RenamesOf(r->kind)) {
    if (!absl::StartsWith(suffix, from)) continue;
    const absl::string_view rest = suffix.substr(from.size());
    // AttnBlock's q, k, v, proj_out are 1x1 convs: [C, C, 1, 1] -> the linears' [C, C].
    if (r->kind == Kind::kVaeAttention && from != "norm." && rest == "weight" && info.shape.rank() > 2 &&
        info.shape.prod(2, info.shape.rank()) == 1)
      a.reshape = Shape{info.shape[0], info.shape[1]};
    out[absl::StrCat(r->diffusers, to, rest)] = a;
    return true;
  }
  return false;
}

// The LDM key (relative) that diffusers name `name` would be read from; "" when none.
std::string Inverse(const std::vector<Rule>& rules, const std::string& name) {
  const Rule* r = Match(rules, name, /*inverse=*/true);
  if (r == nullptr) return "";
  const absl::string_view suffix = absl::string_view(name).substr(r->diffusers.size());
  if (r->kind == Kind::kPlain || WholeKey(r->kind)) return absl::StrCat(r->ldm, suffix);
  if (r->kind == Kind::kOpenClipLayer)
    for (absl::string_view q : kQkv)
      if (absl::StartsWith(suffix, q)) return absl::StrCat(r->ldm, suffix.substr(q.size()) == "weight" ? kInProj[0] : kInProj[1]);
  for (const auto& [from, to] : RenamesOf(r->kind))
    if (absl::StartsWith(suffix, to)) return absl::StrCat(r->ldm, from, suffix.substr(to.size()));
  return "";
}

bool AnyStartsWith(const std::vector<std::string>& names, absl::string_view prefix) {
  return std::any_of(names.begin(), names.end(), [&](const std::string& n) { return absl::StartsWith(n, prefix); });
}

std::string Components(const LdmCheckpointInfo& info) {
  std::vector<std::string> c;
  for (const auto& [name, prefix] : info.components) c.push_back(absl::StrCat(name, " (", prefix, "*)"));
  return c.empty() ? "none" : absl::StrJoin(c, ", ");
}

bool IsPickle(const std::string& path) {
  const std::string e = fs::path(path).extension().string();
  return e == ".ckpt" || e == ".pt" || e == ".pth" || e == ".bin";
}

Status PickleError(const std::string& path) {
  return absl::InvalidArgumentError(absl::StrCat(
      "'", path, "' is a pickle checkpoint, which is not read (it can run code when loaded); convert it to "
      ".safetensors, e.g. safetensors.torch.save_file(torch.load(path, weights_only=True)[\"state_dict\"], out)"));
}

}  // namespace

const char* LdmFamilyName(LdmFamily f) {
  switch (f) {
    case LdmFamily::kSd15: return "sd15";
    case LdmFamily::kSd2: return "sd2";
    case LdmFamily::kSdxl: return "sdxl";
    case LdmFamily::kSdxlRefiner: return "sdxl-refiner";
  }
  return "?";
}

bool LdmCheckpointInfo::has(const std::string& component) const {
  return std::any_of(components.begin(), components.end(), [&](const auto& c) { return c.first == component; });
}

bool IsLdmCheckpoint(const SafetensorsFile& file) {
  const auto& n = file.names();
  for (const char* p : {kUnetPrefix, kVaePrefixes[0], "cond_stage_model.", "conditioner.embedders."})
    if (AnyStartsWith(n, p)) return true;
  return false;
}

StatusOr<LdmCheckpointInfo> InspectLdmCheckpoint(const SafetensorsFile& file) {
  const auto& n = file.names();
  if (!IsLdmCheckpoint(file))
    return absl::InvalidArgumentError(absl::StrCat(
        "'", file.path(), "' is not a single-file Stable Diffusion checkpoint: no key starts with ", kUnetPrefix,
        ", first_stage_model., cond_stage_model. or conditioner.embedders.",
        n.empty() ? " (it holds no tensors)" : absl::StrCat(" (its first key is '", n.front(), "')")));
  LdmCheckpointInfo info;
  const bool open_clip_base = AnyStartsWith(n, kOpenClipSdxl), refiner = AnyStartsWith(n, kOpenClipRefiner);
  if (refiner) {
    info.family = LdmFamily::kSdxlRefiner;
  } else if (open_clip_base || AnyStartsWith(n, "conditioner.embedders.") ||
             AnyStartsWith(n, absl::StrCat(kUnetPrefix, "label_emb."))) {
    info.family = LdmFamily::kSdxl;
  } else if (AnyStartsWith(n, kOpenClipSd2)) {
    info.family = LdmFamily::kSd2;
  }
  if (AnyStartsWith(n, kUnetPrefix)) info.components.push_back({"unet", kUnetPrefix});
  for (const char* p : kVaePrefixes)
    if (AnyStartsWith(n, p)) {
      info.components.push_back({"vae", p});
      break;
    }
  for (const char* p : {kClipSd15, kClipSdxl, kOpenClipSd2})
    if (AnyStartsWith(n, p)) {
      info.components.push_back({"text_encoder", p});
      break;
    }
  for (const char* p : {kOpenClipSdxl, kOpenClipRefiner})
    if (AnyStartsWith(n, p)) {
      info.components.push_back({"text_encoder_2", p});
      break;
    }
  return info;
}

StatusOr<LdmComponentMap> MapLdmComponent(const SafetensorsFile& file, const std::string& component) {
  CF_ASSIGN_OR_RETURN(LdmCheckpointInfo info, InspectLdmCheckpoint(file));
  LdmComponentMap m;
  for (const auto& [name, prefix] : info.components)
    if (name == component) m.prefix = prefix;
  if (m.prefix.empty())
    return absl::NotFoundError(absl::StrCat("'", file.path(), "' (", LdmFamilyName(info.family),
                                            ") has no component '", component, "'; it holds ", Components(info)));
  if (m.prefix == kOpenClipSd2)
    return absl::UnimplementedError(absl::StrCat("'", file.path(),
                                                 "': SD2's OpenCLIP text encoder (cond_stage_model.model.*) is not "
                                                 "mapped (only SD1.5's and SDXL's text encoders are)"));
  std::vector<std::string> keys;  // relative to the prefix
  for (const std::string& k : file.names())
    if (absl::StartsWith(k, m.prefix)) keys.push_back(k.substr(m.prefix.size()));
  std::vector<Rule> rules;
  if (component == "unet") {
    CF_ASSIGN_OR_RETURN(rules, UnetRules(keys, file.path()));
  } else if (component == "vae") {
    rules = VaeRules(keys);
  } else if (component == "text_encoder") {
    rules = {{"text_model.", "text_model.", Kind::kPlain}};  // already transformers' names
  } else {
    rules = OpenClipRules(keys);
  }
  for (const std::string& k : keys) {
    if (Ignored(component, k)) continue;
    const std::string full = m.prefix + k;
    CF_ASSIGN_OR_RETURN(SafetensorsTensorInfo t, file.Info(full));
    std::map<std::string, WeightAlias> one;
    if (!MapKey(rules, k, t, full, one)) one[full].source = full;  // reported unexpected
    for (auto& [name, a] : one)
      if (!m.aliases.emplace(name, std::move(a)).second)
        return absl::InvalidArgumentError(absl::StrCat("ldm checkpoint '", file.path(), "': '", full,
                                                       "' and '", m.aliases[name].source, "' both map to '", name,
                                                       "'"));
  }
  m.source_of = [rules = std::move(rules), prefix = m.prefix](const std::string& name) {
    const std::string k = Inverse(rules, name);
    return k.empty() ? std::string() : prefix + k;
  };
  return m;
}

StatusOr<WeightFiles> OpenLdmComponent(const std::string& path, const std::string& component) {
  if (IsPickle(path)) return PickleError(path);
  CF_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(path));
  CF_ASSIGN_OR_RETURN(LdmComponentMap m, MapLdmComponent(file, component));
  CF_ASSIGN_OR_RETURN(WeightFiles w, WeightFiles::Open(path));
  return w.WithAliases(m.aliases, std::move(m.source_of));
}

StatusOr<WeightFiles> OpenComponentWeights(const std::string& path, const std::string& component) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path sub = fs::path(path) / component;
    return WeightFiles::Open(fs::is_directory(sub, ec) ? sub.string() : path);
  }
  if (IsPickle(path)) return PickleError(path);
  if (fs::path(path).extension() == ".safetensors" && fs::exists(path, ec)) {
    CF_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(path));
    if (IsLdmCheckpoint(file)) return OpenLdmComponent(path, component);
  }
  return WeightFiles::Open(path);
}

}  // namespace cf
