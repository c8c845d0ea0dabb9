// nn/attention.h.
#include "nn/attention.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "ops/attention/attention.h"
#include "ops/shape/shape.h"

namespace cf {

Value AttentionModule(Builder& b, Value x, std::optional<Value> context, const AttentionModuleOptions& o) {
  if (!x.valid() || (context && !context->valid())) return Value{};
  const Shape xs = x.shape();  // a copy: building ops may grow the graph
  if (!Check(b, xs.rank() == 3 || xs.rank() == 4,
             absl::InvalidArgumentError(absl::StrCat("Attention: x must be [B, N, C] or [B, H, W, C], got ",
                                                     x.type().ToString()))))
    return Value{};
  const int64_t B = xs[0], N = xs.prod(1, xs.rank() - 1), C = xs.dim(-1), inner = o.heads * o.head_dim;
  Value h = xs.rank() == 4 ? Reshape(x, {B, N, C}) : x;                           // [B, N, C]
  Value kv = context ? *context : h;                                              // [B, T, D]
  Value q = LinearLayer(b, "to_q", h, inner, o.qkv_bias, o.params);             // [B, N, inner]
  Value k = LinearLayer(b, "to_k", kv, inner, o.qkv_bias, o.params);            // [B, T, inner]
  Value v = LinearLayer(b, "to_v", kv, inner, o.qkv_bias, o.params);            // [B, T, inner]
  Value a = Attention(q, k, v, {.heads = o.heads, .key_mask = o.key_mask});       // [B, N, inner]
  if (xs.rank() == 4) a = Reshape(a, {B, xs[1], xs[2], inner});                   // a view, before to_out
  return LinearLayer(b, "to_out.0", a, C, o.out_bias, o.params);                 // x's shape
}

const char* SelfAttentionKindName(SelfAttentionKind kind) {
  switch (kind) {
    case SelfAttentionKind::kSelfAttention: return "self";
    case SelfAttentionKind::kNeighborhood: return "na";
    case SelfAttentionKind::kConvBlock: return "convblock";
    case SelfAttentionKind::kLinFusion: return "linfusion";
    case SelfAttentionKind::kWindow: return "window";
  }
  return "?";
}

std::string SelfAttentionChoice::ToString() const {
  switch (kind) {
    case SelfAttentionKind::kSelfAttention:
    case SelfAttentionKind::kLinFusion: return SelfAttentionKindName(kind);
    case SelfAttentionKind::kNeighborhood:
      return dilation == 1 ? absl::StrCat("na:", kernel) : absl::StrCat("na:", kernel, ":", dilation);
    case SelfAttentionKind::kConvBlock:
      if (kernel == 0 && gate == ConvBlockGate::kReleased) return "convblock";
      return gate == ConvBlockGate::kReleased ? absl::StrCat("convblock:", kernel)
                                              : absl::StrCat("convblock:", kernel, ":", ConvBlockGateName(gate));
    case SelfAttentionKind::kWindow:
      return window_mode == WindowAttentionMode::kWindowWithResidual
                 ? absl::StrCat("window:", window)
                 : absl::StrCat("window:", window, ":", WindowAttentionModeName(window_mode));
  }
  return "?";
}

StatusOr<SelfAttentionChoice> ParseSelfAttentionChoice(const std::string& text) {
  const std::vector<std::string> parts = absl::StrSplit(text, ':');
  const auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "self-attention choice '", text, "': ", why,
        " (self, na:K[:dilation], convblock[:K[:gate]], linfusion, window:W[:mode])"));
  };
  const auto number = [&](size_t i, int64_t* out) {
    return i < parts.size() && absl::SimpleAtoi(parts[i], out) && *out >= 0;
  };
  SelfAttentionChoice c;
  const std::string& kind = parts[0];
  if (kind == "self" || kind == "linfusion") {
    if (parts.size() != 1) return bad("takes no arguments");
    c.kind = kind == "self" ? SelfAttentionKind::kSelfAttention : SelfAttentionKind::kLinFusion;
  } else if (kind == "na") {
    c.kind = SelfAttentionKind::kNeighborhood;
    if (parts.size() < 2 || parts.size() > 3 || !number(1, &c.kernel) || c.kernel % 2 == 0 || c.kernel < 3)
      return bad("na needs an odd kernel >= 3");
    if (parts.size() == 3 && (!number(2, &c.dilation) || c.dilation < 1)) return bad("dilation must be >= 1");
  } else if (kind == "convblock") {
    c.kind = SelfAttentionKind::kConvBlock;
    if (parts.size() > 3) return bad("too many arguments");
    if (parts.size() >= 2 && (!number(1, &c.kernel) || (c.kernel != 0 && c.kernel % 2 == 0)))
      return bad("the ConvBlock kernel must be odd (or 0: the released size)");
    if (parts.size() == 3) {
      auto g = ParseConvBlockGate(parts[2]);
      if (!g.ok()) return bad(std::string(g.status().message()));
      c.gate = *g;
    }
  } else if (kind == "window") {
    c.kind = SelfAttentionKind::kWindow;
    if (parts.size() < 2 || parts.size() > 3 || !number(1, &c.window)) return bad("window needs a half-width >= 0");
    if (parts.size() == 3) {
      bool found = false;
      for (WindowAttentionMode m : {WindowAttentionMode::kFull, WindowAttentionMode::kFullAndCache,
                                    WindowAttentionMode::kWindowWithResidual})
        if (parts[2] == WindowAttentionModeName(m)) c.window_mode = m, found = true;
      if (!found) return bad("unknown window mode (full, full_and_cache, window_with_residual)");
    }
  } else {
    return bad("unknown kind");
  }
  return c;
}

StatusOr<SelfAttentionChoices> ParseSelfAttentionChoices(const std::string& text) {
  SelfAttentionChoices out;
  const std::vector<std::string> items = absl::StrSplit(text, ',');
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string& item = items[i];
    const size_t eq = item.find('=');
    if (eq == std::string::npos && i > 0)
      return absl::InvalidArgumentError(absl::StrCat("'", text, "': '", item,
                                                     "' is not SCOPE=CHOICE (only the first item is the default)"));
    if (eq != std::string::npos && (eq == 0 || item.front() == '.' || item[eq - 1] == '.'))
      return absl::InvalidArgumentError(
          absl::StrCat("'", text, "': '", item, "' needs a scope before '=' (e.g. down_blocks.0=na:13)"));
    StatusOr<SelfAttentionChoice> c =
        ParseSelfAttentionChoice(eq == std::string::npos ? item : item.substr(eq + 1));
    if (!c.ok()) return c.status();
    if (eq == std::string::npos) {
      out.all = *c;
    } else {
      out.overrides.push_back({item.substr(0, eq), *c});
    }
  }
  return out;
}

std::optional<SelfAttentionChoice> SelfAttentionChoices::For(const std::string& scope,
                                                             std::vector<int>* matched) const {
  std::optional<SelfAttentionChoice> r;
  for (size_t i = 0; i < overrides.size(); ++i) {
    const std::string& s = overrides[i].first;
    if (scope.rfind(s, 0) != 0 || (scope.size() != s.size() && scope[s.size()] != '.')) continue;
    r = overrides[i].second;
    if (matched) ++(*matched)[i];
  }
  return r;
}

std::string SelfAttentionChoices::ToString() const {
  std::string s = all.ToString();
  for (const auto& [scope, c] : overrides) absl::StrAppend(&s, ",", scope, "=", c.ToString());
  return s;
}

Value SelfAttentionLayer(Builder& b, Value x, const SelfAttentionChoice& c, int64_t heads, const ParamOptions& p,
                         bool qkv_bias) {
  if (!x.valid()) return Value{};
  const Shape xs = x.shape();
  if (!Check(b, xs.rank() == 4,
             absl::InvalidArgumentError(absl::StrCat("self-attention (", c.ToString(),
                                                     "): x must be [B, H, W, C], got ", x.type().ToString()))))
    return Value{};
  const int64_t B = xs[0], H = xs[1], W = xs[2], C = xs[3];
  switch (c.kind) {
    case SelfAttentionKind::kSelfAttention: {
      auto s = b.scope("attn1");
      return AttentionModule(b, x, std::nullopt,
                             {.heads = heads, .head_dim = C / heads, .qkv_bias = qkv_bias, .params = p});
    }
    case SelfAttentionKind::kNeighborhood: {
      auto s = b.scope("attn1");
      const int64_t span = c.kernel * c.dilation;
      if (span > H || span > W)  // the window covers the map: full attention, as NA would give for K >= H, W
        return AttentionModule(b, x, std::nullopt,
                               {.heads = heads, .head_dim = C / heads, .qkv_bias = qkv_bias, .params = p});
      Value q = LinearLayer(b, "to_q", x, C, qkv_bias, p);                    // [B, H, W, C]
      Value k = LinearLayer(b, "to_k", x, C, qkv_bias, p);                    // [B, H, W, C]
      Value v = LinearLayer(b, "to_v", x, C, qkv_bias, p);                    // [B, H, W, C]
      Value a = NeighborhoodAttention(q, k, v, {.heads = heads, .kernel = c.kernel, .dilation = c.dilation});
      return LinearLayer(b, "to_out.0", a, C, true, p);                      // [B, H, W, C]
    }
    case SelfAttentionKind::kConvBlock: {
      auto s = b.scope("conv1");
      ConvBlockOptions o;
      o.kernel = c.kernel == 0 ? o.kernel : c.kernel;
      o.gate = c.gate;
      o.param_dtype = p.dtype;
      o.frozen = p.frozen;
      return ConvBlock(b, x, o);                                               // [B, H, W, C]
    }
    case SelfAttentionKind::kLinFusion: {
      auto s = b.scope("attn1");
      LinFusionOptions o;
      o.qkv_bias = qkv_bias;
      o.param_dtype = p.dtype;
      o.frozen = p.frozen;
      return LinFusionAttention(b, x, o);                                      // [B, H, W, C]
    }
    case SelfAttentionKind::kWindow: {
      auto s = b.scope("attn1");
      WindowAttentionOptions o;
      o.heads = heads;
      o.window = c.window;
      o.mode = c.window_mode;
      o.qkv_bias = qkv_bias;
      o.param_dtype = p.dtype;
      o.frozen = p.frozen;
      if (c.window_mode == WindowAttentionMode::kWindowWithResidual)
        o.residual = b.Input(b.Qualified("residual"), Shape{B, H * W, C}, x.dtype());
      WindowAttentionOutputs r = WindowAttention(b, x, o);
      if (c.window_mode == WindowAttentionMode::kFullAndCache && r.residual.valid())
        b.MarkOutput(r.residual, b.Qualified("residual"));
      return r.out;                                                            // [B, H, W, C]
    }
  }
  return Value{};
}

}  // namespace cf
