// LinFusion (Liu et al. 2024, github Huage001/LinFusion): the module that
// replaces a transformer block's self-attention (attn1) with generalized
// linear attention. docs/linfusion-and-window.md has the definition, the
// checkpoint keys and the cost.
//
// The nn/ module pattern: a function that takes the builder (its current
// scope is the module's, e.g. "down_blocks.0.attentions.0.transformer_blocks.0.attn1"),
// the input and an options struct; it declares its parameters under their
// checkpoint names in that scope, by shape only (a loader or a test sets
// their values with Executor::SetParameter, or in the graph before the
// executor is made), and returns the output.
#pragma once

#include <cstdint>
#include <optional>

#include "graph/builder.h"

namespace cf {

struct LinFusionOptions {
  int64_t heads = 8;               // LinFusion always uses diffusers' default of 8
  int64_t mid_dim = 0;             // the MLPs' hidden width (projection_mid_dim); 0: C
  double eps = 1e-4;               // added to the normaliser z
  double norm_eps = 1e-5;          // the MLPs' LayerNorm (PyTorch's default)
  double negative_slope = 0.01;    // the MLPs' LeakyReLU (PyTorch's default)
  bool qkv_bias = false;           // to_q / to_k / to_v biases (none in SD1.5 / SDXL attn1)
  std::optional<DType> param_dtype = std::nullopt;  // default: x's dtype
  bool frozen = false;             // declare the parameters frozen (no gradients)
};

// x [B, N, C] or [B, H, W, C] (channels last) -> the same shape:
//   q = to_q(x + to_q_(x)), k = to_k(x + to_k_(x)), v = to_v(x),
//   out = to_out.0(LinearAttention(q, k, v, heads, eps)),
// with to_q_ and to_k_ each Linear(C, mid) -> LayerNorm(mid) -> LeakyReLU ->
// Linear(mid, C). Parameters (in the builder's current scope):
//   to_q.weight [C, C], to_k.weight [C, C], to_v.weight [C, C] (+ .bias [C] with qkv_bias),
//   to_out.0.weight [C, C], to_out.0.bias [C],
//   to_q_.0.weight [mid, C], to_q_.0.bias [mid], to_q_.1.weight [mid], to_q_.1.bias [mid],
//   to_q_.3.weight [C, mid], to_q_.3.bias [C], and the same under to_k_.
// Errors (rank, channels not divisible by heads) are recorded in the builder
// and the result is an invalid Value.
Value LinFusionAttention(Builder& b, Value x, const LinFusionOptions& options = {});

}  // namespace cf
