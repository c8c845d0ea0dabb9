// `convfusion-bench table1`: the paper's Table 1, the FLOPs of the
// highest-resolution self-attention module (or what replaces it) under the
// paper's convention (2 per multiply-add + 1 per bias add, batch 2), counted
// from the built graph, beside the paper's printed value (ConvFusion paper,
// Table 1) and the ratio. docs/results.md explains every difference.
#pragma once

#include <optional>
#include <vector>

#include "apps/bench/models.h"
#include "apps/bench/table.h"

namespace cf::bench {

// The paper's printed GFLOPs for a cell, when it prints one (SD1.5 and
// PixArt self-attention, LinFusion and ConvFusion; PixArt DiTFastAttn) at a
// paper resolution of the model (matched by size as well as label).
std::optional<double> PaperTable1Gflops(Model m, Method method, const Resolution& r);
// Sizes besides PaperResolutions(m) at which the paper printed this row's
// values: PixArt's self-attention and DiTFastAttn 2K, which is 2048x2048
// ("2K (2048x2048)"), not 2560x1440.
std::vector<Resolution> PaperExtraResolutions(Model m, Method method);
Resolution PaperPixArt2K();

struct Table1Cell {
  Model model;
  Method method;
  Resolution resolution;
  std::string choice;   // what was built, e.g. "convblock:11"
  std::string scope;    // the module's scope in the graph
  int64_t tokens = 0, channels = 0;
  int64_t table1_flops = 0, complete_flops = 0;
  std::optional<double> paper_gflops;
  std::string note;
};

// One cell: builds the whole denoiser shape-only, accounts it and takes
// HighestResolution of the method's scopes.
StatusOr<Table1Cell> CountTable1(Model m, Method method, const MethodOptions& o, const Resolution& r, DType dtype);

Table Table1(const std::vector<Table1Cell>& cells);

// The module's graph alone (models.h BuildModule): Graph::ToText() with its
// memory plan, or Graphviz dot.
StatusOr<std::string> ModuleGraphText(Model m, Method method, const MethodOptions& o, const Resolution& r, DType dtype,
                                      bool dot);

}  // namespace cf::bench
