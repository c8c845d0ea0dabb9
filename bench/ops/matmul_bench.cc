// Microbenchmarks of "matmul" / "linear" at SD1.5 shapes (docs/cpu-gemm.md
// has the CPU numbers and their discussion).
//
// CPU: the blocked GEMM (AVX2 and portable micro-kernels) against a naive
// triple loop, at reduced token counts so the whole binary runs in well under
// a minute. CUDA: cuBLASLt through the op's kernel. The kernel is called
// directly (no executor) on deterministic non-zero inputs; counters and
// timing as in bench/support/bench_harness.h.
#include <algorithm>
#include <string>
#include <vector>

#include "bench/support/bench_harness.h"
#include "ops/matmul/cpu_gemm.h"

namespace cf::bench {
namespace {

// Linear layer: x [tokens, in] · W[out, in]ᵀ (+ bias).
std::vector<TensorType> LinearTypes(int64_t tokens, int64_t in, int64_t out, DType t, bool bias) {
  std::vector<TensorType> v{{Shape{tokens, in}, t}, {Shape{out, in}, t}};
  if (bias) v.push_back({Shape{out}, t});
  return v;
}

// ---- CPU --------------------------------------------------------------------------

// args: tokens, in, out, micro-kernel (index into gemm::FloatKernelNames():
// 0 the automatic choice, then the slower fallbacks), so one run compares them.
void BM_CpuLinear(benchmark::State& state) {
  const std::vector<std::string> kernels = gemm::FloatKernelNames();
  if (state.range(3) >= static_cast<int64_t>(kernels.size())) {
    state.SkipWithError("this CPU has no such micro-kernel");
    return;
  }
  gemm::ForceKernel(kernels[state.range(3)]);
  state.SetLabel(gemm::FloatKernelName());
  BenchOpCpu(state, "linear", {}, LinearTypes(state.range(0), state.range(1), state.range(2), DType::f32, true),
             Fill::kValues);
  gemm::ForceKernel("auto");
}

// The naive reference point: C[i, :] += A[i, k] · B[k, :] (i-k-j order, so the
// inner loop is contiguous and vectorised; no blocking, no packing), one thread.
void BM_CpuNaiveGemm(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  std::vector<float> a(m * k), bt(k * n), c(m * n);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i % 7) * 0.25f - 0.75f;
  for (size_t i = 0; i < bt.size(); ++i) bt[i] = static_cast<float>(i % 5) * 0.25f - 0.5f;
  for (auto _ : state) {
    std::fill(c.begin(), c.end(), 0.0f);
    for (int64_t i = 0; i < m; ++i) {
      float* ci = c.data() + i * n;
      for (int64_t q = 0; q < k; ++q) {
        const float aiq = a[i * k + q];
        const float* bq = bt.data() + q * n;
        for (int64_t j = 0; j < n; ++j) ci[j] += aiq * bq[j];
      }
    }
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  // What the "linear" node without bias would count.
  Cost cost;
  cost.mac_flops = 2 * m * n * k;
  cost.bytes_read = static_cast<int64_t>((a.size() + bt.size()) * sizeof(float));
  cost.bytes_written = static_cast<int64_t>(c.size() * sizeof(float));
  SetCostCounters(state, cost);
}

// SD1.5 transformer GEMMs: batch 2 at 512x512 (8192 tokens: attention
// projection, GEGLU in and out), 1/4 of one image (1024 tokens), the text
// encoder's 77 tokens into cross-attention K/V (M < MC: split over N), and an
// odd tiny shape; every kernel on this CPU (0: automatic, 1: AVX2, 2: generic).
void CpuShapes(benchmark::internal::Benchmark* b) {
  for (int kernel = 0; kernel < 3; ++kernel) {
    for (int64_t tokens : {8192, 1024}) {
      b->Args({tokens, 320, 320, kernel})->Args({tokens, 320, 2560, kernel})->Args({tokens, 1280, 320, kernel});
    }
    b->Args({77, 768, 320, kernel})->Args({37, 53, 29, kernel});
  }
}
BENCHMARK(BM_CpuLinear)->Apply(CpuShapes)
    ->ArgNames({"tokens", "in", "out", "kernel"})->Unit(benchmark::kMillisecond)->MinTime(0.2)->UseRealTime();
BENCHMARK(BM_CpuNaiveGemm)->Args({1024, 320, 320})->Args({1024, 320, 2560})->Args({1024, 1280, 320})
    ->ArgNames({"m", "k", "n"})->Unit(benchmark::kMillisecond)->MinTime(0.2)->UseRealTime();

// ---- CUDA ---------------------------------------------------------------------------

// args: tokens (batch 2 folded in), in, out, dtype (DTypeArg: 0 f16, 1 bf16, 2 f32, 3 f32 with TF32), bias.
void BM_CudaLinear(benchmark::State& state) {
  const int64_t dt = state.range(3);
  Attrs attrs;
  if (dt == 3) attrs.Set("allow_tf32", true);
  state.SetLabel(DTypeArgName(dt));
  BenchOpCuda(state, "linear", attrs,
              LinearTypes(state.range(0), state.range(1), state.range(2), DTypeArg(dt), state.range(4) != 0),
              Fill::kValues);
}

// SD1.5 at 512x512 (64x64 latent, 4096 tokens) with batch 2: GEGLU in and
// out, attention projection in every dtype; 1024x1024 (16384 tokens, batch
// 2) GEGLU; batch 1 at 512x512.
BENCHMARK(BM_CudaLinear)
    ->Args({8192, 320, 2560, 0, 1})->Args({8192, 1280, 320, 0, 1})->Args({8192, 320, 320, 0, 0})
    ->Args({8192, 320, 2560, 1, 1})->Args({8192, 320, 2560, 2, 1})->Args({8192, 320, 2560, 3, 1})
    ->Args({32768, 320, 2560, 0, 1})->Args({32768, 1280, 320, 0, 1})
    // One 512x512 image (4096 tokens), f16.
    ->Args({4096, 320, 2560, 0, 1})->Args({4096, 1280, 320, 0, 1})->Args({4096, 320, 320, 0, 0})
    ->ArgNames({"tokens", "in", "out", "dtype", "bias"})->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace cf::bench
