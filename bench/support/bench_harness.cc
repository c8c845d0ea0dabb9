#include "bench/support/bench_harness.h"

#include <chrono>

#include "graph/builder.h"

namespace cf::bench {

DType DTypeArg(int64_t v) { return v == 0 ? DType::f16 : v == 1 ? DType::bf16 : DType::f32; }

const char* DTypeArgName(int64_t v) { return v == 0 ? "f16" : v == 1 ? "bf16" : v == 2 ? "f32" : "f32/tf32"; }

std::vector<TensorType> AllOf(const std::vector<Shape>& shapes, DType dtype) {
  std::vector<TensorType> types;
  for (const Shape& s : shapes) types.push_back({s, dtype});
  return types;
}

namespace {

// Deterministic values in [-1, 1) (a 64-bit LCG per seed), rounded through
// f32 to `dtype`, made on the CPU and then moved to `device`.
StatusOr<Tensor> Filled(const Shape& shape, DType dtype, uint64_t seed, Device device) {
  CF_ASSIGN_OR_RETURN(Tensor t, Tensor::Empty(shape, dtype));
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t i = 0; i < t.numel(); ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const float v = static_cast<float>(static_cast<double>(s >> 11) / 9007199254740992.0 * 2 - 1);
    switch (dtype) {
      case DType::f32: t.data<float>()[i] = v; break;
      case DType::f16: t.data<f16_t>()[i].bits = F32ToF16Bits(v); break;
      case DType::bf16: t.data<bf16_t>()[i].bits = F32ToBF16Bits(v); break;
      case DType::f64: t.data<double>()[i] = v; break;
      default: return absl::InvalidArgumentError(absl::StrCat("Filled: no values for ", DTypeName(dtype)));
    }
  }
  if (device.is_cpu()) return t;
  return t.To(device);
}

}  // namespace

// ---- OpBench -----------------------------------------------------------------------

OpBench::OpBench(std::string op, Attrs attrs, Device device)
    : op_(std::move(op)), attrs_(std::move(attrs)), device_(device) {}

Status OpBench::Init(const std::vector<TensorType>& inputs, Fill fill) {
  Graph g;
  Builder b(&g);
  std::vector<Value> vs;
  for (size_t i = 0; i < inputs.size(); ++i) vs.push_back(b.Input(absl::StrCat("x", i), inputs[i].shape, inputs[i].dtype));
  std::vector<Value> ys = b.Op(op_, vs, attrs_);
  CF_RETURN_IF_ERROR(b.status());
  cost_ = g.nodes().back().cost;
  CF_RETURN_IF_ERROR(CheckDeviceAvailable(device_));
  for (size_t i = 0; i < inputs.size(); ++i) {
    const TensorType& t = inputs[i];
    CF_ASSIGN_OR_RETURN(Tensor x, fill == Fill::kZeros ? Tensor::Zeros(t.shape, t.dtype, device_)
                                                       : Filled(t.shape, t.dtype, i + 1, device_));
    ins_.push_back(x);
  }
  for (const Value& y : ys) {
    CF_ASSIGN_OR_RETURN(Tensor o, Tensor::Empty(y.shape(), y.dtype(), device_));
    outs_.push_back(o);
  }
  kernel_ = OpRegistry::Global().FindKernel(op_, device_.kind);
  if (kernel_ == nullptr) return absl::UnimplementedError(absl::StrCat(op_, " has no kernel on ", device_.ToString()));
  CF_ASSIGN_OR_RETURN(stream_, Stream::Create(device_));
  CF_ASSIGN_OR_RETURN(start_, Event::Create(device_));
  CF_ASSIGN_OR_RETURN(stop_, Event::Create(device_));
  return absl::OkStatus();
}

Status OpBench::Run() {
  KernelContext ctx{op_, attrs_, ins_, absl::MakeSpan(outs_), device_, stream_.get(),
                    [this](int64_t bytes) -> StatusOr<void*> {
                      if (!workspace_ || workspace_->bytes() < bytes) {
                        // Queued calls may still use the old workspace.
                        if (workspace_ && device_.is_cuda()) CF_RETURN_IF_ERROR(stream_->Synchronize());
                        workspace_.reset();
                        CF_ASSIGN_OR_RETURN(workspace_, Storage::Allocate(device_, bytes));
                      }
                      return workspace_->data();
                    }};
  return (*kernel_)(ctx);
}

StatusOr<double> OpBench::TimeMs(int reps) {
  CF_RETURN_IF_ERROR(start_->Record(*stream_));
  for (int i = 0; i < reps; ++i) CF_RETURN_IF_ERROR(Run());
  CF_RETURN_IF_ERROR(stop_->Record(*stream_));
  CF_RETURN_IF_ERROR(stop_->Synchronize());
  CF_ASSIGN_OR_RETURN(float ms, stop_->ElapsedMsSince(*start_));
  return static_cast<double>(ms) / reps;
}

// ---- counters, skips and loops -----------------------------------------------------------

void SetCostCounters(benchmark::State& state, const Cost& cost, double measured_seconds) {
  const double iters = static_cast<double>(state.iterations());
  const double flops = static_cast<double>(cost.total_flops()) * iters;
  const double bytes = static_cast<double>(cost.bytes_read + cost.bytes_written) * iters;
  state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsRate);
  state.counters["bytes/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsRate);
  if (measured_seconds > 0) {
    state.counters["TFLOP/s"] = flops / measured_seconds / 1e12;
    state.counters["GB/s"] = bytes / measured_seconds / 1e9;
  }
}

bool SkipIfError(benchmark::State& state, const Status& s) {
  if (s.ok()) return false;
  state.SkipWithError(std::string(s.message()).c_str());
  return true;
}

bool SkipWithoutGpu(benchmark::State& state) {
  Status s = CheckDeviceAvailable(Device::CUDA(0));
  if (s.ok()) return false;
  state.SkipWithError(absl::StrCat("no GPU: ", std::string(s.message())).c_str());
  return true;
}

void RunCpuLoop(benchmark::State& state, OpBench& call) {
  // One untimed call: a case that runs a single timed iteration would
  // otherwise time the first touch of its outputs' pages.
  if (SkipIfError(state, call.Run())) return;
  double seconds = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    Status r = call.Run();
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (SkipIfError(state, r)) return;
  }
  SetCostCounters(state, call.cost(), seconds);
}

void RunCudaLoop(benchmark::State& state, OpBench& call) {
  if (SkipIfError(state, call.TimeMs(3).status())) return;  // warm-up
  double seconds = 0;
  for (auto _ : state) {
    StatusOr<double> ms = call.TimeMs(20);
    if (SkipIfError(state, ms.status())) return;
    state.SetIterationTime(*ms / 1e3);
    seconds += *ms / 1e3;
  }
  SetCostCounters(state, call.cost(), seconds);
}

void BenchOpCpu(benchmark::State& state, const std::string& op, const Attrs& attrs,
                const std::vector<TensorType>& inputs, Fill fill) {
  OpBench call(op, attrs, Device::CPU());
  if (SkipIfError(state, call.Init(inputs, fill))) return;
  RunCpuLoop(state, call);
}

void BenchOpCuda(benchmark::State& state, const std::string& op, const Attrs& attrs,
                 const std::vector<TensorType>& inputs, Fill fill) {
  if (SkipWithoutGpu(state)) return;
  OpBench call(op, attrs, Device::CUDA(0));
  if (SkipIfError(state, call.Init(inputs, fill))) return;
  RunCudaLoop(state, call);
}

void BenchCaseCpu(benchmark::State& state, const OpCase& c, DType dtype) {
  state.SetLabel(c.name);
  BenchOpCpu(state, c.op, c.attrs, AllOf(c.inputs, dtype));
}

void BenchCaseCuda(benchmark::State& state, const OpCase& c, DType dtype) {
  state.SetLabel(c.name);
  BenchOpCuda(state, c.op, c.attrs, AllOf(c.inputs, dtype));
}

bool RegisterCaseBenchmarks(const char* family, CaseTable cases, double cpu_min_time) {
  benchmark::internal::Benchmark* cpu = benchmark::RegisterBenchmark(
      absl::StrCat("BM_Cpu", family).c_str(),
      [cases](benchmark::State& state) { BenchCaseCpu(state, cases()[state.range(0)], DType::f32); });
  cpu->ArgNames({"case"})->Unit(benchmark::kMillisecond)->MinTime(cpu_min_time)->UseRealTime();
  for (size_t i = 0; i < cases().size(); ++i)
    if (cases()[i].on_cpu) cpu->Args({static_cast<int64_t>(i)});

  benchmark::internal::Benchmark* cuda = benchmark::RegisterBenchmark(
      absl::StrCat("BM_Cuda", family).c_str(), [cases](benchmark::State& state) {
        BenchCaseCuda(state, cases()[state.range(0)], DTypeArg(state.range(1)));
      });
  cuda->ArgNames({"case", "dtype"})->UseManualTime()->Unit(benchmark::kMicrosecond);
  for (size_t i = 0; i < cases().size(); ++i)
    for (int64_t dt : {0, 2}) cuda->Args({static_cast<int64_t>(i), dt});
  return true;
}

bool RegisterLatentCaseBenchmarks(const char* family, LatentCaseTable cases, double cpu_min_time) {
  const int64_t n = static_cast<int64_t>(cases(64).size());
  benchmark::internal::Benchmark* cpu = benchmark::RegisterBenchmark(
      absl::StrCat("BM_Cpu", family).c_str(), [cases](benchmark::State& state) {
        BenchCaseCpu(state, cases(64)[state.range(0)], DTypeArg(state.range(1)));
      });
  cpu->ArgNames({"case", "dtype"})->Unit(benchmark::kMillisecond)->MinTime(cpu_min_time)->UseRealTime();
  for (int64_t i = 0; i < n; ++i) cpu->Args({i, 2});

  benchmark::internal::Benchmark* cuda = benchmark::RegisterBenchmark(
      absl::StrCat("BM_Cuda", family).c_str(), [cases](benchmark::State& state) {
        BenchCaseCuda(state, cases(state.range(0))[state.range(1)], DTypeArg(state.range(2)));
      });
  for (int64_t s : {64, 128})
    for (int64_t i = 0; i < n; ++i) cuda->Args({s, i, 0});
  for (int64_t i = 0; i < n; ++i) cuda->Args({64, i, 2});
  cuda->ArgNames({"latent", "case", "dtype"})->UseManualTime()->Unit(benchmark::kMicrosecond);
  return true;
}

}  // namespace cf::bench
