// Microbenchmarks of the elementwise, activation, reduction and loss ops at
// SD1.5 shapes (batch 2, 320 channels, 8 heads) for the 512x512 (64x64
// latent) and 1024x1024 (128x128) resolutions: broadcast adds and multiplies,
// SiLU and GEGLU (forward and backward), bias-gradient sum_to, spatial mean,
// cross- and self-attention softmax, and the latent MSE loss. The kernel is
// called directly (no executor); counters and timing as in
// bench/support/bench_harness.h. CPU runs use the 64x64 shapes in f32 so the
// binary takes well under a minute.
#include <cstring>

#include "absl/strings/str_cat.h"
#include "bench/support/bench_harness.h"
#include "ops/fused/fused_elementwise.h"
#include "ops/cpu_util.h"
#include "runtime/thread_pool.h"

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

// silu_backward(x + bias, dy): the conv-bias + SiLU backward the fusion pass forms (inputs x, bias, dy).
FusedProgram BiasSiluBackward() {
  FusedProgram p;
  const int x = p.Input(0), b = p.Input(1), dy = p.Input(2);
  const int xb = *p.AddOp("add", {}, {x, b});
  (void)*p.AddOp("silu_backward", {}, {xb, dy});
  return p;
}

// The CPU set that bench/torch/elementwise_cpu.py runs in PyTorch at the same
// shapes (docs/vec-math.md): args {case, dtype 2 f32 | 1 bf16}, inputs
// filled with values in [-1, 1) (zeros could take fast paths in libm).
const std::vector<OpCase>& TorchCases() {
  static const std::vector<OpCase> cases = [] {
    const Shape big{4096, 4096}, lat{2, 64, 64, 320}, tok{2, 4096, 320}, c320{320};
    const Attrs g32{{"groups", int64_t{32}}};
    using Ints = std::vector<int64_t>;
    return std::vector<OpCase>{
        {"silu [4096,4096]", "silu", {}, {big}},
        {"gelu erf [4096,4096]", "gelu", {}, {big}},
        {"gelu tanh [4096,4096]", "gelu", {{"approximate", std::string("tanh")}}, {big}},
        {"exp [4096,4096]", "exp", {}, {big}},
        {"softmax rows [4096,4096]", "softmax", {}, {big}},
        {"geglu [2,4096,2560]", "geglu", {}, {{2, 4096, 2560}}},
        {"group_norm [2,64,64,320] g32", "group_norm", g32, {lat, c320, c320}},
        {"group_norm+silu [2,64,64,320] g32", "group_norm", Attrs{{"groups", int64_t{32}}, {"activation", std::string("silu")}},
         {lat, c320, c320}},
        {"layer_norm [8192,320]", "layer_norm", {}, {{8192, 320}, c320, c320}},
        {"adaln_modulate [2,4096,1152]", "adaln_modulate", {}, {{2, 4096, 1152}, {2, 1, 1152}, {2, 1, 1152}}},
        {"add [2,4096,320] + [2,1,320]", "add", {}, {tok, {2, 1, 320}}},
        {"add [2,4096,320] + same", "add", {}, {tok, tok}},
        {"mean over H,W [2,64,64,320]", "mean", {{"axes", Ints{1, 2}}}, {lat}},
        {"sum all [2,64,64,320]", "sum", {}, {lat}},
        // The backward ops of a training step (PyTorch: torch.autograd of the forward).
        {"group_norm_backward [2,64,64,320] g32", "group_norm_backward", g32, {lat, lat, c320}},
        {"layer_norm_backward [8192,320]", "layer_norm_backward", {}, {{8192, 320}, {8192, 320}, c320}},
        {"softmax_backward [8*4096,4096]", "softmax_backward", {}, {{8 * 4096, 4096}, {8 * 4096, 4096}}},
        {"softmax_backward [8*4096,77]", "softmax_backward", {}, {{8 * 4096, 77}, {8 * 4096, 77}}},
        {"adaln_modulate_backward [2,4096,1152]", "adaln_modulate_backward", {}, {{2, 4096, 1152}, {2, 1, 1152}, {2, 4096, 1152}}},
        {"fused silu_backward(x+b, dy) [2,64,64,320]", "fused_elementwise", BiasSiluBackward().ToAttrs(), {lat, c320, lat}},
    };
  }();
  return cases;
}

void BM_CpuVsTorch(benchmark::State& state) {
  const OpCase& c = TorchCases()[state.range(0)];
  const DType dt = DTypeArg(state.range(1));
  state.SetLabel(absl::StrCat(c.name, " ", DTypeName(dt)));
  BenchOpCpu(state, c.op, c.attrs, AllOf(c.inputs, dt), Fill::kValues);
}
BENCHMARK(BM_CpuVsTorch)
    ->ArgsProduct({benchmark::CreateDenseRange(0, int(TorchCases().size()) - 1, 1), {2, 1}})
    ->UseRealTime()
    ->MinTime(0.2);

// The memory bandwidth those ops are held against: memcpy of 64 MiB split
// over the pool's threads (bytes/s counts the read and the write).
void BM_CpuMemcpyBandwidth(benchmark::State& state) {
  const int64_t n = int64_t(1) << 26;
  std::vector<char> a(n, 1), b(n, 0);
  for (auto _ : state) {
    ParallelFor(0, n, 1 << 20, [&](int64_t lo, int64_t hi) { std::memcpy(b.data() + lo, a.data() + lo, hi - lo); });
    benchmark::DoNotOptimize(b.data());
  }
  state.counters["bytes/s"] = benchmark::Counter(2.0 * double(n), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_CpuMemcpyBandwidth)->UseRealTime()->MinTime(0.5);

}  // namespace
}  // namespace cf::bench
