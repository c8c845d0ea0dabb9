// The ConvBlock module (nn/convblock.h) on the CPU, fused (one
// convblock_pyramid node) against composed (the stages from the op library),
// forward and forward + backward, at SD1.5's top level at 512x512: B = 2,
// 64x64, C = 320 (C' = 160), scales (1, 1/2), released gate, f32, K = 13 and
// 25 (docs/convblock.md). Each benchmark's label is the time per op of one
// timed run (Executor::time_nodes), so the table shows where the time goes.
//
//   build-cpu/bench/convblock_bench --benchmark_min_time=2
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "graph/autodiff.h"
#include "graph/executor.h"
#include "nn/convblock.h"
#include "ops/reduce/reduce.h"
#include "absl/strings/str_format.h"

namespace cf {
namespace {

constexpr int64_t kB = 2, kH = 64, kW = 64, kC = 320;

// A tensor of `shape` with values in [-scale, scale), deterministic.
Tensor Values(const Shape& shape, uint64_t seed, double scale) {
  std::vector<float> v(shape.numel());
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float& x : v) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    x = static_cast<float>(scale * (static_cast<double>(s >> 11) / 9007199254740992.0 * 2.0 - 1.0));
  }
  return Tensor::FromValues<float>(v, shape, DType::f32).value();
}

struct Module {
  Graph g;
  std::unique_ptr<Builder> b;
  std::unique_ptr<Executor> exec;
  Tensor x;
};

// Builds the block (and with `backward` the gradients of sum(y) for x and
// every parameter), binds random parameters.
StatusOr<std::unique_ptr<Module>> Make(int64_t K, bool fused, bool backward, bool time_nodes) {
  auto m = std::make_unique<Module>();
  m->b = std::make_unique<Builder>(&m->g);
  Builder& b = *m->b;
  Value x = b.Input("x", Shape{kB, kH, kW, kC}, DType::f32);
  Value y;
  {
    auto s = b.scope("conv1");
    y = ConvBlock(b, x, {.kernel = K, .fused = fused});
  }
  if (backward) {
    CF_ASSIGN_OR_RETURN(auto grads, Grad(b, Sum(y, {0, 1, 2, 3}), TrainableParameters(b)));
    for (size_t i = 0; i < grads.size(); ++i) b.MarkOutput(grads[i], absl::StrCat("g", i));
  } else {
    b.MarkOutput(y, "y");
  }
  CF_RETURN_IF_ERROR(b.status());
  ExecutorOptions eo;
  eo.time_nodes = time_nodes;
  CF_ASSIGN_OR_RETURN(m->exec, Executor::Create(m->g, eo));
  uint64_t seed = 1;
  for (const ValueInfo& v : m->g.values())
    if (v.kind == ValueKind::kParameter) {
      const double fan_in = v.type.shape.rank() == 3 ? double(K * K) : double(v.type.shape.dims().back());
      CF_RETURN_IF_ERROR(m->exec->SetParameter(v.name, Values(v.type.shape, seed++, 1.0 / std::sqrt(fan_in))));
    }
  m->x = Values(Shape{kB, kH, kW, kC}, 99, 1.0);
  return m;
}

// "op1 3.1 ms, op2 1.2 ms, ..." of one timed run after a warm-up run.
std::string Breakdown(int64_t K, bool fused, bool backward) {
  auto m = Make(K, fused, backward, true);
  if (!m.ok()) return std::string(m.status().message());
  for (int i = 0; i < 2; ++i)
    if (!(*m)->exec->Run({{"x", (*m)->x}}).ok()) return "run failed";
  const TimingSummary t = SummarizeTimings((*m)->exec->timings());
  std::string s;
  for (size_t i = 0; i < std::min<size_t>(t.by_op.size(), 6); ++i)
    absl::StrAppend(&s, i ? ", " : "", t.by_op[i].key, " ", absl::StrFormat("%.1f", t.by_op[i].ms));
  return s + " ms";
}

void BM_CpuConvBlock(benchmark::State& state) {
  const int64_t K = state.range(0);
  const bool fused = state.range(1) != 0, backward = state.range(2) != 0;
  auto m = Make(K, fused, backward, false);
  if (!m.ok()) {
    state.SkipWithError(std::string(m.status().message()).c_str());
    return;
  }
  for (auto _ : state) {
    auto out = (*m)->exec->Run({{"x", (*m)->x}});
    if (!out.ok()) {
      state.SkipWithError(std::string(out.status().message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(out->front().data<float>());
  }
  double flops = 0;
  for (const Node& n : (*m)->g.nodes()) flops += double(n.cost.total_flops());
  state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(absl::StrCat(fused ? "fused" : "composed", backward ? " fwd+bwd" : " fwd", " K=", K, ": ",
                              Breakdown(K, fused, backward)));
}
BENCHMARK(BM_CpuConvBlock)
    ->ArgNames({"K", "fused", "bwd"})
    ->ArgsProduct({{13, 25}, {1, 0}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace cf
