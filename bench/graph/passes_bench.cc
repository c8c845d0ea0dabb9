// Graph passes on a whole model: one SD1.5 UNet step (batch 2, f32, CPU,
// deterministic made-up weights, 77 text tokens) with the passes on
// (fusion, constant hoisting) and off (`--no-fuse`), in the same process so
// the two are compared under the same load. docs/passes.md has the numbers.
//   passes_bench --benchmark_filter=Sd15 [--benchmark_repetitions=3]
// Args: passes (1 on, 0 off), latent size (32: a 256x256 image; 64: 512x512).
// Counters: kernels launched per step, graph nodes, planned arena MiB.
#include <cmath>
#include <map>

#include "bench/support/bench_harness.h"
#include "graph/executor.h"
#include "nn/unet2d_condition.h"

namespace cf::bench {
namespace {

struct Model {
  Graph graph;
  std::map<std::string, Tensor> weights;
  std::map<std::string, Tensor> inputs;
};

// Values of a cheap counter hash in [-1, 1) times `scale`.
Tensor Filled(const Shape& s, uint64_t seed, double scale) {
  Tensor t = *Tensor::Empty(s, DType::f32, Device::CPU());
  float* p = t.data<float>();
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t i = 0; i < t.numel(); ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    p[i] = static_cast<float>(scale * (static_cast<double>(x >> 11) / 4503599627370496.0 - 1.0));
  }
  return t;
}

const Model* Sd15(int64_t latent) {
  static std::map<int64_t, std::unique_ptr<Model>> cache;
  auto& m = cache[latent];
  if (m) return m.get();
  m = std::make_unique<Model>();
  Builder b(&m->graph);
  if (!BuildUNet2DConditionGraph(b, UNet2DConditionConfig::StableDiffusion15(), {.height = latent, .width = latent})
           .ok())
    return nullptr;
  uint64_t seed = 1;
  for (int id : m->graph.Parameters()) {
    const ValueInfo& v = m->graph.value(id);
    const Shape& s = v.type.shape;
    const double fan_in = s.rank() >= 2 ? static_cast<double>(s.numel() / s[0]) : 4.0;
    m->weights[v.name] = Filled(s, seed++, 1.0 / std::sqrt(fan_in));
  }
  for (int id : m->graph.Inputs()) {
    const ValueInfo& v = m->graph.value(id);
    m->inputs[v.name] = Filled(v.type.shape, seed++, 1.0);
  }
  return m.get();
}

void BM_CpuSd15Step(benchmark::State& state) {
  const bool passes = state.range(0) != 0;
  const Model* m = Sd15(state.range(1));
  if (m == nullptr) {
    state.SkipWithError("the SD1.5 graph did not build");
    return;
  }
  ExecutorOptions eo;
  eo.passes = passes ? PassOptions{} : PassOptions::None();
  auto exec = Executor::Create(m->graph, eo);
  if (SkipIfError(state, exec.status())) return;
  for (const auto& [name, t] : m->weights)
    if (SkipIfError(state, (*exec)->SetParameter(name, t))) return;
  if (SkipIfError(state, (*exec)->Run(m->inputs).status())) return;  // packs the weights
  for (auto _ : state) {
    auto out = (*exec)->Run(m->inputs);
    if (SkipIfError(state, out.status())) return;
    benchmark::DoNotOptimize(out->data());
  }
  state.counters["kernels"] = (*exec)->last_run().kernels;
  state.counters["nodes"] = (*exec)->graph().num_nodes();
  state.counters["arena_MiB"] = static_cast<double>((*exec)->plan().arena_bytes) / 1048576.0;
  state.counters["hoisted"] = (*exec)->num_hoisted();
  state.SetLabel(passes ? (*exec)->pass_report().ToString() : "--no-fuse");
}
BENCHMARK(BM_CpuSd15Step)
    ->ArgNames({"passes", "latent"})
    ->Args({0, 32})
    ->Args({1, 32})
    ->Args({0, 64})
    ->Args({1, 64})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);

}  // namespace
}  // namespace cf::bench
