// The CLIP text encoders of Stable Diffusion: transformers' CLIPTextModel
// (SD1.5's and SDXL's `text_encoder`, OpenAI's ViT-L/14 text tower) and
// CLIPTextModelWithProjection (SDXL's `text_encoder_2`, OpenCLIP ViT-bigG/14
// with its pooled, projected output), built from the transformers
// config.json of the component folder. docs/models.md "CLIP text encoders"
// has the structure, the outputs and the checkpoint layouts.
//
//   CF_ASSIGN_OR_RETURN(auto cfg, ClipTextConfig::Load("sdxl/text_encoder_2"));
//   Graph g;
//   Builder b(&g);
//   CF_ASSIGN_OR_RETURN(ClipTextOutputs o, BuildClipTextGraph(b, cfg, {.batch = 2, .tokens = 77}));
//   // inputs input_ids [2, 77] i64 and pooled_index [2] i64 (ClipPooledIndex);
//   // outputs last_hidden_state [2, 77, 1280], hidden_states_penultimate,
//   // pooled_output [2, 1280], text_embeds [2, 1280]
//   CF_ASSIGN_OR_RETURN(WeightFiles w, WeightFiles::Open("sdxl/text_encoder_2"));
//   CF_ASSIGN_OR_RETURN(LoadedWeights lw, LoadClipTextWeights(g, w));
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "graph/builder.h"
#include "nn/diffusers_config.h"
#include "nn/layers.h"
#include "nn/weights.h"

namespace cf {

// transformers' CLIPTextConfig (keys absent from the file take its defaults,
// as transformers does).
struct ClipTextConfig {
  bool with_projection = false;  // architectures ["CLIPTextModelWithProjection"]: text_projection
  int64_t vocab_size = 49408;
  int64_t hidden_size = 512;
  int64_t intermediate_size = 2048;
  int64_t num_layers = 12;   // num_hidden_layers
  int64_t heads = 8;         // num_attention_heads
  int64_t max_positions = 77;  // max_position_embeddings: at most this many tokens
  bool quick_gelu = true;    // hidden_act "quick_gelu" (else "gelu", the exact erf form)
  double layer_norm_eps = 1e-5;
  int64_t projection_dim = 512;  // text_projection [projection_dim, hidden_size] (with_projection only)
  // Where the pooled output is taken: 2 (the configs made before
  // transformers PR #24773, every released SD file) means argmax(input_ids),
  // the highest id (the end token of CLIP's vocabulary); any other value the
  // first position equal to it (no such position: position 0).
  int64_t eos_token_id = 49407;
  std::string note;  // unknown keys, for the caller to print

  int64_t head_dim() const { return hidden_size / heads; }
  // "CLIPTextModelWithProjection (32 layers, width 1280, 20 heads, gelu, projection 1280)".
  std::string Describe() const;

  // Errors name the file and the key: another model_type or architecture,
  // an hidden_act other than quick_gelu / gelu, sizes that do not fit
  // (hidden_size not divisible by the heads, non-positive sizes).
  static StatusOr<ClipTextConfig> FromTransformers(const DiffusersConfig& config);
  static StatusOr<ClipTextConfig> Load(const std::string& path);  // a folder or its config.json
  // The released configurations (tests/data/clip/*_config.json).
  static ClipTextConfig ClipVitL14();    // SD1.5 text_encoder, SDXL text_encoder (123,060,480 parameters)
  static ClipTextConfig OpenClipBigG();  // SDXL text_encoder_2 (694,659,840 parameters)
};

struct ClipTextInputs {
  Value input_ids;  // [B, T] i32 / i64, T <= max_positions, every id < vocab_size
  // [B, T] u8 / boolean, nonzero: the token is visible (transformers'
  // attention_mask; SD pipelines pass none). Combined with the causal mask.
  std::optional<Value> attention_mask = std::nullopt;
  // [B] i32 / i64: row b·T + p of the end token's position p
  // (ClipPooledIndex). nullopt: no pooled output and no text_embeds.
  std::optional<Value> pooled_index = std::nullopt;
};

struct ClipTextOutputs {
  Value last_hidden_state;           // [B, T, D], after final_layer_norm
  // transformers' hidden_states: [0] the embeddings, [i] the output of layer
  // i (before final_layer_norm), num_layers + 1 values [B, T, D]. SDXL's
  // pipelines condition on hidden_states[num_layers - 1] (the penultimate).
  std::vector<Value> hidden_states;
  Value pooled_output;  // [B, D] (with pooled_index)
  Value text_embeds;    // [B, projection_dim] (with_projection and pooled_index)
};

struct ClipTextBuildOptions {
  ParamOptions params;  // default dtype f32
};

// Builds the model in the builder's current scope, parameters under
// transformers' names: text_model.embeddings.token_embedding.weight [V, D],
// text_model.embeddings.position_embedding.weight [P, D],
// text_model.encoder.layers.N.{layer_norm1, self_attn.{q,k,v,out}_proj,
// layer_norm2, mlp.fc1, mlp.fc2}, text_model.final_layer_norm,
// text_projection.weight [projection_dim, D] (no bias). Errors (shapes that
// do not fit the config) are recorded in the builder.
ClipTextOutputs ClipTextModel(Builder& b, const ClipTextConfig& config, const ClipTextInputs& inputs,
                              const ClipTextBuildOptions& options = {});

// A whole graph: inputs input_ids [batch, tokens] i64, attention_mask
// [batch, tokens] u8 (with attention_mask), pooled_index [batch] i64 (with
// pooled); outputs last_hidden_state, hidden_states_penultimate (num_layers
// >= 1), pooled_output and, with the projection, text_embeds.
struct ClipTextGraphShape {
  int64_t batch = 2;  // classifier-free guidance's pair
  int64_t tokens = 77;
  bool attention_mask = false;
  bool pooled = true;
  DType dtype = DType::f32;  // parameters and activations
};
StatusOr<ClipTextOutputs> BuildClipTextGraph(Builder& b, const ClipTextConfig& config, const ClipTextGraphShape& shape,
                                             const ClipTextBuildOptions& options = {});

// The position of each row's pooled token (the rule of eos_token_id above)
// as the flat row index b·T + p: `input_ids` [B, T] (any integer or
// floating dtype holding integers) -> [B] i64. An id outside
// [0, vocab_size) is an error naming its row and column.
StatusOr<Tensor> ClipPooledIndex(const Tensor& input_ids, const ClipTextConfig& config);

// Reads the parameters of a graph built by ClipTextModel (under `scope`, ""
// or e.g. "text_encoder_2.") from a component folder in either layout: the
// released / transformers 4 keys (text_model.*, text_projection.weight) or
// transformers 5's CLIPTextModel keys (embeddings.*, encoder.*,
// final_layer_norm.*, no "text_model." prefix). The int64 buffer
// text_model.embeddings.position_ids that older files hold is skipped (and
// listed in LoadedWeights::unexpected); every other missing or unexpected
// key is an error, all of them named at once.
StatusOr<LoadedWeights> LoadClipTextWeights(const Graph& graph, const WeightFiles& files,
                                            const std::string& scope = "");

}  // namespace cf
