// Microbenchmarks of the elementwise, activation, reduction and loss ops at
// SD1.5 shapes (batch 2, 320 channels, 8 heads) for the 512x512 (64x64
// latent) and 1024x1024 (128x128) resolutions: broadcast adds and multiplies,
// SiLU and GEGLU (forward and backward), bias-gradient sum_to, spatial mean,
// cross- and self-attention softmax, and the latent MSE loss. The kernel is
// called directly (no executor); counters and timing as in
// bench/support/bench_harness.h. CPU runs use the 64x64 shapes in f32 so the
// binary takes well under a minute.
#include "bench/support/bench_harness.h"

namespace cf::bench {
namespace {

// Latent side s (64 or 128); N = s * s tokens.
std::vector<OpCase> Cases(int64_t s) {
  const int64_t n = s * s;
  const Shape act{2, s, s, 320};
  using Ints = std::vector<int64_t>;
  return {
      {"add [2,s,s,320] + same", "add", {}, {act, act}},
      {"add bias [320]", "add", {}, {act, {320}}},
      {"mul [2,1,1,320] (adaLN / time emb)", "mul", {}, {act, {2, 1, 1, 320}}},
      {"scale x*0.18215", "scale", {{"mul", 0.18215}}, {act}},
      {"cast to f32", "cast", {{"dtype", DType::f32}}, {act}},
      {"silu", "silu", {}, {act}},
      {"silu_backward", "silu_backward", {}, {act, act}},
      {"gelu tanh [2,N,1280]", "gelu", {{"approximate", std::string("tanh")}}, {{2, n, 1280}}},
      {"geglu [2,N,2560]", "geglu", {}, {{2, n, 2560}}},
      {"geglu_backward", "geglu_backward", {}, {{2, n, 2560}, {2, n, 1280}}},
      {"sum_to bias grad -> [320]", "sum_to", {{"shape", Ints{320}}}, {act}},
      {"mean over H,W", "mean", {{"axes", Ints{1, 2}}}, {act}},
      {"sum all", "sum", {}, {act}},
      {"softmax cross-attn [16N,77]", "softmax", {}, {{16 * n, 77}}},
      {"softmax self-attn one head [N,N]", "softmax", {}, {{n, n}}},
      {"softmax_backward cross-attn", "softmax_backward", {}, {{16 * n, 77}, {16 * n, 77}}},
      {"mse_loss [2,s,s,4]", "mse_loss", {}, {{2, s, s, 4}, {2, s, s, 4}}},
      {"mse_loss weighted", "mse_loss", {}, {{2, s, s, 4}, {2, s, s, 4}, {2}}},
      {"mse_loss_backward", "mse_loss_backward", {}, {{2, s, s, 4}, {2, s, s, 4}, {}}},
  };
}

[[maybe_unused]] const bool kRegistered = RegisterLatentCaseBenchmarks("Elementwise", Cases, /*cpu_min_time=*/0.1);

}  // namespace
}  // namespace cf::bench
