// convfusion-bench run as a process: Table 1's self-attention rows against
// the paper's printed values (PixArt to the printed digits, the 2048x2048 2K
// reported; SD1.5 short by exactly the q/k/v bias adds the model lacks, and
// saying so), the CSV header, the planner's figures and their 1.05 bound, the
// whole-model breakdown, a CPU latency run, --out files, and usage errors
// (exit 2, one line). The executable's path comes from tests/CMakeLists.txt
// (CF_BENCH_EXE).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/device.h"
#include "tests/support/process.h"

namespace cf {
namespace {

namespace fs = std::filesystem;

const std::string kExe = CF_BENCH_EXE;

using testing::ReadAll;
using testing::TempDir;
using Result = testing::ProcessResult;

Result Bench(const std::vector<std::string>& args, const fs::path& cwd) { return testing::RunProcess(kExe, args, cwd); }

// A CSV table: the header's keys and one map per row ("" for empty fields).
struct Csv {
  std::vector<std::string> header;
  std::vector<std::map<std::string, std::string>> rows;
};

std::vector<std::string> CsvFields(const std::string& line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') out.back() += '"', ++i;
      else if (c == '"') quoted = false;
      else out.back() += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.emplace_back();
    } else {
      out.back() += c;
    }
  }
  return out;
}

Csv ParseCsv(const std::string& text) {
  Csv csv;
  std::istringstream in(text);
  std::string line;
  if (!std::getline(in, line)) return csv;
  csv.header = CsvFields(line);
  while (std::getline(in, line)) {
    const std::vector<std::string> f = CsvFields(line);
    EXPECT_EQ(f.size(), csv.header.size()) << line;
    std::map<std::string, std::string> row;
    for (size_t i = 0; i < f.size() && i < csv.header.size(); ++i) row[csv.header[i]] = f[i];
    csv.rows.push_back(row);
  }
  return csv;
}

double Num(const std::map<std::string, std::string>& row, const std::string& key) {
  auto it = row.find(key);
  EXPECT_TRUE(it != row.end() && !it->second.empty()) << key;
  return it == row.end() || it->second.empty() ? std::nan("") : std::strtod(it->second.c_str(), nullptr);
}

// The value printed with two decimals, as the paper prints it.
double Printed(double gflops) { return std::round(gflops * 100.0) / 100.0; }

Csv Table1Csv(const std::string& model, const std::string& method) {
  TempDir dir;
  const Result r = Bench({"table1", "--model=" + model, "--method=" + method, "--format=csv"}, dir.path());
  EXPECT_EQ(r.code, 0) << r.err;
  return ParseCsv(r.out);
}

TEST(BenchTable1, CsvHeaderStartsWithTheDocumentedColumns) {
  const Csv csv = Table1Csv("sd15", "convblock");
  const std::vector<std::string> want = {"model",  "method", "resolution", "width",
                                         "height", "tokens", "flops_g",    "paper_flops_g"};
  ASSERT_GE(csv.header.size(), want.size());
  EXPECT_EQ(std::vector<std::string>(csv.header.begin(), csv.header.begin() + want.size()), want);
  EXPECT_EQ(csv.rows.size(), 6u);
}

TEST(BenchTable1, PixArtSelfAttentionIsThePapersToThePrintedDigits) {
  const Csv csv = Table1Csv("pixart", "self_attention");
  ASSERT_EQ(csv.rows.size(), 7u);  // six paper sizes + the paper's 2048x2048 2K
  int compared = 0;
  for (const auto& row : csv.rows) {
    SCOPED_TRACE(row.at("resolution"));
    EXPECT_EQ(row.at("counted_in"), "denoiser");  // the highest-resolution attn1 of the whole transformer
    if (row.at("paper_flops_g").empty()) {
      // 2K at 2560x1440: the paper printed its PixArt 2K at 2048x2048, and the row says so.
      EXPECT_EQ(row.at("resolution"), "2K");
      EXPECT_EQ(row.at("width"), "2560");
      EXPECT_NE(row.at("note").find("2048x2048"), std::string::npos);
      continue;
    }
    ++compared;
    const double exact = Num(row, "table1_flops") / 1e9;
    EXPECT_EQ(Printed(exact), Num(row, "paper_flops_g")) << exact;
    // N = (W/16)(H/16) tokens of C = 1152, and the paper's formula exactly.
    const double n = Num(row, "width") / 16 * Num(row, "height") / 16, c = 1152;
    EXPECT_EQ(Num(row, "tokens"), n);
    EXPECT_EQ(Num(row, "table1_flops"), 2 * (8 * n * c * c + 4 * n * n * c + 4 * n * c));
  }
  EXPECT_EQ(compared, 6);
  const auto square = std::find_if(csv.rows.begin(), csv.rows.end(),
                                   [](const auto& row) { return row.at("width") == "2048"; });
  ASSERT_NE(square, csv.rows.end());
  EXPECT_EQ(square->at("paper_flops_g").substr(0, 7), "2821.94");
  EXPECT_NE(square->at("note").find("2048x2048"), std::string::npos);
}

TEST(BenchTable1, Sd15SelfAttentionDiffersOnlyByTheMissingQkvBiasAdds) {
  const Csv csv = Table1Csv("sd15", "self_attention");
  ASSERT_EQ(csv.rows.size(), 6u);
  for (const auto& row : csv.rows) {
    SCOPED_TRACE(row.at("resolution"));
    EXPECT_EQ(row.at("counted_in"), "denoiser");  // the highest-resolution attn1 of the whole UNet
    const double n = Num(row, "tokens"), c = Num(row, "channels");
    EXPECT_EQ(c, 320);
    EXPECT_EQ(n, Num(row, "width") / 8 * Num(row, "height") / 8);
    const double ours = Num(row, "table1_flops");
    EXPECT_EQ(ours, 2 * (8 * n * c * c + 4 * n * n * c + n * c));  // one bias add: to_out's
    EXPECT_LT(Printed(ours / 1e9), Num(row, "paper_flops_g") + 1e-9);
    // Adding the three bias adds the paper assumed gives its printed value.
    EXPECT_EQ(Printed((ours + 2 * 3 * n * c) / 1e9), Num(row, "paper_flops_g"));
    EXPECT_NE(row.at("note").find("to_q/to_k/to_v"), std::string::npos);
  }
}

TEST(BenchTable1, EveryMethodAndModelAtAGivenSize) {
  TempDir dir;
  const Result r = Bench({"table1", "--resolution=512,1024x576", "--format=csv"}, dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  const Csv csv = ParseCsv(r.out);
  EXPECT_EQ(csv.rows.size(), 3u * 5u * 2u);
  std::map<std::string, double> at512;
  for (const auto& row : csv.rows) {
    EXPECT_GT(Num(row, "flops_g"), 0) << row.at("model") << " " << row.at("method");
    if (row.at("resolution") == "512") at512[row.at("model") + "/" + row.at("method")] = Num(row, "table1_flops");
    if (row.at("model") == "sd15" && row.at("method") == "convblock") {
      EXPECT_EQ(row.at("choice"), "convblock:11");
    }
    if (row.at("model") == "pixart" && row.at("method") == "convblock") {
      EXPECT_EQ(row.at("choice"), "convblock:13");
    }
    if (row.at("method") == "neighborhood") {
      EXPECT_EQ(row.at("choice"), "na:13");
    }
  }
  // Every replacement is cheaper than self-attention in the same model except
  // LinFusion on PixArt at 512 (its MLPs cost more than N^2 there, as the paper also finds).
  for (const std::string model : {"sd15", "sdxl", "pixart"})
    for (const std::string method : {"neighborhood", "convblock", "ditfastattn"})
      EXPECT_LT(at512[model + "/" + method], at512[model + "/self_attention"]) << model << " " << method;
  EXPECT_GT(at512["pixart/linfusion"], at512["pixart/self_attention"]);
}

TEST(BenchTable1, MarkdownAndJsonCarryTheSameCells) {
  TempDir dir;
  Result r = Bench({"table1", "--model=pixart", "--method=convblock", "--resolution=16K"}, dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("| pixart | convblock | 16K | 15360 | 8640 | 518400 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| 4411.40 |"), std::string::npos) << r.out;  // the paper's value beside ours
  r = Bench({"table1", "--model=pixart", "--method=convblock", "--resolution=16K", "--format=json"}, dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"paper_flops_g\": 4411.4"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"table\": \"table1\""), std::string::npos) << r.out;
}

TEST(BenchMemory, PlannerFiguresForAStepAndADistillationStep) {
  TempDir dir;
  const Result r = Bench({"memory", "--model=sd15", "--method=self_attention,convblock", "--resolution=256x256",
                        "--format=csv"},
                       dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  const Csv csv = ParseCsv(r.out);
  ASSERT_EQ(csv.rows.size(), 3u);  // two forward steps, one training step
  for (const char* key : {"arena_bytes", "lower_bound_bytes", "no_reuse_bytes", "param_bytes", "workspace_bytes"})
    EXPECT_NE(std::find(csv.header.begin(), csv.header.end(), key), csv.header.end()) << key;
  std::map<std::string, std::map<std::string, std::string>> by;
  for (const auto& row : csv.rows) {
    by[row.at("pass") + "/" + row.at("method")] = row;
    EXPECT_LE(Num(row, "arena_bytes"), 1.05 * Num(row, "lower_bound_bytes"));
    EXPECT_GE(Num(row, "arena_bytes"), Num(row, "lower_bound_bytes"));
    EXPECT_LE(Num(row, "arena_bytes"), Num(row, "no_reuse_bytes"));
  }
  ASSERT_EQ(by.count("training/distill_convblock"), 1u);
  const auto& train = by["training/distill_convblock"];
  // The training step keeps the student's activations for its backward: more than a forward step.
  EXPECT_GT(Num(train, "arena_bytes"), Num(by["forward/convblock"], "arena_bytes"));
  // Shared frozen weights counted once: the teacher's plus the student's ConvBlocks, less than two UNets.
  EXPECT_GT(Num(train, "param_bytes"), Num(by["forward/self_attention"], "param_bytes"));
  EXPECT_LT(Num(train, "param_bytes"), 2 * Num(by["forward/self_attention"], "param_bytes"));
  // JSON has the keys exactly.
  const Result j = Bench({"memory", "--model=sd15", "--method=convblock", "--resolution=256x256", "--pass=forward",
                        "--format=json"},
                       dir.path());
  ASSERT_EQ(j.code, 0) << j.err;
  for (const char* key : {"\"arena_bytes\": ", "\"lower_bound_bytes\": ", "\"no_reuse_bytes\": ", "\"param_bytes\": ",
                          "\"workspace_bytes\": "})
    EXPECT_NE(j.out.find(key), std::string::npos) << key;
}

TEST(BenchMemory, AnArenaAboveTheBoundFailsLoudly) {
  TempDir dir;
  // No plan beats its lower bound, so a bound below 1 must fail, naming the plan and the figures.
  const Result r = Bench({"memory", "--model=sd15", "--method=convblock", "--resolution=256x256", "--pass=forward",
                          "--max-arena-ratio=0.99"},
                         dir.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 2) << r.err;  // one progress line, one error
  EXPECT_NE(r.err.find("convfusion-bench memory: planner: sd15 convblock 256x256"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("lower bound"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(BenchModel, BreakdownAddsUpAndCountsParameters) {
  TempDir dir;
  const Result r = Bench({"model", "--model=sd15", "--method=self_attention,convblock", "--resolution=512",
                        "--format=json"},
                       dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  // SD1.5's UNet has 859,520,964 parameters; the ConvBlock version fewer.
  EXPECT_NE(r.out.find("\"parameters\": 859520964"), std::string::npos) << r.out;
  const Result c = Bench({"model", "--model=sd15", "--method=self_attention,convblock", "--resolution=512",
                        "--format=csv"},
                       dir.path());
  ASSERT_EQ(c.code, 0) << c.err;
  const Csv csv = ParseCsv(c.out);
  ASSERT_EQ(csv.rows.size(), 2u);
  for (const auto& row : csv.rows) {
    double sum = 0;
    for (const char* k : {"convolutions_g", "self_attention_g", "cross_attention_g", "feed_forward_g", "norms_g",
                          "other_g"})
      sum += Num(row, k);
    EXPECT_NEAR(sum, Num(row, "total_g"), 1e-3 * Num(row, "total_g"));
  }
  EXPECT_LT(Num(csv.rows[1], "self_attention_g"), 0.1 * Num(csv.rows[0], "self_attention_g"));
  EXPECT_NEAR(Num(csv.rows[1], "convolutions_g"), Num(csv.rows[0], "convolutions_g"), 1e-9);
  EXPECT_LT(Num(csv.rows[1], "vs_self_attention"), 1.0);
}

TEST(BenchLatency, CpuModulesWithRatiosAndPeaks) {
  TempDir dir;
  const Result r = Bench({"latency", "--device=cpu", "--resolution=128x128", "--reps=5", "--format=csv"}, dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  const Csv csv = ParseCsv(r.out);
  std::set<std::string> modules;
  for (const auto& row : csv.rows) {
    modules.insert(row.at("module"));
    EXPECT_GT(Num(row, "median_ms"), 0);
    EXPECT_LE(Num(row, "min_ms"), Num(row, "median_ms"));
    EXPECT_GT(Num(row, "peak_bytes"), 0);
    if (row.at("module") == "self_attention") {
      EXPECT_EQ(Num(row, "ratio_to_self_attention"), 1.0);
    }
  }
  EXPECT_EQ(modules, (std::set<std::string>{"self_attention", "neighborhood_k13", "convblock_k13", "convblock_k25",
                                            "linfusion", "ditfastattn_w64"}));
  EXPECT_NE(r.err.find("latency: sd15 convblock_k25 128x128 f32 on cpu"), std::string::npos) << r.err;
}

TEST(BenchLatency, ModulesPicksTheRowsInTheGivenOrder) {
  TempDir dir;
  const Result r = Bench({"latency", "--device=cpu", "--resolution=128x128", "--modules=convblock_k13,self_attention",
                          "--format=csv"},
                         dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  const Csv csv = ParseCsv(r.out);
  ASSERT_EQ(csv.rows.size(), 2u);
  EXPECT_EQ(csv.rows[0].at("module"), "convblock_k13");
  EXPECT_EQ(csv.rows[1].at("module"), "self_attention");
  // The FLOP ratio is the two graphs' counts (column "gflop", two decimals).
  EXPECT_NEAR(Num(csv.rows[0], "flop_ratio_to_self_attention"), Num(csv.rows[0], "gflop") / Num(csv.rows[1], "gflop"),
              2e-2);
  EXPECT_LT(Num(csv.rows[0], "flop_ratio_to_self_attention"), 1.0);
  EXPECT_EQ(Num(csv.rows[1], "flop_ratio_to_self_attention"), 1.0);
}

// The whole SD1.5 step with self-attention and with ConvBlocks (random
// weights, 3.3 GB each in f32) at a small size: the ConvBlock step's
// speed-up printed beside the FLOP ratio of the two graphs.
TEST(BenchLatency, DenoiserStepsPrintTheSpeedUpBesideTheFlopRatio) {
  TempDir dir;
  const Result r = Bench({"latency", "--device=cpu", "--resolution=128x128",
                          "--modules=denoiser_self_attention,denoiser_convblock", "--out=lat"},
                         dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  const Csv csv = ParseCsv(ReadAll(dir.path() / "lat/latency.csv"));
  ASSERT_EQ(csv.rows.size(), 2u);
  const auto& self = csv.rows[0];
  const auto& cb = csv.rows[1];
  EXPECT_EQ(self.at("module"), "denoiser_self_attention");
  EXPECT_EQ(cb.at("module"), "denoiser_convblock");
  EXPECT_EQ(cb.at("note").find("non-finite"), std::string::npos) << cb.at("note");
  const double speedup = Num(self, "median_ms") / Num(cb, "median_ms");
  const double flop_ratio = Num(self, "gflop") / Num(cb, "gflop");
  EXPECT_GT(flop_ratio, 1.0);
  EXPECT_NEAR(1.0 / Num(cb, "flop_ratio_to_self_attention"), flop_ratio, 1e-2 * flop_ratio);
  const std::string md = ReadAll(dir.path() / "lat/latency.md");
  // "... ConvBlocks (released kernels) speed-up 1.11x over self-attention (median ...), FLOP ratio 1.06x (...)";
  // the note divides the unrounded medians, so its last digit may differ.
  const std::string prefix = "SD1.5 step at 128x128, f32: ConvBlocks (released kernels) speed-up ";
  const size_t at = md.find(prefix);
  ASSERT_NE(at, std::string::npos) << md;
  EXPECT_NEAR(std::strtod(md.c_str() + at + prefix.size(), nullptr), speedup, 0.011) << md.substr(at, 200);
  EXPECT_NE(md.find("x over self-attention", at), std::string::npos) << md.substr(at, 200);
  const size_t ratio_at = md.find("FLOP ratio ", at);
  ASSERT_NE(ratio_at, std::string::npos) << md.substr(at, 200);
  EXPECT_NEAR(std::strtod(md.c_str() + ratio_at + 11, nullptr), flop_ratio, 0.011) << md.substr(at, 200);
}

TEST(BenchLatency, CudaWithoutAGpuSaysSo) {
  if (CheckDeviceAvailable(Device::CUDA()).ok()) GTEST_SKIP() << "a GPU is here";
  TempDir dir;
  const Result r = Bench({"latency", "--device=cuda"}, dir.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("no GPU"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(BenchOut, WritesEveryFormatAndThePlots) {
  TempDir dir;
  Result r = Bench({"table1", "--model=sd15,pixart", "--out=results/t1"}, dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("results/t1"), std::string::npos) << r.err;
  const fs::path out = dir.path() / "results/t1";
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(out)) names.insert(e.path().filename().string());
  EXPECT_EQ(names, (std::set<std::string>{"table1.md", "table1.csv", "table1.json", "table1_sd15.svg",
                                          "table1_pixart.svg"}));
  EXPECT_EQ(ReadAll(out / "table1.csv").rfind("model,method,resolution,", 0), 0u);
  const std::string svg = ReadAll(out / "table1_pixart.svg");
  EXPECT_EQ(svg.rfind("<svg ", 0), 0u);
  EXPECT_NE(svg.find("convblock (paper)"), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  // A file in the way: a failure naming it, and the file untouched.
  std::ofstream(dir.path() / "plain.txt") << "x\n";
  r = Bench({"table1", "--model=sd15", "--method=convblock", "--out=plain.txt"}, dir.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("plain.txt"), std::string::npos) << r.err;
  EXPECT_EQ(ReadAll(dir.path() / "plain.txt"), "x\n");
}

TEST(BenchTable1, GraphOfTheModule) {
  TempDir dir;
  Result r = Bench({"table1", "--model=pixart", "--method=convblock", "--resolution=512", "--graph=text"}, dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("transformer_blocks.0.conv1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("# memory plan: "), std::string::npos) << r.out;
  r = Bench({"table1", "--model=sd15", "--method=self_attention", "--graph=dot"}, dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("digraph", 0), 0u) << r.out;
}

struct Bad {
  std::vector<std::string> args;
  std::string mentions;
};

TEST(BenchCli, UsageErrorsExitTwoWithOneLine) {
  const std::vector<Bad> table = {
      {{}, "subcommand"},
      {{"tabel1"}, "tabel1"},
      {{"--model=sd15"}, "--model"},
      {{"table1", "--model=sd21"}, "--model"},
      {{"table1", "--method=flash"}, "--method"},
      {{"table1", "--resolution=513x512"}, "--resolution"},
      {{"table1", "--resolution=3K"}, "--resolution"},
      {{"table1", "--model=pixart", "--resolution=1000x1000"}, "--resolution"},
      {{"table1", "--format=xml"}, "--format"},
      {{"table1", "--graph=svg"}, "--graph"},
      {{"table1", "--na-kernel=12"}, "--na-kernel"},
      {{"table1", "--convblock-kernel=4"}, "--convblock-kernel"},
      {{"table1", "--out="}, "--out"},
      {{"table1", "extra"}, "extra"},
      {{"table1", "--bogus"}, "--bogus"},
      {{"memory", "--batch=0"}, "--batch"},
      {{"memory", "--pass=backward"}, "--pass"},
      {{"model", "--dtype=f64"}, "--dtype"},
      {{"latency", "--device=tpu"}, "--device"},
      {{"latency", "--reps=2"}, "--reps"},
      {{"latency", "--dtype=f64"}, "--dtype"},
      {{"latency", "--resolution=12x12"}, "--resolution"},
      {{"latency", "--modules=flash"}, "--modules"},
  };
  for (const Bad& b : table) {
    std::string shown = "convfusion-bench";
    for (const std::string& a : b.args) shown += " " + a;
    SCOPED_TRACE(shown);
    TempDir dir;
    const Result r = Bench(b.args, dir.path());
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("convfusion-bench", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(b.mentions), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("--help"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_TRUE(dir.Entries().empty());
  }
}

TEST(BenchCli, HelpOnEverySubcommand) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--help"}, {"table1", "--help"}, {"memory", "-h"}, {"model", "--help"}, {"latency", "--help"}}) {
    TempDir dir;
    const Result r = Bench(args, dir.path());
    EXPECT_EQ(r.code, 0) << args[0];
    EXPECT_EQ(r.err, "");
    EXPECT_NE(r.out.find("Usage: convfusion-bench"), std::string::npos) << r.out;
  }
  TempDir dir;
  EXPECT_NE(Bench({"latency", "--help"}, dir.path()).out.find("--profile"), std::string::npos);
  EXPECT_NE(Bench({"table1", "--help"}, dir.path()).out.find("markdown|csv|json"), std::string::npos);
}

}  // namespace
}  // namespace cf
