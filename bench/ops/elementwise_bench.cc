// Microbenchmarks of the elementwise, activation, reduction and loss ops at
// SD1.5 shapes (batch 2, 320 channels, 8 heads) for the 512x512 (64x64
// latent) and 1024x1024 (128x128) resolutions: broadcast adds and multiplies,
// SiLU and GEGLU (forward and backward), bias-gradient sum_to, spatial mean,
// cross- and self-attention softmax, and the latent MSE loss.
// Counters: bytes/s and FLOP/s (rates from the node's Cost, total_flops),
// and GB/s (a plain number). CPU runs use the 64x64 shapes in f32 so the
// binary takes well under a minute; CUDA runs time back-to-back launches with
// CUDA events.
#include <benchmark/benchmark.h>

#include <chrono>
#include <string>
#include <vector>

#include "graph/builder.h"
#include "runtime/stream.h"

#if CF_HAS_CUDA
#include <cuda_runtime.h>

#include "runtime/cuda_check.h"
#endif

namespace cf {
namespace {

struct BenchCase {
  const char* name;
  std::string op;
  Attrs attrs;
  std::vector<Shape> inputs;
};

// Latent side s (64 or 128); N = s * s tokens.
std::vector<BenchCase> Cases(int64_t s) {
  const int64_t n = s * s;
  const Shape act{2, s, s, 320};
  using Ints = std::vector<int64_t>;
  return {
      {"add [2,s,s,320] + same", "add", {}, {act, act}},
      {"add bias [320]", "add", {}, {act, {320}}},
      {"mul [2,1,1,320] (adaLN / time emb)", "mul", {}, {act, {2, 1, 1, 320}}},
      {"scale x*0.18215", "scale", {{"mul", 0.18215}}, {act}},
      {"cast to f32", "cast", {{"dtype", DType::f32}}, {act}},
      {"silu", "silu", {}, {act}},
      {"silu_backward", "silu_backward", {}, {act, act}},
      {"gelu tanh [2,N,1280]", "gelu", {{"approximate", std::string("tanh")}}, {{2, n, 1280}}},
      {"geglu [2,N,2560]", "geglu", {}, {{2, n, 2560}}},
      {"geglu_backward", "geglu_backward", {}, {{2, n, 2560}, {2, n, 1280}}},
      {"sum_to bias grad -> [320]", "sum_to", {{"shape", Ints{320}}}, {act}},
      {"mean over H,W", "mean", {{"axes", Ints{1, 2}}}, {act}},
      {"sum all", "sum", {}, {act}},
      {"softmax cross-attn [16N,77]", "softmax", {}, {{16 * n, 77}}},
      {"softmax self-attn one head [N,N]", "softmax", {}, {{n, n}}},
      {"softmax_backward cross-attn", "softmax_backward", {}, {{16 * n, 77}, {16 * n, 77}}},
      {"mse_loss [2,s,s,4]", "mse_loss", {}, {{2, s, s, 4}, {2, s, s, 4}}},
      {"mse_loss weighted", "mse_loss", {}, {{2, s, s, 4}, {2, s, s, 4}, {2}}},
      {"mse_loss_backward", "mse_loss_backward", {}, {{2, s, s, 4}, {2, s, s, 4}, {}}},
  };
}
constexpr int kNumCases = 19;

DType DTypeArg(int64_t v) { return v == 0 ? DType::f16 : v == 1 ? DType::bf16 : DType::f32; }

// One op call with its tensors and kernel, run directly (no executor), and the
// node's Cost from a one-node graph.
struct Call {
  Call(BenchCase c_, Device device_) : c(std::move(c_)), device(device_) {}
  BenchCase c;
  Device device;
  std::vector<Tensor> ins, outs;
  const KernelFn* kernel = nullptr;
  std::unique_ptr<Stream> stream;
  std::shared_ptr<Storage> workspace;
  Cost cost;

  Status Init(DType t) {
    Graph g;
    Builder b(&g);
    std::vector<Value> vs;
    for (size_t i = 0; i < c.inputs.size(); ++i) vs.push_back(b.Input(absl::StrCat("x", i), c.inputs[i], t));
    std::vector<Value> ys = b.Op(c.op, vs, c.attrs);
    CF_RETURN_IF_ERROR(b.status());
    cost = g.nodes().back().cost;
    CF_RETURN_IF_ERROR(CheckDeviceAvailable(device));
    for (const Shape& s : c.inputs) {
      CF_ASSIGN_OR_RETURN(Tensor x, Tensor::Zeros(s, t, device));
      ins.push_back(x);
    }
    for (const Value& y : ys) {
      CF_ASSIGN_OR_RETURN(Tensor o, Tensor::Empty(y.shape(), y.dtype(), device));
      outs.push_back(o);
    }
    kernel = OpRegistry::Global().FindKernel(c.op, device.kind);
    if (kernel == nullptr) return absl::UnimplementedError(absl::StrCat(c.op, " has no kernel on ", device.ToString()));
    CF_ASSIGN_OR_RETURN(stream, Stream::Create(device));
    return absl::OkStatus();
  }
  Status Run() {
    KernelContext ctx{c.op, c.attrs, ins, absl::MakeSpan(outs), device, stream.get(),
                      [this](int64_t bytes) -> StatusOr<void*> {
                        if (!workspace || workspace->bytes() < bytes) {
                          if (workspace && device.is_cuda()) CF_RETURN_IF_ERROR(stream->Synchronize());
                          CF_ASSIGN_OR_RETURN(workspace, Storage::Allocate(device, bytes));
                        }
                        return workspace->data();
                      }};
    return (*kernel)(ctx);
  }
  void SetCounters(benchmark::State& state, double seconds) const {
    const double iters = static_cast<double>(state.iterations());
    const double bytes = static_cast<double>(cost.bytes_read + cost.bytes_written);
    state.counters["bytes/s"] = benchmark::Counter(bytes * iters, benchmark::Counter::kIsRate);
    state.counters["FLOP/s"] =
        benchmark::Counter(static_cast<double>(cost.total_flops()) * iters, benchmark::Counter::kIsRate);
    if (seconds > 0) state.counters["GB/s"] = bytes * iters / seconds / 1e9;
    state.SetLabel(c.name);
  }
};

// args: case index, dtype (0 f16, 1 bf16, 2 f32).
void BM_CpuElementwise(benchmark::State& state) {
  Call call{Cases(64)[state.range(0)], Device::CPU()};
  Status s = call.Init(DTypeArg(state.range(1)));
  if (!s.ok()) {
    state.SkipWithError(std::string(s.message()).c_str());
    return;
  }
  double seconds = 0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    Status r = call.Run();
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!r.ok()) {
      state.SkipWithError(std::string(r.message()).c_str());
      return;
    }
  }
  call.SetCounters(state, seconds);
}
BENCHMARK(BM_CpuElementwise)->ArgNames({"case", "dtype"})->Apply([](benchmark::internal::Benchmark* b) {
  for (int i = 0; i < kNumCases; ++i) b->Args({i, 2});
})->Unit(benchmark::kMillisecond)->MinTime(0.1)->UseRealTime();

#if CF_HAS_CUDA
// ms per launch over `reps` back-to-back launches, timed with CUDA events.
StatusOr<double> TimeCuda(Call& call, int reps) {
  cudaStream_t st = static_cast<cudaStream_t>(call.stream->native());
  cudaEvent_t e0, e1;
  CF_CUDA_CHECK(cudaEventCreate(&e0));
  CF_CUDA_CHECK(cudaEventCreate(&e1));
  CF_CUDA_CHECK(cudaEventRecord(e0, st));
  for (int i = 0; i < reps; ++i) CF_RETURN_IF_ERROR(call.Run());
  CF_CUDA_CHECK(cudaEventRecord(e1, st));
  CF_CUDA_CHECK(cudaEventSynchronize(e1));
  float ms = 0;
  CF_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
  CF_CUDA_CHECK(cudaEventDestroy(e0));
  CF_CUDA_CHECK(cudaEventDestroy(e1));
  return static_cast<double>(ms) / reps;
}
#endif

// args: latent side (64, 128), case index, dtype (0 f16, 1 bf16, 2 f32).
void BM_CudaElementwise(benchmark::State& state) {
#if CF_HAS_CUDA
  if (CudaDeviceCount() == 0) {
    state.SkipWithError("no GPU: no CUDA device is available");
    return;
  }
  Call call{Cases(state.range(0))[state.range(1)], Device::CUDA(0)};
  Status s = call.Init(DTypeArg(state.range(2)));
  if (s.ok()) s = TimeCuda(call, 3).status();  // warm-up (and workspace allocation)
  if (!s.ok()) {
    state.SkipWithError(std::string(s.message()).c_str());
    return;
  }
  double seconds = 0;
  for (auto _ : state) {
    auto ms = TimeCuda(call, 20);
    if (!ms.ok()) {
      state.SkipWithError(std::string(ms.status().message()).c_str());
      return;
    }
    state.SetIterationTime(*ms / 1e3);
    seconds += *ms / 1e3;
  }
  call.SetCounters(state, seconds);
#else
  state.SkipWithError("no GPU: built without CUDA");
#endif
}
BENCHMARK(BM_CudaElementwise)->Apply([](benchmark::internal::Benchmark* b) {
  for (int64_t s : {64, 128})
    for (int i = 0; i < kNumCases; ++i) b->Args({s, i, 0});
  for (int i = 0; i < kNumCases; ++i) b->Args({64, i, 2});
})->ArgNames({"latent", "case", "dtype"})->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace cf
