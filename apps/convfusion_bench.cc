// convfusion-bench: the efficiency harness. Exact FLOPs, planned memory and
// measured latency of self-attention and what replaces it (neighborhood
// attention, the ConvBlock, LinFusion, DiTFastAttn's window attention) inside
// SD1.5, SDXL and PixArt, from the graphs that run (docs/results.md).
//
//   convfusion-bench table1  [--model=LIST] [--method=LIST] [--resolution=LIST] [--na-kernel=13]
//                            [--convblock-kernel=0] [--window=64] [--format=markdown|csv|json] [--out=DIR]
//   convfusion-bench memory  [--model=LIST] [--method=LIST] [--resolution=LIST] [--batch=2] [--dtype=f16] ...
//   convfusion-bench model   [--model=LIST] [--method=LIST] [--resolution=LIST] ...
//   convfusion-bench latency [--device=cpu|cuda] [--resolution=LIST] [--reps=5] [--denoiser] [--modules=LIST]
//                            [--profile] ...
//
// Each subcommand is one function in kSubcommands (apps/bench/*.cc does the
// work); exit codes follow apps/common/cli.h: 2 for a bad command line, 1 for
// a failure at run time.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "apps/bench/common.h"
#include "apps/bench/latency.h"
#include "apps/bench/memory.h"
#include "apps/bench/plot.h"
#include "apps/bench/table1.h"

namespace cf::bench {
namespace {

void AddMethodFlags(cli::App& app, MethodOptions* o) {
  app.Int("--na-kernel", &o->na_kernel, 3, 63, "neighborhood attention's kernel K (odd)");
  app.Int("--convblock-kernel", &o->convblock_kernel, 0, 31,
          "the ConvBlock's kernel K (odd; 0: each layer's released size)");
  app.Int("--window", &o->window, 0, 1 << 20, "DiTFastAttn's band half-width");
}

int CheckMethodFlags(const cli::App& app, const MethodOptions& o) {
  if (o.na_kernel % 2 == 0) return app.UsageError(absl::StrCat("--na-kernel: ", o.na_kernel, " is not odd"));
  if (o.convblock_kernel != 0 && (o.convblock_kernel % 2 == 0 || o.convblock_kernel < 3))
    return app.UsageError(absl::StrCat("--convblock-kernel: ", o.convblock_kernel, " is not 0 or odd in [3, 31]"));
  return -1;
}

int Table1Command(int argc, char** argv) {
  cli::App app(absl::StrCat(kProgram, " table1"),
               "The paper's Table 1: FLOPs of the highest-resolution self-attention module or its replacement "
               "(batch 2, 2 per multiply-add + 1 per bias add) for each model, method and resolution, counted "
               "from the built graph, beside the paper's printed value and the ratio.");
  Selection sel;
  MethodOptions mo;
  OutputFlags out;
  std::string dtype = "f16", graph;
  AddSelectionFlags(app, &sel);
  AddMethodFlags(app, &mo);
  app.Enum("--dtype", &dtype, {"f16", "bf16", "f32"}, "storage dtype of the graph (FLOPs do not depend on it)");
  app.Enum("--graph", &graph, {"text", "dot"},
           "instead of the table, print the module of the first selected model, method and size (text with its "
           "memory plan, or Graphviz dot)");
  AddOutputFlags(app, &out);
  if (const int code = app.Parse(argc, argv); code >= 0) return code;
  if (const int code = CheckSelection(app, &sel); code >= 0) return code;
  if (const int code = CheckMethodFlags(app, mo); code >= 0) return code;
  if (!graph.empty())
    return app.RunBody([&]() -> Status {
      CF_ASSIGN_OR_RETURN(std::string text, ModuleGraphText(sel.model_list[0], sel.method_list[0], mo,
                                                            ResolutionsFor(sel, sel.model_list[0])[0],
                                                            ParseDTypeFlag(dtype), graph == "dot"));
      std::fputs(text.c_str(), stdout);
      return absl::OkStatus();
    });
  return app.RunBody([&]() -> Status {
    std::vector<Table1Cell> cells;
    for (Model m : sel.model_list)
      for (Method method : sel.method_list) {
        std::vector<Resolution> sizes = ResolutionsFor(sel, m);
        if (sel.resolutions == "paper")  // where the paper printed a row at another size, that size too
          for (const Resolution& r : PaperExtraResolutions(m, method)) sizes.push_back(r);
        for (const Resolution& r : sizes) {
          CF_ASSIGN_OR_RETURN(Table1Cell c, CountTable1(m, method, mo, r, ParseDTypeFlag(dtype)));
          cells.push_back(std::move(c));
        }
      }
    const Table t = Table1(cells);
    return Emit(out, {t}, out.out.empty() ? std::vector<Plot>{} : Table1Plots(cells));
  });
}

int MemoryCommand(int argc, char** argv) {
  cli::App app(absl::StrCat(kProgram, " memory"),
               "The memory planner's figures for one denoiser step (forward) and one distillation training step "
               "(teacher forward + student forward and backward, only the ConvBlocks trainable). Fails when an "
               "arena exceeds 1.05x its lower bound.");
  Selection sel;
  sel.models = "sd15";
  sel.methods = "self_attention,convblock";
  sel.resolutions = "512";
  MethodOptions mo;
  OutputFlags out;
  MemoryFlags mf;
  AddSelectionFlags(app, &sel);
  AddMethodFlags(app, &mo);
  app.Int("--batch", &mf.batch, 1, 1024, "batch (2: classifier-free guidance)");
  app.Enum("--dtype", &mf.dtype, {"f16", "bf16", "f32"}, "storage dtype");
  app.Enum("--pass", &mf.pass, {"both", "forward", "training"}, "which step to plan");
  app.Double("--max-arena-ratio", &mf.max_ratio, cli::Interval::AboveUpTo(0, 100),
             "fail when an arena exceeds this many times its lower bound");
  AddOutputFlags(app, &out);
  if (const int code = app.Parse(argc, argv); code >= 0) return code;
  if (const int code = CheckSelection(app, &sel); code >= 0) return code;
  if (const int code = CheckMethodFlags(app, mo); code >= 0) return code;
  return app.RunBody([&]() -> Status {
    CF_ASSIGN_OR_RETURN(Table t, MemoryTable(sel, mo, mf));
    return Emit(out, {t});
  });
}

int ModelCommand(int argc, char** argv) {
  cli::App app(absl::StrCat(kProgram, " model"),
               "Whole-denoiser figures per step: FLOPs by module type (convolutions, self-attention or its "
               "replacement, cross-attention, feed-forward, norms, other), parameters and planned memory, for "
               "each model, method and resolution.");
  Selection sel;
  sel.models = "sd15";
  sel.resolutions = "512,1024";
  MethodOptions mo;
  OutputFlags out;
  MemoryFlags mf;
  AddSelectionFlags(app, &sel);
  AddMethodFlags(app, &mo);
  app.Int("--batch", &mf.batch, 1, 1024, "batch (2: classifier-free guidance)");
  app.Enum("--dtype", &mf.dtype, {"f16", "bf16", "f32"}, "storage dtype");
  AddOutputFlags(app, &out);
  if (const int code = app.Parse(argc, argv); code >= 0) return code;
  if (const int code = CheckSelection(app, &sel); code >= 0) return code;
  if (const int code = CheckMethodFlags(app, mo); code >= 0) return code;
  return app.RunBody([&]() -> Status {
    CF_ASSIGN_OR_RETURN(Table t, ModelTable(sel, mo, mf));
    return Emit(out, {t});
  });
}

int LatencyCommand(int argc, char** argv) {
  cli::App app(absl::StrCat(kProgram, " latency"),
               "The paper's Table 2: the time of one module (self-attention, neighborhood K=13, ConvBlock K=13 and "
               "K=25, LinFusion, window attention) at the highest-resolution layer of a model, median of --reps "
               "runs after warm-up, with ratios to self-attention and the peak memory beside the planned.");
  LatencyFlags lf;
  OutputFlags out;
  app.Enum("--model", &lf.model, {"sd15", "sdxl", "pixart"}, "whose highest-resolution layer");
  app.String("--resolution", &lf.resolutions, "LIST",
             "comma list of 512, 1024, 2K, 4K or WIDTHxHEIGHT (default: 512 on cpu, 512,1024,2K,4K on cuda)");
  app.Enum("--device", &lf.device, {"cpu", "cuda"}, "cpu: steady clock; cuda: CUDA events and CUDA Graph replay");
  app.String("--dtype", &lf.dtypes, "LIST", "comma list of f32, f16, bf16 (default: f32 on cpu, f16,bf16 on cuda)");
  app.Int("--reps", &lf.reps, 5, 1000, "timed runs per cell (the median is reported)");
  app.Int("--warmup", &lf.warmup, 1, 100, "untimed runs first");
  app.Double("--max-seconds", &lf.max_seconds, cli::Interval::AboveUpTo(0, 3600),
             "skip a cell whose warm-up run takes longer than this");
  app.Flag("--denoiser", &lf.denoiser, "also time a whole denoiser step with self-attention and with ConvBlocks");
  app.String("--modules", &lf.modules, "LIST",
             absl::StrCat("comma list of ", absl::StrJoin(LatencyModuleNames(), ", "),
                          " (default: the Table 2 modules; --denoiser adds the two steps)"));
  app.Flag("--profile", &lf.profile,
           "bracket the timed runs with cudaProfilerStart/Stop and an NVTX range per run (docs/profiling.md)");
  AddOutputFlags(app, &out);
  if (const int code = app.Parse(argc, argv); code >= 0) return code;
  if (lf.resolutions.empty()) lf.resolutions = lf.device == "cuda" ? "512,1024,2K,4K" : "512";
  for (const std::string& r : std::vector<std::string>(absl::StrSplit(lf.resolutions, ','))) {
    auto parsed = ParseResolution(r, ParseModelName(lf.model));
    if (!parsed.ok()) return app.UsageError(absl::StrCat("--resolution: ", parsed.status().message()));
  }
  for (const std::string& m : std::vector<std::string>(absl::StrSplit(lf.modules, ',', absl::SkipEmpty()))) {
    const std::vector<std::string> names = LatencyModuleNames();
    if (std::find(names.begin(), names.end(), m) == names.end())
      return app.UsageError(absl::StrCat("--modules: '", m, "' is not one of ", absl::StrJoin(names, ", ")));
  }
  if (!lf.dtypes.empty())
    for (const std::string& d : std::vector<std::string>(absl::StrSplit(lf.dtypes, ',')))
      if (d != "f32" && d != "f16" && d != "bf16")
        return app.UsageError(absl::StrCat("--dtype: '", d, "' is not one of f32, f16, bf16"));
  return app.RunBody([&]() -> Status {
    CF_ASSIGN_OR_RETURN(LatencyResult r, RunLatency(lf));
    return Emit(out, {r.table}, out.out.empty() ? std::vector<Plot>{} : LatencyPlots(r));
  });
}

const std::vector<cli::Subcommand> kSubcommands = {
    {"table1", "the paper's Table 1: FLOPs of the highest-resolution attention module, ours beside the paper's",
     Table1Command},
    {"memory", "planned memory of a denoiser step and of a distillation training step", MemoryCommand},
    {"model", "whole-denoiser FLOPs by module type, parameters and planned memory", ModelCommand},
    {"latency", "the paper's Table 2: time of one module, median of repeated runs, on the CPU or a GPU",
     LatencyCommand},
};

std::string TopHelp() {
  return cli::SubcommandHelp(kProgram,
                             absl::StrCat("The efficiency harness: FLOPs, memory and latency of self-attention and its "
                                          "replacements in SD1.5, SDXL and PixArt, from the graphs that run.\nUsage: ",
                                          kProgram, " SUBCOMMAND [flags]\n"),
                             kSubcommands, 8);
}

int Main(int argc, char** argv) { return cli::Dispatch(kProgram, kSubcommands, TopHelp(), argc, argv); }

}  // namespace
}  // namespace cf::bench

int main(int argc, char** argv) { return cf::bench::Main(argc, argv); }
