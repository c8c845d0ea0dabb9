// Shared by the convfusion-bench subcommands: the selection flags (models,
// methods, resolutions), output (stdout, or --out=DIR with every format and
// the plots), progress lines, and the exit-code rules of apps/common/cli.h.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "apps/bench/models.h"
#include "apps/bench/table.h"
#include "apps/common/cli.h"

namespace cf::bench {

inline constexpr const char* kProgram = "convfusion-bench";

// --model / --method / --resolution as given ("all" or comma lists).
struct Selection {
  std::string models = "all", methods = "all", resolutions = "paper";
  std::vector<Model> model_list;
  std::vector<Method> method_list;
};
// Adds the flags; the values *s holds are their defaults (shown in --help).
void AddSelectionFlags(cli::App& app, Selection* s, bool resolutions = true);
// Fills the lists and checks --resolution for every model; returns -1 to go
// on, else the exit code (one line printed).
int CheckSelection(const cli::App& app, Selection* s);
// The resolutions selected for `m` (the paper's six, or the given ones).
std::vector<Resolution> ResolutionsFor(const Selection& s, Model m);

struct OutputFlags {
  std::string format = "markdown";
  std::string out;  // a directory; empty: stdout
};
void AddOutputFlags(cli::App& app, OutputFlags* o);

// A plot written beside the tables under --out: SVG text named `name`.svg.
struct Plot {
  std::string name, svg;
};

// stdout in --format; with --out, DIR/NAME.md, .csv and .json for every
// table (created atomically; DIR is made when missing) and the plots, and a
// line on stderr naming what was written.
Status Emit(const OutputFlags& o, const std::vector<Table>& tables, const std::vector<Plot>& plots = {});

// "convfusion-bench: <what>" on stderr (progress for long work).
void Progress(const std::string& what);

DType ParseDTypeFlag(const std::string& s);  // "f16" | "bf16" | "f32"

}  // namespace cf::bench
