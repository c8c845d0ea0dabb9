// Microbenchmarks of the data-movement ops at SD1.5 shapes (batch 2):
// the attention head permute [2, N, 8, 40] -> [2, 8, N, 40], NHWC <-> NCHW at
// [2, H, W, 320], the U-Net skip concat [2, H, W, 640] + [2, H, W, 320] on
// channels, and the 3x3-conv zero pad, for the 512x512 (64x64 latent) and
// 1024x1024 (128x128) resolutions. Counters: bytes/s (a rate from the node's
// Cost) and GB/s (a plain number, bytes read + written per second).
// CPU runs use the 512x512 shapes in f32 only, so the binary stays well under
// a minute; CUDA runs time back-to-back launches with CUDA events.
#include <benchmark/benchmark.h>

#include <chrono>
#include <string>
#include <vector>

#include "graph/builder.h"
#include "ops/shape/shape.h"
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

// Latent side s (64 or 128), tokens s*s.
std::vector<BenchCase> Cases(int64_t s) {
  const int64_t n = s * s;
  return {
      {"heads [2,N,8,40]->[2,8,N,40]", "permute", {{"perm", std::vector<int64_t>{0, 2, 1, 3}}}, {{2, n, 8, 40}}},
      {"NHWC->NCHW", "permute", {{"perm", std::vector<int64_t>{0, 3, 1, 2}}}, {{2, s, s, 320}}},
      {"NCHW->NHWC", "permute", {{"perm", std::vector<int64_t>{0, 2, 3, 1}}}, {{2, 320, s, s}}},
      {"skip concat C 640+320", "concat", {{"axis", int64_t{3}}}, {{2, s, s, 640}, {2, s, s, 320}}},
      {"conv pad 1", "pad", {{"pads", std::vector<int64_t>{0, 0, 1, 1, 1, 1, 0, 0}}}, {{2, s, s, 320}}},
  };
}

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
                      [](int64_t) -> StatusOr<void*> { return absl::InternalError("no workspace"); }};
    return (*kernel)(ctx);
  }
  void SetCounters(benchmark::State& state, double seconds) const {
    const double bytes = static_cast<double>(cost.bytes_read + cost.bytes_written);
    state.counters["bytes/s"] =
        benchmark::Counter(bytes * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
    state.counters["GB/s"] = bytes * static_cast<double>(state.iterations()) / seconds / 1e9;
    state.SetLabel(c.name);
  }
};

// args: case index, dtype (0 f16, 1 bf16, 2 f32).
void BM_CpuShape(benchmark::State& state) {
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
    if (!r.ok()) state.SkipWithError(std::string(r.message()).c_str());
  }
  call.SetCounters(state, seconds);
}
BENCHMARK(BM_CpuShape)->ArgNames({"case", "dtype"})->Apply([](benchmark::internal::Benchmark* b) {
  for (int i = 0; i < 5; ++i) b->Args({i, 2});
})->Unit(benchmark::kMillisecond)->MinTime(0.2)->UseRealTime();

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
void BM_CudaShape(benchmark::State& state) {
#if CF_HAS_CUDA
  if (CudaDeviceCount() == 0) {
    state.SkipWithError("no GPU: no CUDA device is available");
    return;
  }
  Call call{Cases(state.range(0))[state.range(1)], Device::CUDA(0)};
  Status s = call.Init(DTypeArg(state.range(2)));
  if (s.ok()) s = TimeCuda(call, 3).status();  // warm-up
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
BENCHMARK(BM_CudaShape)->Apply([](benchmark::internal::Benchmark* b) {
  for (int64_t s : {64, 128})
    for (int i = 0; i < 5; ++i) b->Args({s, i, 0});
  for (int i = 0; i < 5; ++i) b->Args({64, i, 2});
})->ArgNames({"latent", "case", "dtype"})->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace cf
