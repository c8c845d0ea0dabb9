// apps/bench/memory.h.
#include "apps/bench/memory.h"

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "graph/accounting.h"
#include "graph/autodiff.h"
#include "graph/passes/pass.h"
#include "graph/planner.h"
#include "ops/elementwise/elementwise.h"
#include "ops/loss/loss.h"

namespace cf::bench {

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// The plan of what the executor runs: g after the graph passes with the
// default options (PassOptions::None() under --no-fuse, so the built graph).
// The passes keep the accounting exact, so FLOPs are read from g itself.
StatusOr<MemoryPlan> PlanExecuted(const Graph& g) {
  CF_ASSIGN_OR_RETURN(Graph run, OptimizeGraph(g, DefaultPassOptions()));
  return PlanMemory(run);
}

struct Planned {
  MemoryPlan plan;
  int64_t param_bytes = 0;  // the step's parameters (a teacher and student share the frozen ones)
  int64_t params = 0;
  std::string counted_in;   // "denoiser", "module", "teacher+student"
};

StatusOr<Planned> PlanForward(const BuildSpec& s) {
  Graph g;
  Builder b(&g);
  Planned p;
  CF_ASSIGN_OR_RETURN(Value y, BuildDenoiser(b, s));
  (void)y;
  p.counted_in = "denoiser";
  CF_ASSIGN_OR_RETURN(p.plan, PlanExecuted(g));
  p.param_bytes = p.plan.parameter_bytes;
  for (const ValueInfo& v : g.values())
    if (v.kind == ValueKind::kParameter) p.params += v.type.shape.numel();
  return p;
}

// One distillation step: the teacher (self-attention, no gradients) and the
// student (ConvBlocks) on the same inputs, loss = MSE(eps_s, noise) +
// MSE(eps_s, eps_t), gradients for the student's ConvBlock parameters only.
// The graph holds two copies of the frozen weights; the real step shares
// them, so param_bytes counts the teacher's plus the student's ConvBlocks.
StatusOr<Planned> PlanTraining(const BuildSpec& s) {
  Graph g;
  Builder b(&g);
  CF_ASSIGN_OR_RETURN(DenoiserInputs in, DenoiserGraphInputs(b, s));
  BuildSpec teacher = s, student = s;
  teacher.method = Method::kSelfAttention;
  teacher.params.frozen = true;
  student.method = Method::kConvBlock;
  Value eps_t, eps_s;
  {
    auto sc = b.scope("teacher");
    CF_ASSIGN_OR_RETURN(eps_t, BuildDenoiserOn(b, teacher, in));
  }
  {
    auto sc = b.scope("student");
    CF_ASSIGN_OR_RETURN(eps_s, BuildDenoiserOn(b, student, in));
  }
  Value noise = b.Input("noise", eps_s.shape(), s.dtype);  // PixArt: its 8 output channels
  Value loss = Add(MseLoss(eps_s, noise), MseLoss(eps_s, eps_t));
  std::vector<Value> wrt;
  Planned p;
  for (const ValueInfo& v : g.values()) {
    if (v.kind != ValueKind::kParameter) continue;
    // A transformer block's conv1 (a resnet has a conv1 too).
    const bool convblock = absl::StartsWith(v.name, "student.") && absl::StrContains(v.name, "transformer_blocks.") &&
                           absl::StrContains(v.name, ".conv1.");
    if (convblock) wrt.push_back(b.Wrap(v.id));
    if (convblock || absl::StartsWith(v.name, "teacher.")) {
      p.param_bytes += v.type.bytes();
      p.params += v.type.shape.numel();
    }
  }
  CF_ASSIGN_OR_RETURN(std::vector<Value> grads, Grad(b, loss, wrt));
  b.MarkOutput(loss, "loss");
  for (size_t i = 0; i < grads.size(); ++i) b.MarkOutput(grads[i], absl::StrCat("grad.", g.value(wrt[i].id).name));
  CF_RETURN_IF_ERROR(b.status());
  CF_ASSIGN_OR_RETURN(p.plan, PlanExecuted(g));
  p.counted_in = "teacher+student";
  return p;
}

Status CheckRatio(const BuildSpec& s, const std::string& pass, const MemoryPlan& plan, double max_ratio) {
  if (plan.ratio() <= max_ratio) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrFormat(
      "planner: %s %s %s (%dx%d) %s step: arena %d bytes is %.4fx its lower bound %d (more than %.2fx; strategy %s)",
      ModelName(s.model), MethodName(s.method), s.resolution.label, s.resolution.width, s.resolution.height, pass,
      plan.arena_bytes, plan.ratio(), plan.lower_bound_bytes, max_ratio, plan.strategy));
}

BuildSpec Spec(Model m, Method method, const MethodOptions& mo, const Resolution& r, const MemoryFlags& f) {
  BuildSpec s;
  s.model = m;
  s.method = method;
  s.options = mo;
  s.resolution = r;
  s.batch = f.batch;
  s.dtype = ParseDTypeFlag(f.dtype);
  return s;
}

}  // namespace

StatusOr<Table> MemoryTable(const Selection& sel, const MethodOptions& mo, const MemoryFlags& f) {
  Table t;
  t.name = "memory";
  t.title = absl::StrCat("Planned memory (graph/planner.h), batch ", f.batch, ", ", f.dtype,
                         ": one denoiser step (forward) and one distillation training step");
  t.columns = {{"model"},
               {"method"},
               {"resolution"},
               {"width"},
               {"height"},
               {"pass"},
               {"arena_gib", "arena (GiB)"},
               {"ratio", "arena / lower bound"},
               {"no_reuse_gib", "no reuse (GiB)"},
               {"param_gib", "params (GiB)"},
               {"arena_bytes", "", false},
               {"lower_bound_bytes", "", false},
               {"no_reuse_bytes", "", false},
               {"param_bytes", "", false},
               {"workspace_bytes", "", false},
               {"io_bytes", "", false},
               {"parameters", "", false},
               {"counted_in", "graph"}};
  bool training_done = false;
  for (Model m : sel.model_list)
    for (const Resolution& r : ResolutionsFor(sel, m)) {
      std::vector<std::pair<std::string, BuildSpec>> work;
      if (f.pass != "training")
        for (Method method : sel.method_list) work.push_back({"forward", Spec(m, method, mo, r, f)});
      if (f.pass != "forward")
        work.push_back({"training", Spec(m, Method::kConvBlock, mo, r, f)});
      for (const auto& [pass, s] : work) {
        Progress(absl::StrCat("memory: ", ModelName(m), " ", pass == "training" ? "distillation" : MethodName(s.method),
                              " ", r.label, " ", pass));
        CF_ASSIGN_OR_RETURN(Planned p, pass == "forward" ? PlanForward(s) : PlanTraining(s));
        CF_RETURN_IF_ERROR(CheckRatio(s, pass, p.plan, f.max_ratio));
        training_done |= pass == "training";
        const MemoryPlan& pl = p.plan;
        t.Add({Cell::Str(ModelName(m)), Cell::Str(pass == "training" ? "distill_convblock" : MethodName(s.method)),
               Cell::Str(r.label), Cell::Int(r.width), Cell::Int(r.height), Cell::Str(pass),
               Cell::Num(static_cast<double>(pl.arena_bytes) / kGiB, 3), Cell::Num(pl.ratio(), 4),
               Cell::Num(static_cast<double>(pl.no_reuse_bytes) / kGiB, 3),
               Cell::Num(static_cast<double>(p.param_bytes) / kGiB, 3), Cell::Int(pl.arena_bytes),
               Cell::Int(pl.lower_bound_bytes), Cell::Int(pl.no_reuse_bytes), Cell::Int(p.param_bytes),
               Cell::Int(pl.workspace_bytes), Cell::Int(pl.io_bytes), Cell::Int(p.params), Cell::Str(p.counted_in)});
      }
    }
  t.notes.push_back(absl::StrCat("every arena is within ", f.max_ratio,
                                 "x of its lower bound (the most bytes live at one time); the run fails otherwise"));
  t.notes.push_back("workspace_bytes is backend scratch (cuBLASLt, cuDNN), known only after a run on a device: 0 in a plan");
  if (training_done)
    t.notes.push_back("training: teacher (self-attention, frozen) + student (released ConvBlocks) forward, "
                      "MSE(eps_s, noise) + MSE(eps_s, eps_t), backward for the ConvBlocks only; param_bytes counts "
                      "the shared frozen weights once (the graph holds two copies)");
  return t;
}

const char* ModuleType(const std::string& scope, const std::string& op) {
  if (absl::StrContains(scope, ".attn1") || absl::StrContains(scope, ".conv1") ||
      absl::StartsWith(scope, "attn1") || absl::StartsWith(scope, "conv1")) {
    // attn1 / conv1 inside a transformer block (resnets have conv1 too).
    if (absl::StrContains(scope, "transformer_blocks.")) return "self_attention";
  }
  if (absl::StrContains(scope, "transformer_blocks.")) {
    if (absl::StrContains(scope, ".attn2")) return "cross_attention";
    if (absl::StrContains(scope, ".ff")) return "feed_forward";
  }
  if (op == "group_norm" || op == "layer_norm" || op == "rms_norm" || op == "adaln_modulate") return "norms";
  if (op == "conv2d") return "convolutions";
  return "other";
}

StatusOr<Table> ModelTable(const Selection& sel, const MethodOptions& mo, const MemoryFlags& f) {
  static const char* kTypes[] = {"convolutions", "self_attention", "cross_attention", "feed_forward", "norms", "other"};
  Table t;
  t.name = "model";
  t.title = absl::StrCat("One whole denoiser step, batch ", f.batch, ", ", f.dtype,
                         ": GFLOP by module type (complete count), parameters, planned memory");
  t.columns = {{"model"}, {"method"}, {"resolution"}, {"width"}, {"height"}};
  for (const char* type : kTypes) t.columns.push_back({absl::StrCat(type, "_g"), type});
  t.columns.insert(t.columns.end(), {{"total_g", "total"},
                                     {"vs_self_attention", "total / self-attention's"},
                                     {"table1_total_g", "Table-1 convention total"},
                                     {"parameters"},
                                     {"arena_gib", "arena (GiB)"},
                                     {"arena_bytes", "", false},
                                     {"lower_bound_bytes", "", false},
                                     {"param_bytes", "", false}});
  for (Model m : sel.model_list) {
    for (const Resolution& r : ResolutionsFor(sel, m)) {
      std::optional<double> self_total;
      for (Method method : sel.method_list) {
        Progress(absl::StrCat("model: ", ModelName(m), " ", MethodName(method), " ", r.label));
        const BuildSpec s = Spec(m, method, mo, r, f);
        Graph g;
        Builder b(&g);
        CF_ASSIGN_OR_RETURN(Value y, BuildDenoiser(b, s));
        (void)y;
        std::map<std::string, double> by_type;
        int64_t table1 = 0, total = 0;
        for (const Node& n : g.nodes()) {
          by_type[ModuleType(n.scope, n.op->name)] += static_cast<double>(n.cost.total_flops());
          table1 += n.cost.table1_flops();
          total += n.cost.total_flops();
        }
        int64_t params = 0;
        for (const ValueInfo& v : g.values())
          if (v.kind == ValueKind::kParameter) params += v.type.shape.numel();
        CF_ASSIGN_OR_RETURN(MemoryPlan plan, PlanExecuted(g));
        CF_RETURN_IF_ERROR(CheckRatio(s, "forward", plan, f.max_ratio));
        if (method == Method::kSelfAttention) self_total = static_cast<double>(total);
        std::vector<Cell> row = {Cell::Str(ModelName(m)), Cell::Str(MethodName(method)), Cell::Str(r.label),
                                 Cell::Int(r.width), Cell::Int(r.height)};
        for (const char* type : kTypes) row.push_back(Cell::Num(by_type[type] / 1e9));
        row.push_back(Cell::Num(static_cast<double>(total) / 1e9));
        row.push_back(self_total ? Cell::Num(static_cast<double>(total) / *self_total, 4) : Cell::Null());
        row.push_back(Cell::Num(static_cast<double>(table1) / 1e9));
        row.push_back(Cell::Int(params));
        row.push_back(Cell::Num(static_cast<double>(plan.arena_bytes) / kGiB, 3));
        row.push_back(Cell::Int(plan.arena_bytes));
        row.push_back(Cell::Int(plan.lower_bound_bytes));
        row.push_back(Cell::Int(plan.parameter_bytes));
        t.Add(std::move(row));
      }
    }
  }
  t.notes.push_back("module types by scope: attn1 / conv1 of a transformer block (self-attention or its "
                    "replacement), attn2, ff; then by op: group/layer norm, conv2d; the rest is other (projections "
                    "in and out, time embedding, residual adds, up/down sampling)");
  t.notes.push_back("total / self-attention's compares with the self_attention row above it (select it with --method)");
  return t;
}

}  // namespace cf::bench
