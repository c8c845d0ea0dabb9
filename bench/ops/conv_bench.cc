// Microbenchmarks of conv2d and its backward ops at SD1.5 shapes: the dense
// 3x3 320 -> 320 conv of the 64x64 latent (512x512 images) and of 128x128
// (1024x1024), batch 2, and the ConvBlocks' depthwise convs (13x13 and
// friends on 64x64x160). CPU variants at reduced sizes (the whole binary runs
// in well under a minute on 2 cores); CUDA timed with CUDA events over
// back-to-back launches. Counters: FLOP/s and bytes/s from the node's Cost,
// TFLOPS as a plain number for scripts/gpu_check.sh.
#include <benchmark/benchmark.h>

#include <vector>

#include "graph/builder.h"
#include "ops/conv/conv.h"
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

enum class Kind { kForward, kBackwardInput, kBackwardWeight };

// args of every conv benchmark: n, hw, cin, cout, k, groups, kind.
StatusOr<OpCallBench*> MakeConv(benchmark::State& state, DType t, Device device) {
  const int64_t n = state.range(0), hw = state.range(1), cin = state.range(2), cout = state.range(3);
  const int64_t k = state.range(4), groups = state.range(5);
  const Kind kind = static_cast<Kind>(state.range(6));
  Attrs attrs{{"padding", std::vector<int64_t>{k / 2, k / 2}}, {"groups", groups}};
  const Shape x{n, hw, hw, cin}, w{cout, k, k, cin / groups}, y{n, hw, hw, cout};
  std::vector<TensorType> types;
  std::string op;
  switch (kind) {
    case Kind::kForward:
      op = "conv2d";
      types = {{x, t}, {w, t}, {Shape{cout}, t}};
      break;
    case Kind::kBackwardInput:
      op = "conv2d_backward_input";
      attrs.Set("input_shape", std::vector<int64_t>{n, hw, hw, cin});
      types = {{y, t}, {w, t}};
      break;
    case Kind::kBackwardWeight:
      op = "conv2d_backward_weight";
      attrs.Set("weight_shape", std::vector<int64_t>{cout, k, k, cin / groups});
      types = {{x, t}, {y, t}};
      break;
  }
  auto* b = new OpCallBench(op, attrs, device);
  Status s = b->Init(types);
  if (!s.ok()) {
    delete b;
    return s;
  }
  state.SetLabel(absl::StrCat(op, " ", DTypeName(t)));
  return b;
}

const char* const kArgNames[] = {"n", "hw", "cin", "cout", "k", "groups", "kind"};

// ---- CPU ---------------------------------------------------------------------------

void BM_CpuConv(benchmark::State& state) {
  auto made = MakeConv(state, DType::f32, Device::CPU());
  if (!made.ok()) {
    state.SkipWithError(std::string(made.status().message()).c_str());
    return;
  }
  std::unique_ptr<OpCallBench> b(*made);
  for (auto _ : state) {
    Status r = b->Run();
    if (!r.ok()) state.SkipWithError(std::string(r.message()).c_str());
  }
  b->SetCounters(state);
}
// 3x3 320 -> 320 at 16x16 and 32x32 (the 64x64 latent's work / 16 and / 4 at
// batch 1), its backward ops at 16x16, and depthwise 13x13 / 3x3 on 32x32x160.
BENCHMARK(BM_CpuConv)
    ->Args({1, 16, 320, 320, 3, 1, 0})->Args({1, 32, 320, 320, 3, 1, 0})
    ->Args({1, 16, 320, 320, 3, 1, 1})->Args({1, 16, 320, 320, 3, 1, 2})
    ->Args({1, 32, 320, 320, 1, 1, 0})
    ->Args({1, 32, 160, 160, 13, 160, 0})->Args({1, 32, 160, 160, 13, 160, 1})->Args({1, 32, 160, 160, 13, 160, 2})
    ->Args({1, 32, 160, 160, 3, 160, 0})
    ->ArgNames({kArgNames, kArgNames + 7})->Unit(benchmark::kMillisecond)->MinTime(0.2)->UseRealTime();

// ---- CUDA --------------------------------------------------------------------------

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

// Extra arg 7: dtype (0 f16, 1 bf16, 2 f32, 3 f32 with TF32).
void BM_CudaConv(benchmark::State& state) {
#if CF_HAS_CUDA
  if (CudaDeviceCount() == 0) {
    state.SkipWithError("no GPU: no CUDA device is available");
    return;
  }
  const int dt = static_cast<int>(state.range(7));
  const DType t = dt == 0 ? DType::f16 : dt == 1 ? DType::bf16 : DType::f32;
  auto made = MakeConv(state, t, Device::CUDA(0));
  if (!made.ok()) {
    state.SkipWithError(std::string(made.status().message()).c_str());
    return;
  }
  std::unique_ptr<OpCallBench> b(*made);
  if (dt == 3) b->attrs.Set("allow_tf32", true);
  Status s = TimeCuda(*b, 3).status();  // warm-up: handle, algorithm search, workspace
  if (!s.ok()) {
    state.SkipWithError(std::string(s.message()).c_str());
    return;
  }
  double total_ms = 0;
  for (auto _ : state) {
    auto ms = TimeCuda(*b, 20);
    if (!ms.ok()) {
      state.SkipWithError(std::string(ms.status().message()).c_str());
      return;
    }
    state.SetIterationTime(*ms / 1e3);
    total_ms += *ms;
  }
  b->SetCounters(state);
  const double avg_s = total_ms / 1e3 / static_cast<double>(state.iterations());
  state.counters["TFLOPS"] = static_cast<double>(b->cost.mac_flops) / avg_s / 1e12;
#else
  state.SkipWithError("no GPU: built without CUDA");
#endif
}
BENCHMARK(BM_CudaConv)
    // Dense 3x3 320 -> 320, batch 2: 64x64 in every dtype, 128x128 in f16; backward ops at 64x64 f16.
    ->Args({2, 64, 320, 320, 3, 1, 0, 0})->Args({2, 64, 320, 320, 3, 1, 0, 1})->Args({2, 64, 320, 320, 3, 1, 0, 2})
    ->Args({2, 64, 320, 320, 3, 1, 0, 3})->Args({2, 128, 320, 320, 3, 1, 0, 0})
    ->Args({2, 64, 320, 320, 3, 1, 1, 0})->Args({2, 64, 320, 320, 3, 1, 2, 0})
    // Depthwise on 64x64x160, batch 2: 13x13 forward / backward (f16, f32), 3x3 and 25x25 forward.
    ->Args({2, 64, 160, 160, 13, 160, 0, 0})->Args({2, 64, 160, 160, 13, 160, 0, 2})
    ->Args({2, 64, 160, 160, 13, 160, 1, 0})->Args({2, 64, 160, 160, 13, 160, 2, 0})
    ->Args({2, 64, 160, 160, 3, 160, 0, 0})->Args({2, 64, 160, 160, 25, 160, 0, 0})
    ->Args({2, 128, 160, 160, 13, 160, 0, 0})
    ->ArgNames({"n", "hw", "cin", "cout", "k", "groups", "kind", "dtype"})->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace cf
