// apps/bench/latency.h.
#include "apps/bench/latency.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "apps/bench/common.h"
#include "graph/executor.h"
#include "runtime/allocator.h"
#include "runtime/nvtx.h"

namespace cf::bench {

namespace {

struct LatencyModule {
  std::string name;
  Method method;
  MethodOptions options;
  bool denoiser = false;  // the whole denoiser step with this method in every block
};

// The rows of the paper's Table 2 (ConvFusion K = 13 and K = 25).
std::vector<LatencyModule> Table2Modules() {
  return {{"self_attention", Method::kSelfAttention, {}},
          {"neighborhood_k13", Method::kNeighborhood, {.na_kernel = 13}},
          {"convblock_k13", Method::kConvBlock, {.convblock_kernel = 13}},
          {"convblock_k25", Method::kConvBlock, {.convblock_kernel = 25}},
          {"linfusion", Method::kLinFusion, {}},
          {"ditfastattn_w64", Method::kDitFastAttn, {.window = 64}}};
}

// --denoiser: a whole step with self-attention and with the released ConvBlocks.
std::vector<LatencyModule> DenoiserSteps() {
  return {{"denoiser_self_attention", Method::kSelfAttention, {}, true},
          {"denoiser_convblock", Method::kConvBlock, {}, true}};
}

// --modules (else the Table 2 rows), with the steps when --denoiser asks.
StatusOr<std::vector<LatencyModule>> SelectedModules(const LatencyFlags& f) {
  std::vector<LatencyModule> all = Table2Modules(), picked;
  for (const LatencyModule& d : DenoiserSteps()) all.push_back(d);
  auto add = [&](const std::string& name) -> Status {
    for (const LatencyModule& lm : all)
      if (lm.name == name) {
        for (const LatencyModule& p : picked)
          if (p.name == name) return absl::OkStatus();
        picked.push_back(lm);
        return absl::OkStatus();
      }
    return absl::InvalidArgumentError(absl::StrCat("--modules: '", name, "' is not one of ",
                                                   absl::StrJoin(LatencyModuleNames(), ", ")));
  };
  if (f.modules.empty()) {
    for (const LatencyModule& lm : Table2Modules()) CF_RETURN_IF_ERROR(add(lm.name));
  } else {
    for (absl::string_view name : absl::StrSplit(f.modules, ',', absl::SkipEmpty()))
      CF_RETURN_IF_ERROR(add(std::string(name)));
  }
  if (f.denoiser)
    for (const LatencyModule& d : DenoiserSteps()) CF_RETURN_IF_ERROR(add(d.name));
  return picked;
}

// Deterministic values in [-scale, scale) of `dtype`.
StatusOr<Tensor> Values(const Shape& shape, DType dtype, uint64_t seed, double scale) {
  std::vector<float> v(static_cast<size_t>(shape.numel()));
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float& x : v) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    x = static_cast<float>(scale * (static_cast<double>(s >> 11) / 9007199254740992.0 * 2.0 - 1.0));
  }
  return Tensor::FromValues<float>(v, shape, dtype);
}

// A node's complete FLOPs, with those of the nodes a pass fused into it.
int64_t NodeFlops(const Node& n) {
  int64_t f = n.cost.total_flops();
  for (const AbsorbedCost& a : n.absorbed) f += a.cost.total_flops();
  return f;
}

// Time, FLOPs and GFLOP/s of one run by op, most time first; attention is
// split into self (attn1) and cross (attn2) by the node's scope. `g` is the
// graph the executor ran (after the passes: the timings' node ids are its).
std::string OpThroughputMarkdown(const Graph& g, const std::vector<NodeTiming>& timings) {
  struct Row {
    int nodes = 0;
    double ms = 0, flops = 0;
  };
  std::map<std::string, Row> rows;
  double total = 0;
  for (const NodeTiming& t : timings) {
    std::string key = t.op;
    if (t.op == "attention") {
      const size_t dot = t.scope.rfind('.');
      key = absl::StrCat(t.op, " (", dot == std::string::npos ? t.scope : t.scope.substr(dot + 1), ")");
    }
    Row& r = rows[key];
    r.nodes += 1;
    r.ms += t.ms;
    r.flops += static_cast<double>(NodeFlops(g.node(t.node)));
    total += t.ms;
  }
  std::vector<std::pair<std::string, Row>> sorted(rows.begin(), rows.end());
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
  std::string md = "| op | nodes | ms | % | GFLOP | GFLOP/s |\n|:--|--:|--:|--:|--:|--:|\n";
  for (const auto& [key, r] : sorted)
    absl::StrAppendFormat(&md, "| %s | %d | %.1f | %.1f | %.2f | %.1f |\n", key, r.nodes, r.ms,
                          total > 0 ? 100 * r.ms / total : 0.0, r.flops / 1e9, r.ms > 0 ? r.flops / 1e6 / r.ms : 0.0);
  return md;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Builds, plans and runs one module; fills the cell.
// `ms_per_flop`: what this module took at a smaller size, to skip a cell
// that would run past --max-seconds without running it.
Status Measure(const LatencyFlags& f, Device device, const LatencyModule& lm, const Resolution& r, DType dtype,
               std::optional<double> ms_per_flop, LatencyCell* cell) {
  BuildSpec s;
  s.model = ParseModelName(f.model);
  s.method = lm.method;
  s.options = lm.options;
  s.resolution = r;
  s.dtype = dtype;
  Graph g;
  Builder b(&g);
  if (lm.denoiser) {
    CF_ASSIGN_OR_RETURN(Value y, BuildDenoiser(b, s));
    (void)y;
  } else {
    CF_ASSIGN_OR_RETURN(ModuleInfo info, BuildModule(b, s));
    (void)info;
  }
  for (const Node& n : g.nodes()) cell->flops += n.cost.total_flops();
  if (ms_per_flop && *ms_per_flop * static_cast<double>(cell->flops) > f.max_seconds * 1e3) {
    cell->note = absl::StrFormat("skipped: about %.0f s a run, from the smaller size (--max-seconds=%g)",
                                 *ms_per_flop * static_cast<double>(cell->flops) / 1e3, f.max_seconds);
    return absl::OkStatus();
  }

  CF_ASSIGN_OR_RETURN(Allocator * alloc, AllocatorFor(device));
  const int64_t before = alloc->stats().bytes_allocated;
  alloc->ResetPeak();
  ExecutorOptions eo;
  eo.device = device;
  // --profile runs eagerly, so every node keeps its own NVTX range
  // (a replayed CUDA Graph has one range for the whole step).
  eo.cuda_graph = device.is_cuda() && !f.profile;
  // On the CPU, --profile also times every node of the last run (the note
  // names the ops that took the most).
  eo.time_nodes = device.is_cpu() && f.profile;
  CF_ASSIGN_OR_RETURN(std::unique_ptr<Executor> exec, Executor::Create(g, eo));
  uint64_t seed = 1;
  std::map<std::string, Tensor> inputs;
  int64_t io = 0;
  for (const ValueInfo& v : g.values()) {
    if (v.kind == ValueKind::kParameter) {
      const Shape& sh = v.type.shape;
      const double fan_in = sh.rank() == 3 ? double(sh.dim(0) * sh.dim(1)) : double(sh.dims().back());
      CF_ASSIGN_OR_RETURN(Tensor t, Values(sh, v.type.dtype, seed++, 1.0 / std::sqrt(fan_in)));
      CF_RETURN_IF_ERROR(exec->SetParameter(v.name, t));
    } else if (v.kind == ValueKind::kInput) {
      // Timesteps in [0, 1000), everything else in [-1, 1).
      const bool timestep = v.name == "timestep";
      CF_ASSIGN_OR_RETURN(Tensor t, Values(v.type.shape, v.type.dtype, seed++, timestep ? 500.0 : 1.0));
      if (timestep) {
        std::vector<float> ts(static_cast<size_t>(v.type.shape.numel()), 500.0f);
        CF_ASSIGN_OR_RETURN(t, Tensor::FromValues<float>(ts, v.type.shape, v.type.dtype));
      }
      CF_ASSIGN_OR_RETURN(inputs[v.name], t.To(device));
      io += v.type.bytes();
    }
    if (v.is_output) io += v.type.bytes();
  }
  cell->planned_bytes = exec->plan().arena_bytes + exec->plan().parameter_bytes + io;

  CF_ASSIGN_OR_RETURN(std::unique_ptr<Event> start, Event::Create(device));
  CF_ASSIGN_OR_RETURN(std::unique_ptr<Event> stop, Event::Create(device));
  std::vector<Tensor> out;
  auto timed_run = [&](double* ms) -> Status {
    out.clear();  // the last run's outputs are kept for the check below
    CF_RETURN_IF_ERROR(start->Record(exec->stream()));
    CF_ASSIGN_OR_RETURN(out, exec->Run(inputs));
    CF_RETURN_IF_ERROR(stop->Record(exec->stream()));
    CF_RETURN_IF_ERROR(stop->Synchronize());
    CF_ASSIGN_OR_RETURN(float elapsed, stop->ElapsedMsSince(*start));
    *ms = elapsed;
    return absl::OkStatus();
  };
  // Warm-up (a CUDA Graph is captured on the first run); a run that takes
  // too long ends the cell here.
  double ms = 0;
  for (int64_t i = 0; i < f.warmup; ++i) {
    CF_RETURN_IF_ERROR(timed_run(&ms));
    if (ms > f.max_seconds * 1e3) {
      cell->note = absl::StrFormat("skipped: one run took %.1f s (--max-seconds=%g)", ms / 1e3, f.max_seconds);
      return absl::OkStatus();
    }
  }
  std::vector<double> times;
  // "convfusion-bench:convblock_k13:512:f16:run3": no '/', which Nsight
  // Compute's --nvtx-include reads as nesting (docs/profiling.md).
  const std::string range_prefix = absl::StrCat(kProgram, ":", lm.name, ":", r.label, ":", DTypeName(dtype), ":run");
  if (f.profile && device.is_cuda()) ProfilerStart();
  for (int64_t i = 0; i < f.reps; ++i) {
    const std::string range = absl::StrCat(range_prefix, i);
    CF_NVTX_RANGE(range.c_str());
    CF_RETURN_IF_ERROR(timed_run(&ms));
    times.push_back(ms);
  }
  if (f.profile && device.is_cuda()) ProfilerStop();
  cell->peak_bytes = alloc->stats().peak_bytes_allocated - before;
  // Random weights can overflow a deep model; a run on infinities, NaNs (or
  // subnormals) is not a fair time, so say so.
  int64_t bad = 0;
  for (const Tensor& t : out) {
    CF_ASSIGN_OR_RETURN(Tensor host, t.To(Device::CPU()));
    CF_ASSIGN_OR_RETURN(std::vector<float> v, host.ToVector<float>());
    for (float x : v) bad += !std::isfinite(x);
  }
  cell->median_ms = Median(times);
  cell->min_ms = *std::min_element(times.begin(), times.end());
  cell->measured = true;
  const std::string warning = bad ? absl::StrCat(bad, " non-finite output values (random weights); ") : "";
  if (eo.time_nodes) {
    const TimingSummary t = SummarizeTimings(exec->timings());
    std::string top;
    for (size_t i = 0; i < std::min<size_t>(t.by_op.size(), 4); ++i)
      absl::StrAppendFormat(&top, "%s%s %.1f ms (%d)", i ? ", " : "", t.by_op[i].key, t.by_op[i].ms, t.by_op[i].nodes);
    cell->note = absl::StrCat("last run by op: ", top);
    // The whole last run on stderr: by scope two levels deep ("down_blocks.0")
    // and by op, then by op with FLOPs (docs/whole-model.md's profile).
    Progress(absl::StrCat("profile of the last run of ", lm.name, " ", r.label, " ", DTypeName(dtype), ":\n",
                          SummarizeTimings(exec->timings(), 2).ToMarkdown(), "\n",
                          OpThroughputMarkdown(exec->graph(), exec->timings())));
  } else if (device.is_cuda() && !exec->cuda_graph_status().ok())
    cell->note = absl::StrCat("eager (no CUDA Graph: ", exec->cuda_graph_status().message(), ")");
  else if (device.is_cuda())
    cell->note = f.profile ? "eager (--profile)" : "CUDA Graph replay";
  cell->note = warning + cell->note;
  return absl::OkStatus();
}

// The whole-step figures of issue #13, one line each: the ConvBlock step's
// speed-up over the self-attention step beside the FLOP ratio of the two
// graphs, and each step's bf16 speed-up over its f32 run.
std::vector<std::string> WholeStepNotes(const std::vector<LatencyCell>& cells, Model model) {
  std::map<std::tuple<std::string, std::string, std::string>, const LatencyCell*> by;
  for (const LatencyCell& c : cells)
    if (c.measured) by[{c.module, c.resolution.label, c.dtype}] = &c;
  std::vector<std::string> notes;
  for (const LatencyCell& c : cells) {
    if (!c.measured) continue;
    if (c.module == "denoiser_convblock") {
      auto self = by.find({"denoiser_self_attention", c.resolution.label, c.dtype});
      if (self != by.end())
        notes.push_back(absl::StrFormat(
            "%s step at %s, %s: ConvBlocks (released kernels) speed-up %.2fx over self-attention (median %.1f vs "
            "%.1f ms), FLOP ratio %.2fx (%.1f vs %.1f GFLOP)",
            ModelTitle(model), c.resolution.label, c.dtype, self->second->median_ms / c.median_ms,
            c.median_ms, self->second->median_ms, static_cast<double>(self->second->flops) / static_cast<double>(c.flops),
            static_cast<double>(c.flops) / 1e9, static_cast<double>(self->second->flops) / 1e9));
    }
    if (c.module.rfind("denoiser_", 0) == 0 && c.dtype == "bf16") {
      auto f32 = by.find({c.module, c.resolution.label, "f32"});
      if (f32 != by.end())
        notes.push_back(absl::StrFormat("%s %s at %s: bf16 speed-up %.2fx over f32 (median %.1f vs %.1f ms)",
                                        ModelTitle(model), c.module, c.resolution.label,
                                        f32->second->median_ms / c.median_ms, c.median_ms, f32->second->median_ms));
    }
  }
  return notes;
}

}  // namespace

std::vector<std::string> LatencyModuleNames() {
  std::vector<std::string> names;
  for (const LatencyModule& lm : Table2Modules()) names.push_back(lm.name);
  for (const LatencyModule& lm : DenoiserSteps()) names.push_back(lm.name);
  return names;
}

Model ParseModelName(const std::string& name) {
  for (Model m : AllModels())
    if (name == ModelName(m)) return m;
  return Model::kSd15;
}

StatusOr<LatencyResult> RunLatency(const LatencyFlags& f) {
  const Device device = f.device == "cuda" ? Device::CUDA() : Device::CPU();
  if (device.is_cuda()) {
    const Status s = CheckDeviceAvailable(device);
    if (!s.ok())
      return absl::FailedPreconditionError(
          absl::StrCat("--device=cuda: no GPU here (", s.message(), "); --device=cpu times the CPU"));
  }
  const Model model = ParseModelName(f.model);
  const std::string resolutions = !f.resolutions.empty() ? f.resolutions : device.is_cuda() ? "512,1024,2K,4K" : "512";
  std::vector<std::string> dtypes = absl::StrSplit(f.dtypes, ',', absl::SkipEmpty());
  if (dtypes.empty()) dtypes = device.is_cuda() ? std::vector<std::string>{"f16", "bf16"} : std::vector<std::string>{"f32"};
  CF_ASSIGN_OR_RETURN(const std::vector<LatencyModule> modules, SelectedModules(f));
  LatencyResult res;
  std::map<std::string, double> ms_per_flop;  // per module, from its last measured cell
  for (const std::string& dt : dtypes)
    for (const std::string& label : std::vector<std::string>(absl::StrSplit(resolutions, ','))) {
      CF_ASSIGN_OR_RETURN(Resolution r, ParseResolution(label, model));
      for (const LatencyModule& lm : modules) {
        LatencyCell cell;
        cell.module = lm.name;
        cell.resolution = r;
        cell.dtype = dt;
        Progress(absl::StrCat("latency: ", ModelName(model), " ", lm.name, " ", r.label, " ", dt, " on ",
                              f.device));
        auto known = ms_per_flop.find(lm.name + dt);
        CF_RETURN_IF_ERROR(Measure(f, device, lm, r, ParseDTypeFlag(dt),
                                   known == ms_per_flop.end() ? std::nullopt : std::optional<double>(known->second),
                                   &cell));
        if (cell.measured && cell.flops > 0) ms_per_flop[lm.name + dt] = cell.median_ms / static_cast<double>(cell.flops);
        res.cells.push_back(std::move(cell));
      }
    }

  Table& t = res.table;
  t.name = "latency";
  t.title = absl::StrCat("Table 2: one module at ", ModelTitle(model), "'s highest-resolution layer, batch 2, on ",
                         f.device, ": median and min of ", f.reps, " runs after ", f.warmup, " warm-up");
  t.columns = {{"module"},         {"resolution"},     {"width", "", false}, {"height", "", false},
               {"dtype"},          {"median_ms", "median (ms)"}, {"min_ms", "min (ms)"},
               {"ratio_to_self_attention", "median / self-attention's"},
               {"gflop", "GFLOP (complete)"}, {"flop_ratio_to_self_attention", "GFLOP / self-attention's"},
               {"gflops_per_s", "GFLOP/s"},
               {"planned_mib", "planned (MiB)"}, {"peak_mib", "peak (MiB)"},
               {"planned_bytes", "", false}, {"peak_bytes", "", false}, {"note"}};
  // Ratios against the self-attention cell of the same resolution and dtype.
  std::map<std::pair<std::string, std::string>, const LatencyCell*> self;
  for (const LatencyCell& c : res.cells)
    if ((c.module == "self_attention" || c.module == "denoiser_self_attention") && c.measured)
      self[{c.module + c.resolution.label, c.dtype}] = &c;
  constexpr double kMiB = 1024.0 * 1024.0;
  for (const LatencyCell& c : res.cells) {
    // Modules against self-attention; denoiser steps against the self-attention step.
    const std::string base = c.module.rfind("denoiser_", 0) == 0 ? "denoiser_self_attention" : "self_attention";
    auto it = self.find({base + c.resolution.label, c.dtype});
    const bool ratio = c.measured && it != self.end();
    t.Add({Cell::Str(c.module), Cell::Str(c.resolution.label), Cell::Int(c.resolution.width),
           Cell::Int(c.resolution.height), Cell::Str(c.dtype),
           c.measured ? Cell::Num(c.median_ms, 3) : Cell::Null(), c.measured ? Cell::Num(c.min_ms, 3) : Cell::Null(),
           ratio ? Cell::Num(c.median_ms / it->second->median_ms, 3) : Cell::Null(),
           Cell::Num(static_cast<double>(c.flops) / 1e9, 2),
           ratio ? Cell::Num(static_cast<double>(c.flops) / static_cast<double>(it->second->flops), 3) : Cell::Null(),
           c.measured ? Cell::Num(static_cast<double>(c.flops) / 1e6 / c.median_ms, 1) : Cell::Null(),
           Cell::Num(static_cast<double>(c.planned_bytes) / kMiB, 1),
           c.measured ? Cell::Num(static_cast<double>(c.peak_bytes) / kMiB, 1) : Cell::Null(),
           Cell::Int(c.planned_bytes), c.measured ? Cell::Int(c.peak_bytes) : Cell::Null(), Cell::Str(c.note)});
  }
  for (const std::string& line : WholeStepNotes(res.cells, model)) t.notes.push_back(line);
  t.notes.push_back("planned: arena + parameters + inputs and outputs; peak: the allocator's peak while the module "
                    "was made and run, above what was allocated before");
  t.notes.push_back("the machine may be shared: compare the ratios of one run, and min with median");
  return res;
}

}  // namespace cf::bench
