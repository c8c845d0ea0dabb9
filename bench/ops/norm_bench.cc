// Microbenchmarks of the norm family at the models' shapes: group_norm on SD
// latents [2, 64, 64, 320] (512x512) and [2, 128, 128, 320] (1024x1024) with
// 32 groups, layer_norm on [2, 4096, 320] (SD tokens) and [2, 4096, 1152]
// (PixArt, no affine, eps 1e-6), adaln_modulate on PixArt tokens; forward and
// backward. Counters: bytes/s and FLOP/s (rates from the node's Cost,
// total_flops). The kernel is called directly (no executor); CUDA runs time
// back-to-back launches with CUDA events. CPU runs use f32 and the smaller
// shapes so the whole binary takes well under a minute.
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

struct Case {
  const char* name;
  std::string op;
  Attrs attrs;
  std::vector<Shape> inputs;
  bool on_cpu;  // small enough for the CPU run
};

const std::vector<Case>& Cases() {
  static const std::vector<Case> cases = [] {
    const Shape l64{2, 64, 64, 320}, l128{2, 128, 128, 320}, c320{320};
    const Shape t320{2, 4096, 320}, t1152{2, 4096, 1152}, c1152{1152}, mod{2, 1, 1152};
    const Attrs g32{{"groups", int64_t{32}}}, pixart{{"eps", 1e-6}};
    return std::vector<Case>{
        {"group_norm [2,64,64,320] g32 affine", "group_norm", g32, {l64, c320, c320}, true},
        {"group_norm [2,128,128,320] g32 affine", "group_norm", g32, {l128, c320, c320}, false},
        {"group_norm_backward [2,64,64,320]", "group_norm_backward", g32, {l64, l64, c320}, true},
        {"group_norm_backward [2,128,128,320]", "group_norm_backward", g32, {l128, l128, c320}, false},
        {"layer_norm [2,4096,320] affine", "layer_norm", {}, {t320, c320, c320}, true},
        {"layer_norm [2,4096,1152] no affine", "layer_norm", pixart, {t1152}, true},
        {"layer_norm_backward [2,4096,320] affine", "layer_norm_backward", {}, {t320, t320, c320}, true},
        {"layer_norm_backward [2,4096,1152]", "layer_norm_backward", pixart, {t1152, t1152}, false},
        {"adaln_modulate [2,4096,1152]", "adaln_modulate", {}, {t1152, mod, mod}, true},
        {"adaln_modulate_backward [2,4096,1152]", "adaln_modulate_backward", {}, {t1152, mod, t1152}, false},
    };
  }();
  return cases;
}

// One op call: tensors on the device, its kernel, a stream, and the Cost of
// the same call as a graph node.
struct Call {
  Call(Case c_, Device device_) : c(std::move(c_)), device(device_) {}
  Case c;
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

  void SetCounters(benchmark::State& state) const {
    const double iters = static_cast<double>(state.iterations());
    state.counters["bytes/s"] = benchmark::Counter(static_cast<double>(cost.bytes_read + cost.bytes_written) * iters,
                                                   benchmark::Counter::kIsRate);
    state.counters["FLOP/s"] =
        benchmark::Counter(static_cast<double>(cost.total_flops()) * iters, benchmark::Counter::kIsRate);
    state.SetLabel(c.name);
  }
};

// arg: case index (f32).
void BM_CpuNorm(benchmark::State& state) {
  Call call{Cases()[state.range(0)], Device::CPU()};
  Status s = call.Init(DType::f32);
  if (!s.ok()) {
    state.SkipWithError(std::string(s.message()).c_str());
    return;
  }
  for (auto _ : state) {
    Status r = call.Run();
    if (!r.ok()) {
      state.SkipWithError(std::string(r.message()).c_str());
      return;
    }
  }
  call.SetCounters(state);
}
BENCHMARK(BM_CpuNorm)->ArgNames({"case"})->Apply([](benchmark::internal::Benchmark* b) {
  for (size_t i = 0; i < Cases().size(); ++i)
    if (Cases()[i].on_cpu) b->Args({static_cast<int64_t>(i)});
})->Unit(benchmark::kMillisecond)->MinTime(0.05)->UseRealTime();

#if CF_HAS_CUDA
DType DTypeArg(int64_t v) { return v == 0 ? DType::f16 : v == 1 ? DType::bf16 : DType::f32; }

// ms per launch over `reps` back-to-back launches (CUDA events).
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

// args: case index, dtype (0 f16, 1 bf16, 2 f32).
void BM_CudaNorm(benchmark::State& state) {
#if CF_HAS_CUDA
  if (CudaDeviceCount() == 0) {
    state.SkipWithError("no GPU: no CUDA device is available");
    return;
  }
  Call call{Cases()[state.range(0)], Device::CUDA(0)};
  Status s = call.Init(DTypeArg(state.range(1)));
  if (s.ok()) s = TimeCuda(call, 3).status();  // warm-up, workspace allocation
  if (!s.ok()) {
    state.SkipWithError(std::string(s.message()).c_str());
    return;
  }
  for (auto _ : state) {
    auto ms = TimeCuda(call, 20);
    if (!ms.ok()) {
      state.SkipWithError(std::string(ms.status().message()).c_str());
      return;
    }
    state.SetIterationTime(*ms / 1e3);
  }
  call.SetCounters(state);
#else
  state.SkipWithError("no GPU: built without CUDA");
#endif
}
BENCHMARK(BM_CudaNorm)->ArgNames({"case", "dtype"})->Apply([](benchmark::internal::Benchmark* b) {
  for (size_t i = 0; i < Cases().size(); ++i)
    for (int64_t dt : {0, 2}) b->Args({static_cast<int64_t>(i), dt});
})->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace cf
