// CUDA microbenchmarks of the attention family at the shapes of issue 9 (the
// CPU ones are in attention_bench.cc and neighborhood_bench.cc).
// scripts/torch_baseline.py and scripts/torch_flex_na.py time the same shapes
// in PyTorch on the same card; docs/attention.md compares them.
//
// SD1.5 top level, batch 2, 8 heads x 40: N = 4096 (512x512), 16384 (1024),
// 57600 (2K = 2560x1440 -> 320x180 latent); PixArt at 1024: 16 heads x 72,
// N = 4096. Forward and backward, f16 and bf16. Neighborhood attention K = 13
// on the 128x128 latent of 1024x1024.
#include <vector>

#include "bench/support/bench_harness.h"

namespace cf::bench {
namespace {

struct AttnShape {
  int64_t heads, d, n;
};
const AttnShape kShapes[] = {{8, 40, 4096}, {8, 40, 16384}, {8, 40, 57600}, {16, 72, 4096}};

// q, k, v [2, N, heads*d] (+ out, lse [2, heads, N] f32, dout for the backward).
std::vector<TensorType> AttnTypes(const AttnShape& s, DType t, bool backward) {
  const Shape x{2, s.n, s.heads * s.d};
  std::vector<TensorType> v{{x, t}, {x, t}, {x, t}};
  if (backward) {
    v.push_back({x, t});
    v.push_back({Shape{2, s.heads, s.n}, DType::f32});
    v.push_back({x, t});
  }
  return v;
}

// args: shape index, dtype (0 f16, 1 bf16), backward (0/1).
void BM_CudaAttention(benchmark::State& state) {
  const AttnShape& s = kShapes[state.range(0)];
  const bool backward = state.range(2) != 0;
  state.SetLabel(DTypeArgName(state.range(1)));
  BenchOpCuda(state, backward ? "attention_backward" : "attention", {{"heads", s.heads}},
              AttnTypes(s, DTypeArg(state.range(1)), backward), Fill::kValues);
}
BENCHMARK(BM_CudaAttention)
    ->ArgsProduct({{0, 1, 2, 3}, {0, 1}, {0}})
    ->ArgsProduct({{0, 1, 3}, {0, 1}, {1}})  // 2K backward: too slow for gpu_check's time budget
    ->ArgNames({"shape", "dtype", "backward"})->UseManualTime()->Unit(benchmark::kMicrosecond);

// Neighborhood attention, 128x128 tokens, batch 2, 8 x 40; args: kernel, dtype, backward.
void BM_CudaNeighborhoodAttention(benchmark::State& state) {
  const DType t = DTypeArg(state.range(1));
  const bool backward = state.range(2) != 0;
  const Shape x{2, 128, 128, 320};
  std::vector<TensorType> types{{x, t}, {x, t}, {x, t}};
  if (backward) {
    types.push_back({x, t});
    types.push_back({Shape{2, 128, 128, 8}, DType::f32});
    types.push_back({x, t});
  }
  state.SetLabel(DTypeArgName(state.range(1)));
  const int64_t k = state.range(0);
  BenchOpCuda(state, backward ? "neighborhood_attention_backward" : "neighborhood_attention",
              {{"heads", int64_t{8}}, {"kernel", std::vector<int64_t>{k, k}}}, types, Fill::kValues);
}
BENCHMARK(BM_CudaNeighborhoodAttention)
    ->ArgsProduct({{13, 31}, {0, 1}, {0, 1}})
    ->ArgNames({"kernel", "dtype", "backward"})->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace cf::bench
