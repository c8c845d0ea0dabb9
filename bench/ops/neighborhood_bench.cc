// Microbenchmarks of "neighborhood_attention" (forward and backward) at the
// SD1.5 top level (B = 2, 64 x 64 tokens, 8 heads x 40), beside the dense
// "attention" op on the same q, k, v when that op is registered: the issue's
// target is NA K = 13 faster than dense attention by at least the FLOP ratio
// (4096 / 169) / 3 ~ 8x. FLOP/s is the node's complete count
// (docs/ops/neighborhood_attention.md); CPU in f32, CUDA (when a kernel and a
// device exist) in f16/bf16 at 512 and 1024.
#include <vector>

#include "bench/support/bench_harness.h"
#include "ops/attention/neighborhood_cpu.h"

namespace cf::bench {
namespace {

Attrs NaAttrs(int64_t heads, int64_t k, int64_t dil) {
  return Attrs{{"heads", heads}, {"kernel", std::vector<int64_t>{k, k}}, {"dilation", std::vector<int64_t>{dil, dil}}};
}

// The forward kernel argument: 0 auto, 1 AVX-512, 2 AVX2+FMA, 3 portable.
na_cpu::Kernel KernelArg(int64_t a) {
  switch (a) {
    case 1: return na_cpu::Kernel::kAvx512;
    case 2: return na_cpu::Kernel::kAvx2;
    case 3: return na_cpu::Kernel::kGeneric;
    default: return na_cpu::Kernel::kAuto;
  }
}

// args: side (tokens per axis), heads, head dim, K, dilation, kernel (KernelArg).
void BM_CpuNeighborhoodAttention(benchmark::State& state) {
  const int64_t side = state.range(0), heads = state.range(1), d = state.range(2);
  const na_cpu::Kernel prev = na_cpu::ForceKernel(KernelArg(state.range(5)));
  state.SetLabel(na_cpu::KernelName());
  const TensorType x{Shape{2, side, side, heads * d}, DType::f32};
  BenchOpCpu(state, "neighborhood_attention", NaAttrs(heads, state.range(3), state.range(4)), {x, x, x},
             Fill::kValues);
  na_cpu::ForceKernel(prev);
}

// The same arguments (the backward has AVX2+FMA or portable loops); dq, dk,
// dv from q, k, v, out, lse, dout.
void BM_CpuNeighborhoodAttentionBackward(benchmark::State& state) {
  const int64_t side = state.range(0), heads = state.range(1), d = state.range(2);
  const na_cpu::Kernel prev = na_cpu::ForceKernel(KernelArg(state.range(5)));
  state.SetLabel(state.range(5) == 3 ? "generic" : "avx2_fma");
  const TensorType x{Shape{2, side, side, heads * d}, DType::f32}, lse{Shape{2, side, side, heads}, DType::f32};
  BenchOpCpu(state, "neighborhood_attention_backward", NaAttrs(heads, state.range(3), state.range(4)),
             {x, x, x, x, lse, x}, Fill::kValues);
  na_cpu::ForceKernel(prev);
}

// Dense self-attention on the same tokens ([B, N, heads*d]); skips when the
// "attention" op is not registered in this build.
void BM_CpuDenseAttention(benchmark::State& state) {
  const int64_t n = state.range(0) * state.range(0), heads = state.range(1), d = state.range(2);
  if (OpRegistry::Global().Find("attention") == nullptr) {
    state.SkipWithError("the \"attention\" op is not registered in this build");
    return;
  }
  const TensorType x{Shape{2, n, heads * d}, DType::f32};
  BenchOpCpu(state, "attention", Attrs{{"heads", heads}}, {x, x, x}, Fill::kValues);
}

#define CF_NA_ARGS {"side", "heads", "d", "K", "dil", "kernel"}
BENCHMARK(BM_CpuNeighborhoodAttention)
    ->Args({64, 8, 40, 13, 1, 0})
    ->Args({64, 8, 40, 13, 1, 2})
    ->Args({64, 8, 40, 13, 1, 3})
    ->Args({64, 8, 40, 7, 1, 0})
    ->Args({64, 8, 40, 7, 2, 0})
    ->Args({32, 8, 80, 13, 1, 0})
    ->Args({32, 8, 80, 13, 1, 2})
    ->ArgNames(CF_NA_ARGS)->Unit(benchmark::kMillisecond)->MinTime(0.5)->UseRealTime();
BENCHMARK(BM_CpuNeighborhoodAttentionBackward)
    ->Args({64, 8, 40, 13, 1, 0})
    ->Args({64, 8, 40, 7, 2, 0})
    ->ArgNames(CF_NA_ARGS)->Unit(benchmark::kMillisecond)->MinTime(0.5)->UseRealTime();
BENCHMARK(BM_CpuDenseAttention)->Args({64, 8, 40})->ArgNames({"side", "heads", "d"})
    ->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();

// args: side, dtype (DTypeArg: 0 f16, 1 bf16, 2 f32), backward (0/1). Skips
// without a device or a CUDA kernel.
void BM_CudaNeighborhoodAttention(benchmark::State& state) {
  const int64_t side = state.range(0);
  const DType t = DTypeArg(state.range(1));
  state.SetLabel(DTypeArgName(state.range(1)));
  const TensorType x{Shape{2, side, side, 320}, t}, lse{Shape{2, side, side, 8}, DType::f32};
  if (state.range(2) == 0) {
    BenchOpCuda(state, "neighborhood_attention", NaAttrs(8, 13, 1), {x, x, x}, Fill::kValues);
  } else {
    BenchOpCuda(state, "neighborhood_attention_backward", NaAttrs(8, 13, 1), {x, x, x, x, lse, x}, Fill::kValues);
  }
}
BENCHMARK(BM_CudaNeighborhoodAttention)
    ->ArgsProduct({{64, 128}, {0, 1}, {0, 1}})
    ->ArgNames({"side", "dtype", "backward"})->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace cf::bench
