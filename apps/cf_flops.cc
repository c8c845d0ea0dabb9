// cf_flops: the paper's Table 1 self-attention rows, counted from real
// graphs. For SD1.5 (C = 320, N = (H/8)(W/8), 8 heads) and PixArt (C = 1152,
// N = (H/16)(W/16), 16 heads) it builds the self-attention module at each
// resolution (shape-only parameters, batch 2 for classifier-free guidance),
// accounts it (graph/accounting.h) and prints our Table-1 FLOPs beside the
// formula 2 * (8NC^2 + 4N^2C + 4NC) and the paper's printed value.
//
//   cf_flops [--model=sd15|pixart|all] [--format=md|csv|json] [--out=FILE]
//            [--dtype=f16|bf16|f32] [--graph=text|dot]
// --graph prints the module's graph at 512x512 (the first model selected)
// as text or Graphviz dot, with its memory plan, instead of the table.
// --out writes FILE atomically (a temporary in its directory, then rename).
//
// See docs/accounting.md.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "apps/common/cli.h"
#include "apps/common/output_file.h"
#include "graph/accounting.h"
#include "graph/builder.h"
#include "graph/planner.h"
#include "ops/elementwise/elementwise.h"
#include "ops/matmul/matmul.h"
#include "ops/reduce/reduce.h"
#include "ops/shape/shape.h"

namespace cf {
namespace {

struct ModelSpec {
  const char* name;    // "sd15", "pixart"
  const char* title;   // for the table
  int64_t channels;    // C at the highest-resolution attention layer
  int heads;
  int64_t downscale;   // pixels per token along each axis (VAE 8 x patch)
  bool qkv_bias;       // SD1.5: only to_out has a bias; PixArt: all four
};

struct Resolution {
  const char* label;
  int64_t width, height;
  double paper_gflops;  // Table 1 of the paper, self-attention row
};

const ModelSpec kSd15{"sd15", "SD1.5", 320, 8, 8, false};
const ModelSpec kPixArt{"pixart", "PixArt", 1152, 16, 16, true};

std::vector<Resolution> ResolutionsFor(const ModelSpec& m) {
  if (std::string(m.name) == kSd15.name) {
    return {{"512", 512, 512, 49.67},          {"1024", 1024, 1024, 714.08},     {"2K", 2560, 1440, 8587.98},
            {"4K", 4096, 2160, 49149.21},      {"8K", 7680, 4320, 688821.39},   {"16K", 15360, 8640, 11010934.11}};
  }
  // The paper's PixArt 2K entry matches 2048x2048, not 2560x1440 (docs/paper-facts.md).
  return {{"512", 512, 512, 31.42},        {"1024", 1024, 1024, 241.63},     {"2K", 2048, 2048, 2821.94},
          {"4K", 4096, 2160, 11741.69},    {"8K", 7680, 4320, 157546.49},   {"16K", 15360, 8640, 2487706.88}};
}

// The self-attention module of both models (diffusers' Attention with
// heads = C / head_dim): x [B, N, C] -> [B, N, C].
Value SelfAttention(Builder& b, Value x, const ModelSpec& m) {
  auto scope = b.scope("attn1");
  const int64_t B = x.dim(0), N = x.dim(1), C = x.dim(2), h = m.heads, d = C / h;
  auto linear = [&](const char* name, Value in, bool bias) {
    auto s = b.scope(name);
    Value w = b.Parameter("weight", Shape{C, C}, x.dtype());
    return Linear(in, w, bias ? std::optional<Value>(b.Parameter("bias", Shape{C}, x.dtype())) : std::nullopt);
  };
  auto split_heads = [&](Value t) { return Permute(Reshape(t, {B, N, h, d}), {0, 2, 1, 3}); };  // [B, h, N, d]
  Value q = split_heads(linear("to_q", x, m.qkv_bias));
  Value k = split_heads(linear("to_k", x, m.qkv_bias));
  Value v = split_heads(linear("to_v", x, m.qkv_bias));
  Value scores = Scale(MatMul(q, k, std::nullopt, {.trans_b = true}), 1.0 / std::sqrt(static_cast<double>(d)));
  Value o = MatMul(Softmax(scores), v);                            // [B, h, N, d]
  o = Reshape(Permute(o, {0, 2, 1, 3}), {B, N, C});                // [B, N, C]
  return linear("to_out", o, /*bias=*/true);
}

struct RowResult {
  std::string model, label;
  int64_t width = 0, height = 0, tokens = 0, channels = 0;
  int heads = 0;
  int64_t table1 = 0, formula = 0, complete = 0, bytes = 0, arena = 0, params = 0;
  double paper_gflops = 0;
};

// The module's graph at one resolution, parameters by shape only.
Status BuildModule(const ModelSpec& m, const Resolution& r, DType dtype, Graph* g) {
  const int64_t n = (r.width / m.downscale) * (r.height / m.downscale), c = m.channels;
  Builder b(g);
  auto s = b.scope(m.name);
  Value x = b.Input("x", Shape{2, n, c}, dtype);  // batch 2: classifier-free guidance
  b.MarkOutput(SelfAttention(b, x, m), "y");
  return b.status();
}

StatusOr<RowResult> Count(const ModelSpec& m, const Resolution& r, DType dtype) {
  const int64_t n = (r.width / m.downscale) * (r.height / m.downscale), c = m.channels;
  Graph g;
  CF_RETURN_IF_ERROR(BuildModule(m, r, dtype, &g));
  CF_ASSIGN_OR_RETURN(CostReport report, Account(g));
  CF_ASSIGN_OR_RETURN(const ScopeCost* attn, report.HighestResolution("*.attn1"));
  CF_ASSIGN_OR_RETURN(MemoryPlan plan, PlanMemory(g));
  RowResult row;
  row.model = m.title;
  row.label = r.label;
  row.width = r.width;
  row.height = r.height;
  row.tokens = attn->tokens;
  row.channels = c;
  row.heads = m.heads;
  row.table1 = attn->cost.table1_flops();
  row.formula = 2 * (8 * n * c * c + 4 * n * n * c + 4 * n * c);
  row.complete = attn->cost.total_flops();
  row.bytes = attn->cost.bytes_read + attn->cost.bytes_written;
  row.arena = plan.arena_bytes;
  row.params = attn->params;
  row.paper_gflops = r.paper_gflops;
  return row;
}

std::string ResolutionText(const RowResult& r) { return absl::StrCat(r.label, " (", r.width, "x", r.height, ")"); }

std::string Markdown(const std::vector<RowResult>& rows, DType dtype) {
  std::string s = absl::StrCat(
      "Self-attention (one module, batch 2 for CFG, ", DTypeName(dtype),
      "): Table-1 convention = 2 FLOPs per multiply-add + 1 per bias add; formula = 2(8NC^2 + 4N^2C + 4NC)\n\n",
      "| model | resolution | N | Table-1 GFLOP (ours) | formula GFLOP | ours / formula | paper GFLOP | "
      "ours / paper | complete GFLOP | bytes moved (GB) | arena (GiB) |\n",
      "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const RowResult& r : rows) {
    const double ours = static_cast<double>(r.table1), formula = static_cast<double>(r.formula);
    absl::StrAppend(&s, absl::StrFormat("| %s | %s | %d | %.2f | %.2f | %.6f | %.2f | %.6f | %.2f | %.2f | %.3f |\n",
                                        r.model, ResolutionText(r), r.tokens, ours / 1e9, formula / 1e9, ours / formula,
                                        r.paper_gflops, ours / 1e9 / r.paper_gflops,
                                        static_cast<double>(r.complete) / 1e9, static_cast<double>(r.bytes) / 1e9,
                                        static_cast<double>(r.arena) / (1024.0 * 1024.0 * 1024.0)));
  }
  return s;
}

std::string Csv(const std::vector<RowResult>& rows) {
  std::string s =
      "model,resolution,width,height,tokens,channels,heads,table1_flops,formula_flops,ratio,paper_gflops,"
      "ratio_paper,complete_flops,bytes_moved,arena_bytes,params\n";
  for (const RowResult& r : rows) {
    absl::StrAppend(&s, absl::StrFormat("%s,%s,%d,%d,%d,%d,%d,%d,%d,%.9f,%.2f,%.9f,%d,%d,%d,%d\n", r.model, r.label,
                                        r.width, r.height, r.tokens, r.channels, r.heads, r.table1, r.formula,
                                        static_cast<double>(r.table1) / static_cast<double>(r.formula),
                                        r.paper_gflops, static_cast<double>(r.table1) / 1e9 / r.paper_gflops,
                                        r.complete, r.bytes, r.arena, r.params));
  }
  return s;
}

std::string Json(const std::vector<RowResult>& rows, DType dtype) {
  JsonWriter j;
  j.BeginObject();
  j.Key("what").String("self-attention, one module, batch 2 (CFG), Table-1 convention: 2 per MAC + 1 per bias add");
  j.Key("dtype").String(DTypeName(dtype));
  j.Key("rows").BeginArray();
  for (const RowResult& r : rows) {
    j.BeginObject();
    j.Key("model").String(r.model).Key("resolution").String(r.label);
    j.Key("width").Int(r.width).Key("height").Int(r.height).Key("tokens").Int(r.tokens);
    j.Key("channels").Int(r.channels).Key("heads").Int(r.heads);
    j.Key("table1_flops").Int(r.table1).Key("formula_flops").Int(r.formula);
    j.Key("ratio").Double(static_cast<double>(r.table1) / static_cast<double>(r.formula));
    j.Key("paper_gflops").Double(r.paper_gflops);
    j.Key("ratio_paper").Double(static_cast<double>(r.table1) / 1e9 / r.paper_gflops);
    j.Key("complete_flops").Int(r.complete).Key("bytes_moved").Int(r.bytes).Key("arena_bytes").Int(r.arena);
    j.Key("params").Int(r.params);
    j.EndObject();
  }
  j.EndArray().EndObject();
  return j.str() + "\n";
}

struct Options {
  std::string model = "all", format = "md", out, dtype = "f16", graph;
};

Status Main(const Options& o) {
  // The flags' values were checked by the parser (cf::cli::App::Enum).
  std::vector<ModelSpec> models;
  if (o.model == "sd15" || o.model == "all") models.push_back(kSd15);
  if (o.model == "pixart" || o.model == "all") models.push_back(kPixArt);
  const DType dtype = o.dtype == "bf16" ? DType::bf16 : o.dtype == "f32" ? DType::f32 : DType::f16;

  if (!o.graph.empty()) {
    Graph g;
    CF_RETURN_IF_ERROR(BuildModule(models[0], ResolutionsFor(models[0])[0], dtype, &g));
    std::string text;
    if (o.graph == "dot") {
      text = g.ToDot();
    } else {
      CF_ASSIGN_OR_RETURN(MemoryPlan plan, PlanMemory(g));
      text = absl::StrCat(g.ToText(), "# memory plan: ", plan.ToString(), "\n");
    }
    if (o.out.empty()) {
      std::fputs(text.c_str(), stdout);
      return absl::OkStatus();
    }
    return cli::WriteFileAtomic(o.out, text);
  }

  std::vector<RowResult> rows;
  for (const ModelSpec& m : models) {
    for (const Resolution& r : ResolutionsFor(m)) {
      CF_ASSIGN_OR_RETURN(RowResult row, Count(m, r, dtype));
      rows.push_back(std::move(row));
    }
  }
  const std::string text =
      o.format == "md" ? Markdown(rows, dtype) : o.format == "csv" ? Csv(rows) : Json(rows, dtype);
  if (o.out.empty()) {
    std::fputs(text.c_str(), stdout);
    return absl::OkStatus();
  }
  return cli::WriteFileAtomic(o.out, text);
}

}  // namespace
}  // namespace cf

int main(int argc, char** argv) {
  cf::cli::App app("cf_flops",
                   "The paper's Table 1 self-attention rows (SD1.5 and PixArt, 512 to 16K), counted from real graphs "
                   "(docs/accounting.md). --graph prints the module's graph at 512x512 and its memory plan instead.");
  cf::Options o;
  app.Enum("--model", &o.model, {"sd15", "pixart", "all"}, "which model's rows");
  app.Enum("--format", &o.format, {"md", "csv", "json"}, "table format");
  app.String("--out", &o.out, "FILE", "write to FILE (atomically) instead of stdout");
  app.Enum("--dtype", &o.dtype, {"f16", "bf16", "f32"}, "storage dtype of the module");
  app.Enum("--graph", &o.graph, {"text", "dot"}, "print the graph of the first model at 512x512 (text or Graphviz dot)");
  return app.Run(argc, argv, [&] { return cf::Main(o); });
}
