// Executor overhead: a long chain of tiny ops (scale on 16 floats), so the
// time is the executor's per-node cost plus a kernel launch, not the math.
// Counters: nodes/s and s/node, plus FLOP/s and bytes/s of the whole graph's
// Cost (bench/support/bench_harness.h). Variants: CPU; CPU with views
// (reshapes that bind without a kernel); CUDA eager; CUDA with CUDA Graph
// replay.
#include "bench/support/bench_harness.h"
#include "graph/executor.h"
#include "ops/elementwise/elementwise.h"
#include "ops/shape/shape.h"

namespace cf::bench {
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
  if (SkipIfError(state, exec.status())) return;
  auto x = Tensor::Zeros(Shape{kElems}, DType::f32, device);
  if (SkipIfError(state, x.status())) return;
  std::map<std::string, Tensor> inputs{{"x", *x}};
  // First run: workspace, CUDA Graph capture.
  if (SkipIfError(state, (*exec)->Run(inputs).status())) return;
  if (cuda_graph && SkipIfError(state, (*exec)->cuda_graph_status())) return;
  for (auto _ : state) {
    auto out = (*exec)->Run(inputs);  // synchronises the stream before returning
    if (SkipIfError(state, out.status())) return;
    benchmark::DoNotOptimize(out->data());
  }
  Cost total;
  for (const Node& node : g.nodes()) total += node.cost;
  SetCostCounters(state, total);
  const double nodes = n + 1;
  state.counters["nodes/s"] = benchmark::Counter(nodes, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["s/node"] =
      benchmark::Counter(nodes, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["kernels"] = (*exec)->last_run().kernels;
}

void BM_CpuExecutorChain(benchmark::State& state) { RunChain(state, Device::CPU(), false, false); }
void BM_CpuExecutorChainViews(benchmark::State& state) { RunChain(state, Device::CPU(), true, false); }
void BM_CudaExecutorChain(benchmark::State& state) {
  if (!SkipWithoutGpu(state)) RunChain(state, Device::CUDA(), false, false);
}
void BM_CudaGraphExecutorChain(benchmark::State& state) {
  if (!SkipWithoutGpu(state)) RunChain(state, Device::CUDA(), false, true);
}

BENCHMARK(BM_CpuExecutorChain)->Arg(16)->Arg(256)->Arg(1024);
BENCHMARK(BM_CpuExecutorChainViews)->Arg(256);
BENCHMARK(BM_CudaExecutorChain)->Arg(16)->Arg(256)->Arg(1024)->UseRealTime();
BENCHMARK(BM_CudaGraphExecutorChain)->Arg(16)->Arg(256)->Arg(1024)->UseRealTime();

}  // namespace
}  // namespace cf::bench
