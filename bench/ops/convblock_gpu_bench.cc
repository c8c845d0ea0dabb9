// CUDA benchmarks of the ConvBlock (issue 10) at the paper's Table 2 shapes:
// one block, batch 2, scales {1, 0.5}:
//   SD1.5 top level, C = 320 (C' = 160), K = 13 and 25, at 512 (64x64
//   latent), 1024 (128x128), 2K = 2560x1440 (180x320 latent) and
//   4K = 4096x2160 (270x512);
//   PixArt, C = 1152 (C' = 576), K = 13, at 512 / 1024 (64x64, 128x128 tokens).
// BM_CudaConvBlockPyramid times the fused convblock_pyramid op alone (u ->
// the concatenated gated maps; the released gate's factor is folded into
// conv_out, so the op runs the product gate with factor 1; PixArt the
// sigmoid gate); BM_CudaConvBlockModule the whole nn ConvBlock graph
// through the executor (CUDA Graph replay), forward or forward + backward
// (gradients of x and every parameter). f16 and bf16.
//
// Counters besides the harness's (FLOP/s, bytes/s, TFLOP/s, GB/s):
// floor_us, the fused op's floor on an H200 from its datasheet (4.8 TB/s
// HBM3e, 67 TFLOP/s FP32 on the CUDA cores): max(bytes read and written
// once / bandwidth, depthwise multiply-add FLOPs / FP32 rate);
// scripts/gpu_summary.py prints measured / floor and the PyTorch eager block
// of the same run (scripts/torch_baseline.py --convblock).
// Not yet run on a GPU.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/support/bench_harness.h"
#include "graph/autodiff.h"
#include "graph/executor.h"
#include "nn/convblock.h"

namespace cf::bench {
namespace {

struct BlockShape {
  const char* name;
  int64_t c, h, w;  // the block's channels C (C' = C / 2) and the latent
  bool pixart;      // sigmoid gate (PixArt) or the released product gate (SD)
};
const BlockShape kShapes[] = {
    {"sd15_512", 320, 64, 64, false},       {"sd15_1024", 320, 128, 128, false}, {"sd15_2k", 320, 180, 320, false},
    {"sd15_4k", 320, 270, 512, false},      {"pixart_512", 1152, 64, 64, true},  {"pixart_1024", 1152, 128, 128, true},
};
constexpr int64_t kBatch = 2;
constexpr double kH200Bandwidth = 4.8e12, kH200Fp32 = 67e12;

// The fused op's floor in microseconds (see the file comment).
double FloorUs(const Cost& c) {
  const double bytes = double(c.bytes_read + c.bytes_written);
  return 1e6 * std::max(bytes / kH200Bandwidth, double(c.mac_flops) / kH200Fp32);
}

// args: shape index, K, dtype (0 f16, 1 bf16).
void BM_CudaConvBlockPyramid(benchmark::State& state) {
  if (SkipWithoutGpu(state)) return;
  const BlockShape& s = kShapes[state.range(0)];
  const int64_t k = state.range(1), ci = s.c / 2;
  const DType t = DTypeArg(state.range(2));
  state.SetLabel(absl::StrCat(s.name, " ", DTypeArgName(state.range(2))));
  const Attrs attrs{{"sizes", std::vector<int64_t>{s.h, s.w, s.h / 2, s.w / 2}},
                    {"kernel", k},
                    {"gate", std::string(s.pixart ? "sigmoid" : "product")},
                    {"factor", 1.0},
                    {"has_bias", false}};
  const std::vector<TensorType> in = {{Shape{kBatch, s.h, s.w, ci}, t}, {Shape{k, k, ci}, t}, {Shape{k, k, ci}, t}};
  OpBench call("convblock_pyramid", attrs, Device::CUDA(0));
  if (SkipIfError(state, call.Init(in, Fill::kValues))) return;
  RunCudaLoop(state, call);
  state.counters["floor_us"] = FloorUs(call.cost());
}

// args: shape index, K, dtype, backward (0/1).
void BM_CudaConvBlockModule(benchmark::State& state) {
  if (SkipWithoutGpu(state)) return;
  const BlockShape& s = kShapes[state.range(0)];
  const int64_t k = state.range(1);
  const DType t = DTypeArg(state.range(2));
  const bool backward = state.range(3) != 0;
  state.SetLabel(absl::StrCat(s.name, " ", DTypeArgName(state.range(2)), backward ? " fwd+bwd" : " fwd"));
  const Shape shape{kBatch, s.h, s.w, s.c};
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", shape, t);
  Value y;
  {
    auto scope = b.scope("conv1");
    y = ConvBlock(b, x, {.kernel = k, .gate = s.pixart ? ConvBlockGate::kSigmoid : ConvBlockGate::kReleased});
  }
  if (backward) {
    std::vector<Value> wrt = TrainableParameters(b);
    wrt.insert(wrt.begin(), x);
    auto grads = Gradients(b, {y}, {b.Input("dy", shape, t)}, wrt);
    if (SkipIfError(state, grads.status())) return;
    for (size_t i = 0; i < grads->size(); ++i) b.MarkOutput((*grads)[i], "g" + std::to_string(i));
  } else {
    b.MarkOutput(y, "y");
  }
  if (SkipIfError(state, b.Finish().status())) return;
  for (int id : g.Parameters()) {  // the values do not change the time: zeros
    ValueInfo& v = g.mutable_value(id);
    auto z = Tensor::Zeros(v.type.shape, v.type.dtype);
    if (SkipIfError(state, z.status())) return;
    v.data = *z;
  }
  ExecutorOptions o;
  o.device = Device::CUDA(0);
  o.cuda_graph = true;
  auto exec = Executor::Create(g, o);
  if (SkipIfError(state, exec.status())) return;
  std::map<std::string, Tensor> inputs;
  for (const char* name : {"x", "dy"}) {
    if (!backward && std::string(name) == "dy") continue;
    auto z = Tensor::Zeros(shape, t, Device::CUDA(0));
    if (SkipIfError(state, z.status())) return;
    inputs.emplace(name, *z);
  }
  for (int i = 0; i < 3; ++i)  // the first run captures the CUDA Graph
    if (SkipIfError(state, (*exec)->Run(inputs).status())) return;
  state.counters["cuda_graph"] = (*exec)->cuda_graph_status().ok() ? 1 : 0;
  for (auto _ : state) {
    auto out = (*exec)->Run(inputs);  // synchronises before returning
    if (SkipIfError(state, out.status())) return;
  }
  Cost total;
  for (const Node& node : g.nodes()) total += node.cost;
  SetCostCounters(state, total);
}

// SD1.5 at K = 13 and 25 (shapes 0-3), PixArt at K = 13 (shapes 4, 5).
void Shapes(benchmark::internal::Benchmark* bm, const std::vector<int64_t>& extra) {
  for (int64_t dt : {0, 1}) {
    for (int64_t sh = 0; sh < 6; ++sh) {
      for (int64_t k : {13, 25}) {
        if (kShapes[sh].pixart && k != 13) continue;
        std::vector<int64_t> args = {sh, k, dt};
        args.insert(args.end(), extra.begin(), extra.end());
        bm->Args(args);
      }
    }
  }
}

BENCHMARK(BM_CudaConvBlockPyramid)
    ->Apply([](benchmark::internal::Benchmark* bm) { Shapes(bm, {}); })
    ->ArgNames({"shape", "kernel", "dtype"})->UseManualTime()->Iterations(5)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CudaConvBlockModule)
    ->Apply([](benchmark::internal::Benchmark* bm) {
      Shapes(bm, {0});
      Shapes(bm, {1});
    })
    ->ArgNames({"shape", "kernel", "dtype", "backward"})->UseRealTime()->Iterations(10)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace cf::bench
