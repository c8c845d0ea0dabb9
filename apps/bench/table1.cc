// apps/bench/table1.h.
#include "apps/bench/table1.h"

#include <cmath>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "graph/accounting.h"
#include "graph/planner.h"

namespace cf::bench {

namespace {

// ConvFusion paper, Table 1 ("Mean FLOPs (G)"), at 512, 1024, 2K, 4K, 8K, 16K.
// PixArt's 2K is 2048x2048 in its self-attention and DiTFastAttn rows and
// 2560x1440 in its LinFusion and ConvFusion rows (each row fits only that
// size; docs/results.md).
struct PaperRow {
  std::vector<double> gflops;
  bool pixart_2k_square = false;
};
const std::map<std::pair<Model, Method>, PaperRow>& PaperTable1() {
  static const auto* t = new std::map<std::pair<Model, Method>, PaperRow>{
      {{Model::kPixArt, Method::kSelfAttention}, {{31.42, 241.63, 2821.94, 11741.69, 157546.49, 2487706.88}, true}},
      {{Model::kPixArt, Method::kDitFastAttn}, {{30.41, 207.62, 2125.26, 8717.07, 115012.85, 1807168.71}, true}},
      {{Model::kPixArt, Method::kLinFusion}, {{55.07, 220.29, 774.46, 1858.72, 6970.18, 27880.73}}},
      {{Model::kPixArt, Method::kConvBlock}, {{8.43, 34.86, 122.54, 294.10, 1102.85, 4411.40}}},
      {{Model::kSd15, Method::kSelfAttention}, {{49.67, 714.08, 8587.98, 49149.21, 688821.39, 11010934.11}}},
      {{Model::kSd15, Method::kLinFusion}, {{17.03, 68.11, 239.43, 574.64, 2154.89, 8619.54}}},
      {{Model::kSd15, Method::kConvBlock}, {{2.82, 12.56, 44.14, 105.94, 397.27, 1589.10}}},
  };
  return *t;
}

// C of the module at `scope`: the length of its output projection's bias.
int64_t ChannelsOf(const Graph& g, const std::string& scope) {
  for (const ValueInfo& v : g.values())
    if (v.kind == ValueKind::kParameter &&
        (v.name == scope + ".to_out.0.bias" || v.name == scope + ".conv_pool.bias"))
      return v.type.shape.dim(0);
  return 0;
}

}  // namespace

std::optional<double> PaperTable1Gflops(Model m, Method method, const Resolution& r) {
  auto it = PaperTable1().find({m, method});
  if (it == PaperTable1().end()) return std::nullopt;
  std::vector<Resolution> sizes = PaperResolutions(m);
  if (it->second.pixart_2k_square) sizes[2] = PaperPixArt2K();
  for (size_t i = 0; i < sizes.size(); ++i)
    if (sizes[i].width == r.width && sizes[i].height == r.height) return it->second.gflops[i];
  return std::nullopt;
}

Resolution PaperPixArt2K() { return {"2K (2048x2048)", 2048, 2048}; }

std::vector<Resolution> PaperExtraResolutions(Model m, Method method) {
  auto it = PaperTable1().find({m, method});
  if (it != PaperTable1().end() && it->second.pixart_2k_square) return {PaperPixArt2K()};
  return {};
}

StatusOr<Table1Cell> CountTable1(Model m, Method method, const MethodOptions& o, const Resolution& r, DType dtype) {
  BuildSpec spec;
  spec.model = m;
  spec.method = method;
  spec.options = o;
  spec.resolution = r;
  spec.dtype = dtype;
  Graph g;
  Builder b(&g);
  Table1Cell cell;
  cell.model = m;
  cell.method = method;
  cell.resolution = r;
  CF_ASSIGN_OR_RETURN(Value y, BuildDenoiser(b, spec));
  (void)y;
  CF_ASSIGN_OR_RETURN(CostReport report, Account(g, {.pass = Pass::kForward}));
  CF_ASSIGN_OR_RETURN(const ScopeCost* s, report.HighestResolution(MixerGlob(method)));
  cell.scope = s->path;
  cell.tokens = s->tokens;
  cell.channels = ChannelsOf(g, s->path);
  cell.table1_flops = s->cost.table1_flops();
  cell.complete_flops = s->cost.total_flops();
  // What was built there: the kernel of a ConvBlock is the depthwise weight's size.
  cell.choice = ChoiceFor(method, o).ToString();
  if (method == Method::kConvBlock)
    for (const ValueInfo& v : g.values())
      if (v.kind == ValueKind::kParameter && v.name == s->path + ".gates.0.conv_spatial.weight")
        cell.choice = absl::StrCat("convblock:", v.type.shape.dim(0));
  cell.paper_gflops = PaperTable1Gflops(m, method, r);
  if (m == Model::kSd15 && method == Method::kSelfAttention) {
    // The paper's rows are 2(8NC^2 + 4N^2C + 4NC): bias adds on all four
    // projections. SD1.5's to_q, to_k and to_v have none.
    const double missing = 2.0 * 3.0 * static_cast<double>(cell.tokens) * static_cast<double>(cell.channels);
    cell.note = absl::StrFormat(
        "the paper counts bias adds on to_q/to_k/to_v, which SD1.5 lacks: ours + 2*3*N*C = %.2f G",
        (static_cast<double>(cell.table1_flops) + missing) / 1e9);
  }
  if (m == Model::kPixArt && r.width == 2048 && r.height == 2048 && cell.paper_gflops)
    cell.note = "the paper's PixArt 2K value in this row is 2048x2048 (its other rows' 2K is 2560x1440)";
  else if (m == Model::kPixArt && r.label == "2K" && !PaperExtraResolutions(m, method).empty())
    cell.note = "the paper's 2K value in this row was computed at 2048x2048: see the 2K (2048x2048) row";
  return cell;
}

Table Table1(const std::vector<Table1Cell>& cells) {
  Table t;
  t.name = "table1";
  t.title =
      "Table 1: FLOPs of the highest-resolution self-attention module or its replacement (batch 2, 2 per "
      "multiply-add + 1 per bias add), counted from the built graph";
  t.columns = {{"model"},       {"method"},       {"resolution"},
               {"width"},       {"height"},       {"tokens", "N"},
               {"flops_g", "GFLOP (ours)"},       {"paper_flops_g", "GFLOP (paper)"},
               {"ratio", "ours / paper"},         {"choice", "built"},
               {"channels", "C"},                 {"complete_flops_g", "complete GFLOP"},
               {"table1_flops", "", false},       {"scope", "", false},
               {"counted_in", "", false},         {"note"}};
  for (const Table1Cell& c : cells) {
    const double ours = static_cast<double>(c.table1_flops) / 1e9;
    t.Add({Cell::Str(ModelName(c.model)), Cell::Str(MethodName(c.method)), Cell::Str(c.resolution.label),
           Cell::Int(c.resolution.width), Cell::Int(c.resolution.height), Cell::Int(c.tokens), Cell::Num(ours),
           c.paper_gflops ? Cell::Num(*c.paper_gflops) : Cell::Null(),
           c.paper_gflops ? Cell::Num(ours / *c.paper_gflops, 4) : Cell::Null(), Cell::Str(c.choice),
           Cell::Int(c.channels), Cell::Num(static_cast<double>(c.complete_flops) / 1e9), Cell::Int(c.table1_flops),
           Cell::Str(c.scope), Cell::Str("denoiser"), Cell::Str(c.note)});
  }
  t.notes.push_back(
      "ours: the scope with the most tokens among the method's modules (graph/accounting.h HighestResolution); "
      "the paper's value is ConvFusion paper, Table 1; docs/results.md explains each ratio");
  return t;
}

StatusOr<std::string> ModuleGraphText(Model m, Method method, const MethodOptions& o, const Resolution& r, DType dtype,
                                      bool dot) {
  BuildSpec spec;
  spec.model = m;
  spec.method = method;
  spec.options = o;
  spec.resolution = r;
  spec.dtype = dtype;
  Graph g;
  Builder b(&g);
  CF_ASSIGN_OR_RETURN(ModuleInfo info, BuildModule(b, spec));
  (void)info;
  if (dot) return g.ToDot();
  CF_ASSIGN_OR_RETURN(MemoryPlan plan, PlanMemory(g));
  return absl::StrCat(g.ToText(), "# memory plan: ", plan.ToString(), "\n");
}

}  // namespace cf::bench
