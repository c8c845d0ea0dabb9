// apps/bench/plot.h.
#include "apps/bench/plot.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "graph/accounting.h"

namespace cf::bench {

namespace {

constexpr const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
                                    "#17becf"};
constexpr int kPaletteSize = sizeof(kPalette) / sizeof(kPalette[0]);

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

}  // namespace

std::string LogLogSvg(const std::string& title, const std::string& x_title, const std::string& y_title,
                      const std::vector<Series>& series, const std::vector<std::pair<double, std::string>>& x_labels) {
  constexpr double kW = 720, kH = 480, kLeft = 80, kRight = 190, kTop = 40, kBottom = 60;
  double x0 = 1e300, x1 = 0, y0 = 1e300, y1 = 0;
  for (const Series& s : series)
    for (auto [x, y] : s.points)
      if (x > 0 && y > 0) x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
      "<text x=\"%g\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">%s</text>\n",
      kW, kH, kW, kH, (kLeft + kW - kRight) / 2, Escape(title));
  if (x1 <= 0) return svg + "<text x=\"100\" y=\"200\">no data</text>\n</svg>\n";
  // Whole decades on y; x spans the data with a margin.
  const double ly0 = std::floor(std::log10(y0)), ly1 = std::max(ly0 + 1, std::ceil(std::log10(y1)));
  const double lx0 = std::log10(x0) - 0.1, lx1 = std::log10(x1) + 0.1 + (x1 == x0 ? 0.5 : 0);
  const double pw = kW - kLeft - kRight, ph = kH - kTop - kBottom;
  auto px = [&](double x) { return kLeft + (std::log10(x) - lx0) / (lx1 - lx0) * pw; };
  auto py = [&](double y) { return kTop + ph - (std::log10(y) - ly0) / (ly1 - ly0) * ph; };
  absl::StrAppendFormat(&svg, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#444\"/>\n",
                        kLeft, kTop, pw, ph);
  for (double e = ly0; e <= ly1; e += 1) {
    const double y = kTop + ph - (e - ly0) / (ly1 - ly0) * ph;
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                          "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\">1e%d</text>\n",
                          kLeft, y, kLeft + pw, y, kLeft - 6, y + 4, static_cast<int>(e));
  }
  for (const auto& [x, label] : x_labels) {
    if (x <= 0) continue;
    const double X = px(x);
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"#ddd\"/>"
                          "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%s</text>\n",
                          X, kTop, X, kTop + ph, X, kTop + ph + 16, Escape(label));
  }
  absl::StrAppendFormat(&svg, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%s</text>\n", kLeft + pw / 2, kH - 18,
                        Escape(x_title));
  absl::StrAppendFormat(&svg, "<text transform=\"translate(18 %g) rotate(-90)\" text-anchor=\"middle\">%s</text>\n",
                        kTop + ph / 2, Escape(y_title));
  int legend = 0;
  for (const Series& s : series) {
    std::vector<std::pair<double, double>> pts;
    for (auto p : s.points)
      if (p.first > 0 && p.second > 0) pts.push_back(p);
    if (pts.empty()) continue;
    std::sort(pts.begin(), pts.end());
    const char* color = kPalette[s.color % kPaletteSize];
    std::string path;
    for (auto [x, y] : pts) absl::StrAppendFormat(&path, "%s%.1f,%.1f", path.empty() ? "" : " ", px(x), py(y));
    absl::StrAppendFormat(&svg, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"%s\"%s/>\n", path,
                          color, s.paper ? "1.2" : "2", s.paper ? " stroke-dasharray=\"5,4\"" : "");
    for (auto [x, y] : pts)
      absl::StrAppendFormat(&svg, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%s\" fill=\"%s\" stroke=\"%s\"/>\n", px(x),
                            py(y), s.paper ? "4.5" : "3", s.paper ? "white" : color, color);
    const double ly = kTop + 10 + 18 * legend++;
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"%s\" stroke-width=\"2\"%s/>"
                          "<text x=\"%g\" y=\"%g\">%s</text>\n",
                          kW - kRight + 12, ly, kW - kRight + 36, ly, color,
                          s.paper ? " stroke-dasharray=\"5,4\"" : "", kW - kRight + 42, ly + 4, Escape(s.name));
  }
  return svg + "</svg>\n";
}

std::vector<Plot> Table1Plots(const std::vector<Table1Cell>& cells) {
  std::vector<Plot> plots;
  for (Model m : AllModels()) {
    std::map<int, Series> ours, paper;
    std::map<double, std::string> labels;
    for (const Table1Cell& c : cells) {
      if (c.model != m) continue;
      const int k = static_cast<int>(c.method);
      const double x = static_cast<double>(c.resolution.width * c.resolution.height);
      labels[x] = c.resolution.label;
      ours[k].name = MethodName(c.method);
      ours[k].color = k;
      ours[k].points.push_back({x, static_cast<double>(c.table1_flops) / 1e9});
      if (c.paper_gflops) {
        paper[k].name = absl::StrCat(MethodName(c.method), " (paper)");
        paper[k].color = k;
        paper[k].paper = true;
        paper[k].points.push_back({x, *c.paper_gflops});
      }
    }
    if (ours.empty()) continue;
    std::vector<Series> all;
    for (auto& [k, s] : ours) {
      all.push_back(s);
      if (paper.count(k)) all.push_back(paper[k]);
    }
    plots.push_back({absl::StrCat("table1_", ModelName(m)),
                     LogLogSvg(absl::StrCat("Table 1, ", ModelTitle(m), ": highest-resolution attention module"),
                               "image size (pixels, log)", "GFLOP (log), batch 2", all,
                               std::vector<std::pair<double, std::string>>(labels.begin(), labels.end()))});
  }
  return plots;
}

std::vector<Plot> LatencyPlots(const LatencyResult& r) {
  std::map<std::string, Series> lines;
  std::map<double, std::string> labels;
  std::map<std::string, int> colors;
  for (const LatencyCell& c : r.cells) {
    const double x = static_cast<double>(c.resolution.width * c.resolution.height);
    labels[x] = c.resolution.label;
    const std::string key = absl::StrCat(c.module, " ", c.dtype);
    Series& s = lines[key];
    if (s.name.empty()) {
      s.name = key;
      if (!colors.count(c.module)) colors[c.module] = static_cast<int>(colors.size());
      s.color = colors[c.module];
    }
    if (c.measured) s.points.push_back({x, c.median_ms});
  }
  // The paper's Table 2 (ConvFusion paper, Table 2; eager PyTorch on a GPU it
  // does not name) at the sizes measured here.
  static const std::map<std::string, std::vector<double>> kPaper = {
      {"self_attention", {0.78, 5.91, 67.49, 1077.98}}, {"ditfastattn_w64", {0.77, 4.99, 51.27, 798.24}},
      {"linfusion", {1.52, 5.82, 22.36, 88.59}},        {"convblock_k13", {1.09, 3.53, 13.40, 54.84}},
      {"convblock_k25", {2.14, 8.51, 33.17, 131.71}}};
  static const char* kPaperLabels[] = {"512", "1024", "2K", "4K"};
  std::vector<Series> all;
  for (auto& [k, s] : lines) all.push_back(s);
  for (const auto& [module, ms] : kPaper) {
    if (!colors.count(module)) continue;
    Series p;
    p.name = absl::StrCat(module, " (paper, GPU)");
    p.color = colors[module];
    p.paper = true;
    for (const auto& [x, label] : labels)
      for (int i = 0; i < 4; ++i)
        if (label == kPaperLabels[i]) p.points.push_back({x, ms[i]});
    if (!p.points.empty()) all.push_back(p);
  }
  return {{"latency", LogLogSvg("Table 2: one module at the highest-resolution layer, median of the runs",
                                "image size (pixels, log)", "median ms (log)", all,
                                std::vector<std::pair<double, std::string>>(labels.begin(), labels.end()))}};
}

}  // namespace cf::bench
