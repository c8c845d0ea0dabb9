// Microbenchmarks of "matmul" / "linear" at SD1.5 shapes (docs/cpu-performance.md,
// "GEMM", has the CPU numbers and their discussion; bench/torch/linear_cpu.py
// is PyTorch at the same shapes).
//
// CPU: the blocked GEMM (every micro-kernel; f32, bf16 on the VDPBF16PS
// k-pair kernel and bf16 through f32 packing) through the op (weight packed
// per call) and with the weight packed once (what the executor does for a
// parameter), against a naive triple loop. CUDA: cuBLASLt through the op's kernel. The kernel is called
// directly (no executor) on deterministic non-zero inputs; counters and
// timing as in bench/support/bench_harness.h.
#include <algorithm>
#include <string>
#include <vector>

#include "bench/support/bench_harness.h"
#include "ops/cpu_util.h"
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

// The storage argument of the CPU benches: 0 f32, 1 bf16 (the automatic
// choice: the VDPBF16PS k-pair kernel where the CPU has it), 2 bf16 with the
// k-pair kernel off (converted to f32 while packing).
DType CpuDType(int64_t v) { return v == 0 ? DType::f32 : DType::bf16; }

// Forces the kernel of args (micro-kernel index into gemm::FloatKernelNames():
// 0 the automatic choice, then the slower fallbacks; storage as above) and
// labels the benchmark; false (skipped) where the CPU has no such kernel.
bool ChooseCpuKernel(benchmark::State& state, int64_t kernel, int64_t dtype) {
  const std::vector<std::string> kernels = gemm::FloatKernelNames();
  if (kernel >= static_cast<int64_t>(kernels.size())) {
    state.SkipWithError("this CPU has no such micro-kernel");
    return false;
  }
  gemm::ForceKernel(kernel == 0 ? "auto" : kernels[kernel]);
  gemm::EnableBf16Kernel(dtype != 2);
  state.SetLabel(dtype == 0 ? gemm::FloatKernelName() : gemm::Bf16KernelName());
  return true;
}
void RestoreCpuKernel() {
  gemm::ForceKernel("auto");
  gemm::EnableBf16Kernel(true);
}

// args: tokens, in, out, micro-kernel, storage; "linear" with bias through
// its kernel (the weight packed at every call).
void BM_CpuLinear(benchmark::State& state) {
  if (!ChooseCpuKernel(state, state.range(3), state.range(4))) return;
  BenchOpCpu(state, "linear", {},
             LinearTypes(state.range(0), state.range(1), state.range(2), CpuDType(state.range(4)), true),
             Fill::kValues);
  RestoreCpuKernel();
}

// The same GEMM with the weight [out, in] packed once (the executor keeps a
// parameter's packing in the node's state): y = x·Wᵀ + bias.
template <typename T> void RunPackedLinear(benchmark::State& state, int64_t m, int64_t k, int64_t n) {
  std::vector<T> x(m * k), w(n * k), bias(n), y(m * n);
  for (size_t i = 0; i < x.size(); ++i) Store(x.data(), i, static_cast<float>(i % 7) * 0.25f - 0.75f);
  for (size_t i = 0; i < w.size(); ++i) Store(w.data(), i, static_cast<float>(i % 5) * 0.25f - 0.5f);
  for (size_t i = 0; i < bias.size(); ++i) Store(bias.data(), i, 0.5f);
  const gemm::PackedB<float> pw = gemm::PackB<T, float>(k, n, gemm::Transposed(w.data(), k));
  gemm::Epilogue<T> ep;
  ep.bias = bias.data();
  for (auto _ : state) {
    gemm::GemmPacked<T, T>(m, gemm::RowMajor(x.data(), k), pw, y.data(), n, ep);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  Cost cost;
  cost.mac_flops = 2 * m * n * k;
  cost.bias_flops = m * n;
  cost.bytes_read = static_cast<int64_t>((x.size() + w.size() + bias.size()) * sizeof(T));
  cost.bytes_written = static_cast<int64_t>(y.size() * sizeof(T));
  SetCostCounters(state, cost);
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * m * n * k * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
void BM_CpuLinearPacked(benchmark::State& state) {
  if (!ChooseCpuKernel(state, state.range(3), state.range(4))) return;
  if (state.range(4) == 0) RunPackedLinear<float>(state, state.range(0), state.range(1), state.range(2));
  else RunPackedLinear<bf16_t>(state, state.range(0), state.range(1), state.range(2));
  RestoreCpuKernel();
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
// odd tiny shape; every kernel on this CPU (0: automatic, 1: AVX2, 2:
// generic) in f32, and the automatic kernel in bf16 (both bf16 paths).
void CpuShapes(benchmark::internal::Benchmark* b) {
  for (int64_t dtype = 0; dtype < 3; ++dtype) {
    for (int kernel = 0; kernel < (dtype == 0 ? 3 : 1); ++kernel) {
      for (int64_t tokens : {8192, 1024}) {
        b->Args({tokens, 320, 320, kernel, dtype})->Args({tokens, 320, 2560, kernel, dtype});
        b->Args({tokens, 1280, 320, kernel, dtype});
      }
      b->Args({77, 768, 320, kernel, dtype})->Args({37, 53, 29, kernel, dtype});
    }
  }
}
// The SD1.5 linear shapes of bench/torch/linear_cpu.py (tokens x C -> C and
// C -> 4C, C = 320/640/1280; 64x64 and 32x32 maps at B = 1 and 2, and the
// text's 77 tokens), the automatic kernel, f32 and both bf16 paths.
void TorchShapes(benchmark::internal::Benchmark* b) {
  for (int64_t dtype = 0; dtype < 3; ++dtype)
    for (int64_t tokens : {8192, 4096, 2048, 1024, 256, 77})
      for (int64_t c : {320, 640, 1280}) b->Args({tokens, c, c, 0, dtype})->Args({tokens, c, 4 * c, 0, dtype});
  // The ConvBlock's projections at SD1.5's top level, B = 2 at 512x512:
  // conv_up C -> C' and conv_out C' -> C (docs/convblock.md).
  for (int64_t dtype = 0; dtype < 3; ++dtype) b->Args({8192, 320, 160, 0, dtype})->Args({8192, 160, 320, 0, dtype});
}
BENCHMARK(BM_CpuLinear)->Apply(CpuShapes)
    ->ArgNames({"tokens", "in", "out", "kernel", "dtype"})->Unit(benchmark::kMillisecond)->MinTime(0.2)->UseRealTime();
BENCHMARK(BM_CpuLinearPacked)->Apply(TorchShapes)
    ->ArgNames({"tokens", "in", "out", "kernel", "dtype"})->Unit(benchmark::kMillisecond)->MinTime(0.2)->UseRealTime();
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
