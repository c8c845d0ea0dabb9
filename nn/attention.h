// diffusers' Attention module (self and cross) and the per-layer choice of
// what replaces a transformer block's self-attention (attn1): self-attention,
// neighborhood attention, the ConvBlock, LinFusion or DiTFastAttn's window
// attention. The rest of the block does not change (docs/models.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "graph/builder.h"
#include "nn/convblock.h"
#include "nn/layers.h"
#include "nn/linfusion.h"
#include "nn/window_attention.h"

namespace cf {

// diffusers.models.attention_processor.Attention with the default processor
// (no norms, no added kv, no residual connection inside, scale d^-1/2).
struct AttentionModuleOptions {
  int64_t heads = 8;
  int64_t head_dim = 40;  // inner = heads * head_dim
  bool qkv_bias = false;  // diffusers' `bias` (SD1.5 / SDXL: false; PixArt: true)
  bool out_bias = true;
  ParamOptions params;
  std::optional<Value> key_mask = std::nullopt;  // [B, T] (nonzero: visible), cross-attention padding
};
// x [B, N, C] or [B, H, W, C] (the query side), context [B, T, D] for
// cross-attention (nullopt: self-attention over x) -> x's shape with
// C = query_dim. In the builder's current scope (the module's, e.g.
// "...transformer_blocks.0.attn2"): to_q.weight [inner, C], to_k.weight /
// to_v.weight [inner, D], to_out.0.weight [C, inner], to_out.0.bias [C].
Value AttentionModule(Builder& b, Value x, std::optional<Value> context, const AttentionModuleOptions& options);

// What replaces attn1. Parse / print: "self", "na:K" or "na:K:dilation",
// "convblock" (K from the model's released sizes or the config), "convblock:K",
// "convblock:K:gate" (gate paper | released | sigmoid), "linfusion",
// "window:W" (the window step: band W plus the cached residual; "window:W:full"
// and "window:W:full_and_cache" for the other steps).
enum class SelfAttentionKind : uint8_t { kSelfAttention, kNeighborhood, kConvBlock, kLinFusion, kWindow };
const char* SelfAttentionKindName(SelfAttentionKind kind);  // "self", "na", "convblock", "linfusion", "window"

struct SelfAttentionChoice {
  SelfAttentionKind kind = SelfAttentionKind::kSelfAttention;
  // kNeighborhood: K (odd) and dilation; kConvBlock: K, 0 = the layer's
  // released size (the model builder fills it in).
  int64_t kernel = 0;
  int64_t dilation = 1;
  ConvBlockGate gate = ConvBlockGate::kReleased;  // kConvBlock
  int64_t window = 64;                            // kWindow: band half-width
  // kWindow: the cheap step (the band plus the cached residual) by default;
  // full_and_cache is the step that computes the residual.
  WindowAttentionMode window_mode = WindowAttentionMode::kWindowWithResidual;
  std::string ToString() const;
};
StatusOr<SelfAttentionChoice> ParseSelfAttentionChoice(const std::string& text);

// A default choice plus per-layer overrides, as text:
// "convblock,down_blocks.0=na:13,transformer_blocks.3=self". An override
// SCOPE=CHOICE applies to the blocks whose scope (a UNetAttentionSite's or
// PixArtAttentionSite's, e.g. "down_blocks.1.attentions.0.transformer_blocks.0")
// is SCOPE or lies under it (SCOPE.*); where several match, the last one
// wins. The default, if given, comes first (else "self").
struct SelfAttentionChoices {
  SelfAttentionChoice all;
  std::vector<std::pair<std::string, SelfAttentionChoice>> overrides;
  // The override for `scope` (nullopt: `all` applies); `*matched`, when
  // given (sized like `overrides`), counts the scopes each override matched.
  std::optional<SelfAttentionChoice> For(const std::string& scope, std::vector<int>* matched = nullptr) const;
  std::string ToString() const;
};
StatusOr<SelfAttentionChoices> ParseSelfAttentionChoices(const std::string& text);

// The replacement of attn1 for one block: x [B, H, W, C] (norm1's output) ->
// [B, H, W, C], to be added to the residual. Opens the scope the checkpoints
// use: "attn1" for self-attention (to_q / to_k / to_v / to_out.0),
// neighborhood attention (the same projections, the NATTEN core),
// LinFusion (its extra to_q_ / to_k_ MLPs) and window attention; "conv1" for
// the ConvBlock (the authors' key). `heads` is the block's head count
// (LinFusion always uses 8, as released). `qkv_bias`: biases on to_q / to_k /
// to_v (PixArt's attention_bias; none in SD1.5 / SDXL).
//
// Neighborhood attention where the map is not larger than the window
// (K·dilation > H or > W) attends every key instead (NA with K >= H, W is
// exactly full attention; NATTEN refuses a kernel larger than the map).
// Window attention in mode window_with_residual reads the graph input
// "<scope>.residual" [B, H·W, C] that it declares; full_and_cache marks the
// output "<scope>.residual" (scope: this module's).
Value SelfAttentionLayer(Builder& b, Value x, const SelfAttentionChoice& choice, int64_t heads,
                         const ParamOptions& params = {}, bool qkv_bias = false);

}  // namespace cf
