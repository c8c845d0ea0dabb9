// DiTFastAttn's residual window attention (Yuan et al. 2024, github
// thu-nics/DiTFastAttn) as a module-level option of a self-attention module
// with diffusers' parameter names. docs/linfusion-and-window.md says how a
// sampler drives the modes and what each step costs.
//
// Window attention is attention restricted to the band |i - j| <= window over
// the flattened token order (the "attention" op's `window` attribute). Its
// residual r = o_full - o_win, taken at the attention core (before to_out)
// at a full step, stays close to the same across neighbouring steps, so a
// later step computes only the band and adds the cached r.
//
// Follows the nn/ module pattern (nn/linfusion.h): the builder's current
// scope is the module's, parameters are declared by shape under their
// checkpoint names.
#pragma once

#include <cstdint>
#include <optional>

#include "graph/builder.h"

namespace cf {

enum class WindowAttentionMode {
  kFull,                // out = to_out(attention(q, k, v)); no residual
  kFullAndCache,        // the same out, and residual = o_full - o_win for later window steps
  kWindowWithResidual,  // out = to_out(o_win + residual), residual given in the options
};
const char* WindowAttentionModeName(WindowAttentionMode mode);  // "full", "full_and_cache", "window_with_residual"

struct WindowAttentionOptions {
  int64_t heads = 8;
  int64_t window = 64;  // band half-width w (DiTFastAttn's default [-64, 64])
  WindowAttentionMode mode = WindowAttentionMode::kFull;
  // kWindowWithResidual: the residual output of this module's last
  // kFullAndCache step, [B, N, C] (C = heads * d) of x's dtype; usually a
  // graph input the sampler binds to the tensor it kept.
  std::optional<Value> residual = std::nullopt;
  bool qkv_bias = false;  // to_q / to_k / to_v biases (SD1.5: none; PixArt: yes)
  bool out_bias = true;   // to_out.0.bias
  std::optional<DType> param_dtype = std::nullopt;  // default: x's dtype
  bool frozen = false;
};

struct WindowAttentionOutputs {
  Value out;       // x's shape
  Value residual;  // kFullAndCache: [B, N, C], o_full - o_win; otherwise invalid
};

// x [B, N, C] or [B, H, W, C] (tokens flattened row-major for the band).
// Parameters (in the builder's current scope): to_q.weight, to_k.weight,
// to_v.weight [C, C] (+ .bias [C] with qkv_bias), to_out.0.weight [C, C],
// to_out.0.bias [C] (with out_bias). Errors (bad rank, window < 0, a missing
// or ill-shaped residual for kWindowWithResidual, a residual given to another
// mode) are recorded in the builder; the outputs are then invalid.
WindowAttentionOutputs WindowAttention(Builder& b, Value x, const WindowAttentionOptions& options = {});

}  // namespace cf
