// What convfusion-bench measures: the models (SD1.5, SDXL, PixArt), the
// methods that replace a transformer block's self-attention, the paper's
// resolutions, and the graphs built for them (shape-only parameters, batch 2
// for classifier-free guidance). docs/results.md says how each is counted.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "graph/builder.h"
#include "graph/graph.h"
#include "nn/attention.h"
#include "nn/pixart_transformer.h"
#include "nn/unet2d_condition.h"
#include "runtime/status.h"

namespace cf::bench {

enum class Model : uint8_t { kSd15, kSdxl, kPixArt };
enum class Method : uint8_t { kSelfAttention, kNeighborhood, kConvBlock, kLinFusion, kDitFastAttn };

const char* ModelName(Model m);    // "sd15", "sdxl", "pixart" (the --model values)
const char* ModelTitle(Model m);   // "SD1.5", "SDXL", "PixArt"
const char* MethodName(Method m);  // "self_attention", "neighborhood", "convblock", "linfusion", "ditfastattn"
std::vector<Model> AllModels();
std::vector<Method> AllMethods();
std::vector<std::string> ModelNames();   // for --model
std::vector<std::string> MethodNames();  // for --method

// Method parameters (flags): NA's kernel, the ConvBlock's (0: the released
// size of each layer), DiTFastAttn's band half-width.
struct MethodOptions {
  int64_t na_kernel = 13;
  int64_t convblock_kernel = 0;
  int64_t window = 64;
};

// The nn/attention.h choice a method builds. DiTFastAttn is its residual
// window step (the band plus the cached residual), the step it saves on.
SelfAttentionChoice ChoiceFor(Method m, const MethodOptions& o);

// An image size; `label` is "512", "2K", ... or "WxH" for --resolution=WxH.
struct Resolution {
  std::string label;
  int64_t width = 0, height = 0;
};
// The paper's six sizes (docs/paper-facts.md): 512, 1024, 2K = 2560x1440,
// 4K = 4096x2160, 8K = 7680x4320, 16K = 15360x8640 (the paper's PixArt
// self-attention and DiTFastAttn 2K values are at 2048x2048: table1.h).
std::vector<Resolution> PaperResolutions(Model m);
// "512" (a paper size of `m`) or "WxH" (positive, multiples of the model's
// pixels per token). The error says what was wrong.
StatusOr<Resolution> ParseResolution(const std::string& text, Model m);
// Pixels per token along each axis at the highest-resolution attention layer
// (SD1.5 8, SDXL 16, PixArt 16) and the multiple an image size must be.
int64_t PixelsPerToken(Model m);
int64_t SizeMultiple(Model m);

// The glob of the scopes the method's module lives in (the highest-resolution
// one is Table 1's row): "*.transformer_blocks.*.attn1" or "...conv1".
std::string MixerGlob(Method m);

struct BuildSpec {
  Model model = Model::kSd15;
  Method method = Method::kSelfAttention;
  MethodOptions options;
  Resolution resolution;
  int64_t batch = 2;
  DType dtype = DType::f16;
  ParamOptions params;  // frozen etc.
};

// The denoiser's graph inputs (diffusers' names; batch and dtype of `s`):
// UNets sample, timestep, encoder_hidden_states (+ SDXL text_embeds,
// time_ids); PixArt-Sigma hidden_states, timestep, encoder_hidden_states
// (300 T5 tokens). Made once so that a teacher and a student share them.
struct DenoiserInputs {
  UNetInputs unet;
  PixArtInputs pixart;
  Value sample;  // the latent input
};
StatusOr<DenoiserInputs> DenoiserGraphInputs(Builder& b, const BuildSpec& s);
// The denoiser on `in`, in the builder's current scope; returns its output
// [B, C, H, W] (PixArt: 8 channels, eps and the variance).
StatusOr<Value> BuildDenoiserOn(Builder& b, const BuildSpec& s, const DenoiserInputs& in);
// Both, with the output marked "output".
StatusOr<Value> BuildDenoiser(Builder& b, const BuildSpec& s);

// The highest-resolution transformer block's self-attention replacement
// alone: input "x" [B, H, W, C] -> output "y", in scope
// "transformer_blocks.0.<attn1|conv1>". The shape, heads and the choice as
// resolved (a ConvBlock's released kernel and gate) come from the built
// model's sites: the top-resolution block with the largest kernel, the one
// Table 1's tie-break picks. PixArt: C 1152, 16 heads, attention biases,
// ConvBlock K 13 with the sigmoid gate.
struct ModuleInfo {
  int64_t height = 0, width = 0, channels = 0, heads = 0;
  SelfAttentionChoice choice;  // as built (kernel resolved)
};
StatusOr<ModuleInfo> BuildModule(Builder& b, const BuildSpec& s);

}  // namespace cf::bench
