// `convfusion-bench latency`: the paper's Table 2, one module at a time at a
// model's highest-resolution layer (self-attention, neighborhood K=13,
// ConvBlock K=13 and K=25, LinFusion, DiTFastAttn's window step), run by the
// executor with random weights: the median and min of --reps runs after
// warm-up (--denoiser: also a whole denoiser step), the ratio to
// self-attention measured in the same run, and the
// allocator's peak beside the planned bytes. On a GPU: CUDA events around
// CUDA Graph replays, f16 and bf16. docs/profiling.md for --profile.
#pragma once

#include <string>
#include <vector>

#include "apps/bench/models.h"
#include "apps/bench/table.h"

namespace cf::bench {

struct LatencyFlags {
  std::string model = "sd15";
  std::string resolutions;  // empty: 512 on the CPU, 512,1024,2K,4K on CUDA
  std::string device = "cpu";
  std::string dtypes;  // empty: f32 on the CPU, f16,bf16 on CUDA
  int64_t reps = 5;
  int64_t warmup = 1;
  double max_seconds = 30;  // skip a cell whose run would take longer
  bool profile = false;
  bool denoiser = false;  // also a whole denoiser step (self-attention and ConvBlock)
  // Comma list of LatencyModuleNames() to run, in that order; empty: the
  // Table 2 modules (and the two steps with `denoiser`).
  std::string modules;
};

// "self_attention", ..., "ditfastattn_w64", "denoiser_self_attention",
// "denoiser_convblock": the values of --modules.
std::vector<std::string> LatencyModuleNames();

struct LatencyCell {
  std::string module;  // "self_attention", "convblock_k13", ...
  Resolution resolution;
  std::string dtype;
  bool measured = false;
  std::string note;  // why not measured, or what was
  double median_ms = 0, min_ms = 0;
  int64_t flops = 0;          // complete count of the module's graph
  int64_t planned_bytes = 0;  // arena + parameters + inputs and outputs
  int64_t peak_bytes = 0;     // the allocator's peak while the module was made and run
};

struct LatencyResult {
  std::vector<LatencyCell> cells;
  Table table;
};

Model ParseModelName(const std::string& name);  // one of ModelNames()
StatusOr<LatencyResult> RunLatency(const LatencyFlags& f);

// cudaProfilerStart / Stop (no-ops without CUDA); apps/bench/profiler.cc.
void ProfilerStart();
void ProfilerStop();

}  // namespace cf::bench
