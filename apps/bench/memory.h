// `convfusion-bench memory` and `convfusion-bench model`: the memory
// planner's figures (graph/planner.h) for a denoiser step and a distillation
// training step, and whole-denoiser FLOPs by module type with parameters.
#pragma once

#include <string>

#include "apps/bench/common.h"
#include "apps/bench/models.h"
#include "apps/bench/table.h"

namespace cf::bench {

struct MemoryFlags {
  int64_t batch = 2;
  std::string dtype = "f16";
  std::string pass = "both";  // forward | training | both
  double max_ratio = 1.05;    // arena / lower bound above this fails the run
};

// One row per model, method, resolution and pass, with the JSON keys
// arena_bytes, lower_bound_bytes, no_reuse_bytes, param_bytes,
// workspace_bytes. FailedPrecondition when an arena exceeds 1.05x its lower
// bound (MemoryFlags::max_ratio; naming the graph). The training step (teacher: self-attention,
// frozen; student: ConvBlocks of the released sizes, the only trainable
// parameters) is one row per model and resolution, whatever --method says.
StatusOr<Table> MemoryTable(const Selection& sel, const MethodOptions& mo, const MemoryFlags& f);

// FLOPs of one whole-denoiser step by module type (complete count and the
// Table 1 convention total), "parameters", planned memory.
StatusOr<Table> ModelTable(const Selection& sel, const MethodOptions& mo, const MemoryFlags& f);

// The module type of a node, for ModelTable: "self_attention" (attn1 or
// conv1 of a transformer block), "cross_attention" (attn2), "feed_forward"
// (ff), "norms" (group / layer norm ops), "convolutions" (conv2d), "other".
const char* ModuleType(const std::string& scope, const std::string& op);

}  // namespace cf::bench
