// Shared pieces of the Google Benchmark microbenchmarks (bench/**/X_bench.cc):
// one op call run directly through its registered kernel (no executor), the
// CPU and CUDA timing loops, the counters and the skip rules, so that every
// bench measures and reports the same way.
//
// Conventions (scripts/gpu_check.sh and scripts/gpu_summary.py rely on them):
// - CPU benchmarks are named BM_Cpu<What>, CUDA ones BM_Cuda<What>:
//   gpu_check.sh runs each binary with
//   --benchmark_filter='[Cc][Uu][Dd][Aa]|[Gg][Pp][Uu]'.
// - Counters "FLOP/s" (Cost::total_flops, the complete count) and "bytes/s"
//   (bytes_read + bytes_written) are rates (kIsRate) from the node's Cost;
//   gpu_summary.py reads these two. "TFLOP/s" and "GB/s" are the same
//   quantities as plain numbers over the measured kernel time.
// - A CUDA benchmark skips with "no GPU: <reason>" where no device is usable
//   (including builds without CUDA).
#pragma once

#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "ops/op.h"
#include "runtime/stream.h"

namespace cf::bench {

// How an OpBench fills its inputs: zeros (data movement, elementwise and
// normalisation ops), or deterministic values in [-1, 1) (GEMMs and convs,
// where all-zero data could take fast paths).
enum class Fill { kZeros, kValues };

// The storage-type argument of the benches: 0 f16, 1 bf16, 2 f32,
// 3 f32 with TF32 tensor cores allowed (matmul, conv).
DType DTypeArg(int64_t v);
// "f16", "bf16", "f32" or "f32/tf32", for labels.
const char* DTypeArgName(int64_t v);

// `shapes`, all of `dtype`.
std::vector<TensorType> AllOf(const std::vector<Shape>& shapes, DType dtype);

// One op call: inputs and outputs on the device, its kernel, a stream, and
// the Cost of the same call as a node of a one-node graph.
class OpBench {
 public:
  OpBench(std::string op, Attrs attrs, Device device);
  OpBench(const OpBench&) = delete;
  OpBench& operator=(const OpBench&) = delete;

  // Builds the node (for its Cost), allocates inputs and outputs on the
  // device, finds the kernel and makes a stream.
  Status Init(const std::vector<TensorType>& inputs, Fill fill = Fill::kZeros);
  // One kernel call (asynchronous on CUDA). Workspace grows on demand.
  Status Run();
  // Milliseconds per call over `reps` back-to-back calls, timed with events
  // recorded on the stream (CUDA events on a GPU).
  StatusOr<double> TimeMs(int reps);

  const Cost& cost() const { return cost_; }

 private:
  std::string op_;
  Attrs attrs_;
  Device device_;
  std::vector<Tensor> ins_, outs_;
  const KernelFn* kernel_ = nullptr;
  std::unique_ptr<Stream> stream_;
  std::unique_ptr<Event> start_, stop_;
  std::shared_ptr<Storage> workspace_;
  Cost cost_;
};

// Sets "FLOP/s" and "bytes/s" (rates of `cost` per iteration) and, when
// `measured_seconds` > 0 (the time of all iterations' kernels), the plain
// numbers "TFLOP/s" and "GB/s".
void SetCostCounters(benchmark::State& state, const Cost& cost, double measured_seconds = 0);

// Skips the benchmark with the message of `s` when it is an error; true when
// it skipped (the caller returns).
bool SkipIfError(benchmark::State& state, const Status& s);
// Skips with "no GPU: <reason>" when no CUDA device is usable; true when it
// skipped (the caller returns).
bool SkipWithoutGpu(benchmark::State& state);

// The CPU loop: one call per iteration (timed by the framework; register
// with UseRealTime), then the counters.
void RunCpuLoop(benchmark::State& state, OpBench& call);
// The CUDA loop: 3 warm-up calls (handles, algorithm search, workspace), then
// per iteration 20 back-to-back calls timed with CUDA events and reported as
// manual time (register with UseManualTime), then the counters.
void RunCudaLoop(benchmark::State& state, OpBench& call);

// A benchmark of `op` on `inputs`, run on the CPU or on CUDA device 0 with
// the loop above, skipping with the reason where it cannot run.
void BenchOpCpu(benchmark::State& state, const std::string& op, const Attrs& attrs,
                const std::vector<TensorType>& inputs, Fill fill = Fill::kZeros);
void BenchOpCuda(benchmark::State& state, const std::string& op, const Attrs& attrs,
                 const std::vector<TensorType>& inputs, Fill fill = Fill::kZeros);

// One row of a bench's case table: a label, the op, its attributes and its
// input shapes (all of the benchmark's dtype).
struct OpCase {
  const char* name;
  std::string op;
  Attrs attrs;
  std::vector<Shape> inputs;
  bool on_cpu = true;  // small enough for the CPU run
};
// BenchOpCpu / BenchOpCuda of `c` in `dtype`, labelled with `c.name`.
void BenchCaseCpu(benchmark::State& state, const OpCase& c, DType dtype);
void BenchCaseCuda(benchmark::State& state, const OpCase& c, DType dtype);

// Registration of a bench made of a case table (call once, at namespace
// scope: `[[maybe_unused]] const bool kRegistered = Register...;`).
//
// A fixed table: BM_Cpu<family> with args {case} (the cases with on_cpu, in
// f32) and BM_Cuda<family> with args {case, dtype} (every case in f16, f32).
using CaseTable = const std::vector<OpCase>& (*)();
bool RegisterCaseBenchmarks(const char* family, CaseTable cases, double cpu_min_time);
// A table per latent side (64: 512x512 images, 128: 1024x1024):
// BM_Cpu<family> with args {case, dtype} (latent 64, f32) and BM_Cuda<family>
// with args {latent, case, dtype} (latents 64 and 128 in f16, 64 in f32).
using LatentCaseTable = std::vector<OpCase> (*)(int64_t latent);
bool RegisterLatentCaseBenchmarks(const char* family, LatentCaseTable cases, double cpu_min_time);

}  // namespace cf::bench
