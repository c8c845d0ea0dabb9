// CPU benchmarks of scaled dot-product attention (the CUDA ones are in
// attention_gpu_bench.cc). bench/torch/attention_cpu.py times the same module
// in PyTorch; run both back to back (docs/attention.md has the figures).
//
// - BM_CpuSd15SelfAttentionModule: SD1.5's top-level self-attention at
//   512x512 as a graph through the executor: x [2, 4096, 320], q/k/v linear
//   320 -> 320 without bias, attention 8 heads x 40, out linear with bias
//   (49.7 GFLOP of multiply-adds and bias adds).
// - BM_CpuAttention: the "attention" kernel alone (SD1.5 8 x 40 at N = 4096,
//   PixArt 16 x 72 at N = 4096, cross attention to 77 tokens), forward and
//   backward, batch 2.
// - BM_CpuLinearReference: the "linear" op at the module's projection shape,
//   the CPU GEMM's GFLOP/s to compare with.
// Counters: "GFLOP/s" = (mac_flops + bias_flops) per second (the paper's
// count); FLOP/s and bytes/s as every bench (all categories).
#include <chrono>
#include <cmath>
#include <vector>

#include "bench/support/bench_harness.h"
#include "graph/builder.h"
#include "graph/executor.h"
#include "ops/attention/attention.h"
#include "ops/attention/sdpa_cpu.h"
#include "ops/matmul/matmul.h"

namespace cf::bench {
namespace {

Tensor Filled(const Shape& s, uint32_t seed) {
  Tensor t = Tensor::Empty(s, DType::f32).value();
  float* p = t.data<float>();
  uint32_t x = seed * 2654435761u + 1u;
  for (int64_t i = 0; i < t.numel(); ++i) {
    x = x * 1664525u + 1013904223u;
    p[i] = (static_cast<float>(x >> 8) / 16777216.0f - 0.5f) * 0.2f;  // [-0.1, 0.1): weights of a 320-wide layer
  }
  return t;
}

void SetGflops(benchmark::State& state, int64_t flops, double seconds) {
  state.counters["GFLOP/s"] = benchmark::Counter(static_cast<double>(flops) * 1e-9 * state.iterations() / seconds);
}

void BM_CpuSd15SelfAttentionModule(benchmark::State& state) {
  const int64_t B = 2, N = 4096, C = 320, heads = 8;
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", {B, N, C}, DType::f32);
  auto weight = [&](const char* name, uint32_t seed) { return b.Parameter(name, {C, C}, DType::f32, Filled({C, C}, seed)); };
  Value q = Linear(x, weight("to_q", 1)), k = Linear(x, weight("to_k", 2)), v = Linear(x, weight("to_v", 3));
  Value a = Attention(q, k, v, {.heads = heads});
  Value y = Linear(a, weight("to_out", 4), b.Parameter("to_out_bias", {C}, DType::f32, Filled({C}, 5)));
  b.MarkOutput(y, "y");
  if (SkipIfError(state, b.status())) return;
  auto exec = Executor::Create(g, {});
  if (SkipIfError(state, exec.status())) return;
  const std::map<std::string, Tensor> in{{"x", Filled({B, N, C}, 6)}};
  double seconds = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    auto out = (*exec)->Run(in);
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (SkipIfError(state, out.status())) return;
  }
  // 4 projections of 2 B N C^2, the bias B N C, attention 4 B N^2 C.
  const int64_t flops = 4 * 2 * B * N * C * C + B * N * C + 4 * B * N * N * C;
  SetGflops(state, flops, seconds);
  state.SetLabel(sdpa_cpu::KernelName());
}
BENCHMARK(BM_CpuSd15SelfAttentionModule)->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();

struct Shape3 {
  int64_t heads, d, nq, nkv;
  const char* name;
};
const Shape3 kShapes[] = {{8, 40, 4096, 4096, "sd15 8x40 N4096"},
                          {16, 72, 4096, 4096, "pixart 16x72 N4096"},
                          {8, 40, 4096, 77, "sd15 cross 8x40 Nkv77"},
                          {8, 80, 1024, 1024, "sd15 8x80 N1024"},
                          {8, 160, 256, 256, "sd15 8x160 N256"}};

// args: shape index, backward (0/1), generic kernels (0/1), bf16 (0: f32).
void BM_CpuAttention(benchmark::State& state) {
  const Shape3& s = kShapes[state.range(0)];
  const bool backward = state.range(1) != 0;
  const bool prev = sdpa_cpu::ForceGeneric(state.range(2) != 0);
  const DType dt = state.range(3) != 0 ? DType::bf16 : DType::f32;
  const Shape xq{2, s.nq, s.heads * s.d}, xkv{2, s.nkv, s.heads * s.d};
  std::vector<TensorType> types{{xq, dt}, {xkv, dt}, {xkv, dt}};
  if (backward) {
    types.push_back({xq, dt});
    types.push_back({Shape{2, s.heads, s.nq}, DType::f32});
    types.push_back({xq, dt});
  }
  OpBench call(backward ? "attention_backward" : "attention", {{"heads", s.heads}}, Device::CPU());
  if (!SkipIfError(state, call.Init(types, Fill::kValues))) {
    const auto t0 = std::chrono::steady_clock::now();
    RunCpuLoop(state, call);
    SetGflops(state, call.cost().table1_flops(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    state.SetLabel(absl::StrCat(s.name, backward ? " backward " : " forward ", DTypeName(dt), " ",
                                dt == DType::bf16 && !backward ? sdpa_cpu::Bf16ForwardKernelName()
                                                               : sdpa_cpu::KernelName()));
  }
  sdpa_cpu::ForceGeneric(prev);
}
BENCHMARK(BM_CpuAttention)
    ->ArgsProduct({{0, 1, 2, 3, 4}, {0}, {0}, {0, 1}})
    ->Args({0, 1, 0, 0})
    ->Args({2, 1, 0, 0})
    ->Args({3, 0, 1, 0})
    ->ArgNames({"shape", "backward", "generic", "bf16"})->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();

// The module's projection through the CPU GEMM: [2 * 4096, 320] x [320, 320]^T.
void BM_CpuLinearReference(benchmark::State& state) {
  const int64_t tokens = 2 * 4096, c = 320;
  OpBench call("linear", {}, Device::CPU());
  if (SkipIfError(state, call.Init({{Shape{tokens, c}, DType::f32}, {Shape{c, c}, DType::f32}}, Fill::kValues))) return;
  const auto t0 = std::chrono::steady_clock::now();
  RunCpuLoop(state, call);
  SetGflops(state, call.cost().table1_flops(),
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}
BENCHMARK(BM_CpuLinearReference)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();

}  // namespace
}  // namespace cf::bench
