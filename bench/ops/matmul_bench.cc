// Microbenchmarks of "matmul" / "linear" at SD1.5 shapes (docs/cpu-gemm.md
// has the CPU numbers and their discussion).
//
// CPU: the blocked GEMM (AVX2 and portable micro-kernels) against a naive
// triple loop, at reduced token counts so the whole binary runs in well under
// a minute. CUDA: cuBLASLt through the op's kernel, timed with CUDA events
// over back-to-back launches; counters FLOP/s and bytes/s (rates from the
// node's Cost) and TFLOPS (a plain number that scripts/gpu_check.sh compares
// with cuBLAS's best).
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "graph/builder.h"
#include "ops/matmul/cpu_gemm.h"
#include "ops/matmul/matmul.h"
#include "runtime/stream.h"

#if CF_HAS_CUDA
#include <cuda_runtime.h>

#include "runtime/cuda_check.h"
#endif

namespace cf {
namespace {

// Deterministic values in [-1, 1) on the CPU, then moved to `device`.
Tensor Filled(const Shape& shape, DType dtype, uint64_t seed, Device device) {
  Tensor t = Tensor::Empty(shape, DType::f64).value();
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t i = 0; i < t.numel(); ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    t.data<double>()[i] = static_cast<double>(s >> 11) / 9007199254740992.0 * 2 - 1;
  }
  Tensor c = Tensor::Empty(shape, dtype).value();
  for (int64_t i = 0; i < t.numel(); ++i) {
    const float v = static_cast<float>(t.data<double>()[i]);
    switch (dtype) {
      case DType::f32: c.data<float>()[i] = v; break;
      case DType::f16: c.data<f16_t>()[i].bits = F32ToF16Bits(v); break;
      case DType::bf16: c.data<bf16_t>()[i].bits = F32ToBF16Bits(v); break;
      default: c.data<double>()[i] = v; break;
    }
  }
  return device.is_cpu() ? c : c.To(device).value();
}

// One op call with its inputs, outputs and kernel, run directly (no executor
// overhead), and the node's Cost from a one-node graph.
struct OpCallBench {
  OpCallBench(std::string op_, Attrs attrs_, Device device_)
      : op(std::move(op_)), attrs(std::move(attrs_)), device(device_) {}
  std::string op;
  Attrs attrs;
  Device device;
  std::vector<Tensor> ins, outs;
  const KernelFn* kernel = nullptr;
  std::unique_ptr<Stream> stream;
  std::shared_ptr<Storage> workspace;
  Cost cost;

  Status Init(const std::vector<TensorType>& types) {
    Graph g;
    Builder b(&g);
    std::vector<Value> vs;
    for (size_t i = 0; i < types.size(); ++i) vs.push_back(b.Input(absl::StrCat("x", i), types[i].shape, types[i].dtype));
    std::vector<Value> ys = b.Op(op, vs, attrs);
    CF_RETURN_IF_ERROR(b.status());
    cost = g.nodes().back().cost;
    CF_RETURN_IF_ERROR(CheckDeviceAvailable(device));
    for (size_t i = 0; i < types.size(); ++i) ins.push_back(Filled(types[i].shape, types[i].dtype, i + 1, device));
    for (const Value& y : ys) {
      CF_ASSIGN_OR_RETURN(Tensor t, Tensor::Empty(y.shape(), y.dtype(), device));
      outs.push_back(t);
    }
    kernel = OpRegistry::Global().FindKernel(op, device.kind);
    if (kernel == nullptr) return absl::UnimplementedError(absl::StrCat(op, " has no kernel on ", device.ToString()));
    CF_ASSIGN_OR_RETURN(stream, Stream::Create(device));
    return absl::OkStatus();
  }
  Status Run() {
    KernelContext ctx{op, attrs, ins, absl::MakeSpan(outs), device, stream.get(),
                      [this](int64_t bytes) -> StatusOr<void*> {
                        if (!workspace || workspace->bytes() < bytes) {
                          workspace.reset();
                          CF_ASSIGN_OR_RETURN(workspace, Storage::Allocate(device, bytes));
                        }
                        return workspace->data();
                      }};
    return (*kernel)(ctx);
  }
  void SetCounters(benchmark::State& state) const {
    const double iters = static_cast<double>(state.iterations());
    state.counters["FLOP/s"] = benchmark::Counter(static_cast<double>(cost.total_flops()) * iters,
                                                  benchmark::Counter::kIsRate);
    state.counters["bytes/s"] = benchmark::Counter(
        static_cast<double>(cost.bytes_read + cost.bytes_written) * iters, benchmark::Counter::kIsRate);
  }
};

// Linear layer: x [tokens, in] · W[out, in]ᵀ (+ bias).
std::vector<TensorType> LinearTypes(int64_t tokens, int64_t in, int64_t out, DType t, bool bias) {
  std::vector<TensorType> v{{Shape{tokens, in}, t}, {Shape{out, in}, t}};
  if (bias) v.push_back({Shape{out}, t});
  return v;
}

// ---- CPU --------------------------------------------------------------------------

// args: tokens, in, out, generic micro-kernel (0/1).
void BM_CpuLinear(benchmark::State& state) {
  const bool generic = state.range(3) != 0;
  const bool prev = gemm::ForceGenericKernel(generic);
  OpCallBench b{"linear", {}, Device::CPU()};
  Status s = b.Init(LinearTypes(state.range(0), state.range(1), state.range(2), DType::f32, true));
  if (!s.ok()) {
    state.SkipWithError(std::string(s.message()).c_str());
    gemm::ForceGenericKernel(prev);
    return;
  }
  for (auto _ : state) {
    Status r = b.Run();
    if (!r.ok()) state.SkipWithError(std::string(r.message()).c_str());
  }
  b.SetCounters(state);
  state.SetLabel(gemm::FloatKernelName());
  gemm::ForceGenericKernel(prev);
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
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * m * n * k * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// SD1.5 transformer GEMMs at 1/4 of the 64x64 latent's 4096 tokens (one image).
#define CF_CPU_SHAPES(B)                                                                      \
  B->Args({1024, 320, 320, 0})->Args({1024, 320, 2560, 0})->Args({1024, 1280, 320, 0})       \
      ->Args({1024, 320, 320, 1})->Args({1024, 320, 2560, 1})->Args({1024, 1280, 320, 1})   \
      ->Args({37, 53, 29, 0})
BENCHMARK(BM_CpuLinear)->Apply([](benchmark::internal::Benchmark* b) { CF_CPU_SHAPES(b); })
    ->ArgNames({"tokens", "in", "out", "generic"})->Unit(benchmark::kMillisecond)->MinTime(0.2)->UseRealTime();
BENCHMARK(BM_CpuNaiveGemm)->Args({1024, 320, 320})->Args({1024, 320, 2560})->Args({1024, 1280, 320})
    ->ArgNames({"m", "k", "n"})->Unit(benchmark::kMillisecond)->MinTime(0.2)->UseRealTime();

// ---- CUDA ---------------------------------------------------------------------------

#if CF_HAS_CUDA
// Times `reps` back-to-back launches with CUDA events; returns ms per launch.
StatusOr<double> TimeCuda(OpCallBench& b, int reps) {
  cudaStream_t st = static_cast<cudaStream_t>(b.stream->native());
  cudaEvent_t e0, e1;
  CF_CUDA_CHECK(cudaEventCreate(&e0));
  CF_CUDA_CHECK(cudaEventCreate(&e1));
  CF_CUDA_CHECK(cudaEventRecord(e0, st));
  for (int i = 0; i < reps; ++i) CF_RETURN_IF_ERROR(b.Run());
  CF_CUDA_CHECK(cudaEventRecord(e1, st));
  CF_CUDA_CHECK(cudaEventSynchronize(e1));
  float ms = 0;
  CF_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
  CF_CUDA_CHECK(cudaEventDestroy(e0));
  CF_CUDA_CHECK(cudaEventDestroy(e1));
  return static_cast<double>(ms) / reps;
}
#endif

// args: tokens (batch 2 folded in), in, out, dtype (0 f16, 1 bf16, 2 f32, 3 f32 with TF32), bias.
void BM_CudaLinear(benchmark::State& state) {
#if CF_HAS_CUDA
  if (CudaDeviceCount() == 0) {
    state.SkipWithError("no GPU: no CUDA device is available");
    return;
  }
  const int dt = static_cast<int>(state.range(3));
  const DType t = dt == 0 ? DType::f16 : dt == 1 ? DType::bf16 : DType::f32;
  Attrs attrs;
  if (dt == 3) attrs.Set("allow_tf32", true);
  OpCallBench b{"linear", attrs, Device::CUDA(0)};
  Status s = b.Init(LinearTypes(state.range(0), state.range(1), state.range(2), t, state.range(4) != 0));
  if (s.ok()) s = TimeCuda(b, 3).status();  // warm-up: handle, heuristic cache, workspace
  if (!s.ok()) {
    state.SkipWithError(std::string(s.message()).c_str());
    return;
  }
  double total_ms = 0;
  for (auto _ : state) {
    auto ms = TimeCuda(b, 20);
    if (!ms.ok()) {
      state.SkipWithError(std::string(ms.status().message()).c_str());
      return;
    }
    state.SetIterationTime(*ms / 1e3);
    total_ms += *ms;
  }
  b.SetCounters(state);
  const double avg_s = total_ms / 1e3 / static_cast<double>(state.iterations());
  state.counters["TFLOPS"] = static_cast<double>(b.cost.mac_flops) / avg_s / 1e12;
  state.SetLabel(dt == 0 ? "f16" : dt == 1 ? "bf16" : dt == 2 ? "f32" : "f32/tf32");
#else
  state.SkipWithError("no GPU: built without CUDA");
#endif
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
}  // namespace cf
