// SVG plots for convfusion-bench --out: log-log lines, one per method, with
// the paper's points (hollow markers, dashed) beside ours (filled, solid).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "apps/bench/common.h"
#include "apps/bench/latency.h"
#include "apps/bench/table1.h"

namespace cf::bench {

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y), both > 0; others are dropped
  int color = 0;                                  // index into the palette
  bool paper = false;                             // hollow markers, dashed line
};

// A standalone SVG document: log axes with decade ticks, x ticks labelled by
// `x_labels` at their positions (resolution names), a legend.
std::string LogLogSvg(const std::string& title, const std::string& x_title, const std::string& y_title,
                      const std::vector<Series>& series, const std::vector<std::pair<double, std::string>>& x_labels);

// Table 1: one plot per model, GFLOP against pixels.
std::vector<Plot> Table1Plots(const std::vector<Table1Cell>& cells);
// Latency: median ms against pixels, one line per module and dtype.
std::vector<Plot> LatencyPlots(const LatencyResult& r);

}  // namespace cf::bench
