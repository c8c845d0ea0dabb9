// Executor overhead: a long chain of tiny ops (scale on 16 floats), so the
// time is the executor's per-node cost plus a kernel launch, not the math.
// Counters: nodes/s and s/node. Variants: CPU; CPU with views (reshapes that
// bind without a kernel); CUDA eager; CUDA with CUDA Graph replay.
#include <benchmark/benchmark.h>

#include "graph/executor.h"
#include "ops/elementwise/elementwise.h"
#include "ops/shape/shape.h"

namespace cf {
namespace {

constexpr int64_t kElems = 16;

// x -> scale -> scale -> ... (n nodes); with `views`, every other node is a
// reshape of the previous value (a view: bound, no kernel).
Graph Chain(int n, bool views) {
  Graph g;
  Builder b(&g);
  Value h = b.Input("x", Shape{kElems}, DType::f32);
  for (int i = 0; i < n; ++i) {
    if (views && i % 2 == 1) {
      h = Reshape(h, i % 4 == 1 ? std::vector<int64_t>{4, 4} : std::vector<int64_t>{kElems});
    } else {
      h = Scale(h, 1.0001, 0.0);
    }
  }
  // A graph output may not be a view: end with a kernel.
  b.MarkOutput(Scale(h, 1.0, 0.0), "y");
  return g;
}

void RunChain(benchmark::State& state, Device device, bool views, bool cuda_graph) {
  const int n = static_cast<int>(state.range(0));
  Graph g = Chain(n, views);
  ExecutorOptions opts;
  opts.device = device;
  opts.cuda_graph = cuda_graph;
  auto exec = Executor::Create(g, opts);
  if (!exec.ok()) {
    state.SkipWithError(std::string(exec.status().message()).c_str());
    return;
  }
  auto x = Tensor::Zeros(Shape{kElems}, DType::f32, device);
  if (!x.ok()) {
    state.SkipWithError(std::string(x.status().message()).c_str());
    return;
  }
  std::map<std::string, Tensor> inputs{{"x", *x}};
  auto warm = (*exec)->Run(inputs);  // first run: workspace, CUDA Graph capture
  if (!warm.ok()) {
    state.SkipWithError(std::string(warm.status().message()).c_str());
    return;
  }
  if (cuda_graph && !(*exec)->cuda_graph_status().ok()) {
    state.SkipWithError(std::string((*exec)->cuda_graph_status().message()).c_str());
    return;
  }
  for (auto _ : state) {
    auto out = (*exec)->Run(inputs);  // synchronises the stream before returning
    if (!out.ok()) {
      state.SkipWithError(std::string(out.status().message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(out->data());
  }
  const double nodes = n + 1;
  state.counters["nodes/s"] = benchmark::Counter(nodes, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["s/node"] =
      benchmark::Counter(nodes, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["kernels"] = (*exec)->last_run().kernels;
}

bool NeedGpu(benchmark::State& state) {
  Status s = CheckDeviceAvailable(Device::CUDA());
  if (s.ok()) return true;
  state.SkipWithError(absl::StrCat("no GPU: ", s.message()).c_str());
  return false;
}

void BM_ExecutorChainCpu(benchmark::State& state) { RunChain(state, Device::CPU(), false, false); }
void BM_ExecutorChainCpuViews(benchmark::State& state) { RunChain(state, Device::CPU(), true, false); }
void BM_ExecutorChainCuda(benchmark::State& state) {
  if (NeedGpu(state)) RunChain(state, Device::CUDA(), false, false);
}
void BM_ExecutorChainCudaGraph(benchmark::State& state) {
  if (NeedGpu(state)) RunChain(state, Device::CUDA(), false, true);
}

BENCHMARK(BM_ExecutorChainCpu)->Arg(16)->Arg(256)->Arg(1024);
BENCHMARK(BM_ExecutorChainCpuViews)->Arg(256);
BENCHMARK(BM_ExecutorChainCuda)->Arg(16)->Arg(256)->Arg(1024)->UseRealTime();
BENCHMARK(BM_ExecutorChainCudaGraph)->Arg(16)->Arg(256)->Arg(1024)->UseRealTime();

}  // namespace
}  // namespace cf
