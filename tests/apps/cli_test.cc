// The executables' command lines, run as processes: usage errors exit 2,
// failures at run time exit 1, each with one line on stderr naming the flag
// (or the path); nothing is left behind in the working directory; --help
// exits 0 with usage; good invocations do their job. The paths of the built
// executables come from tests/CMakeLists.txt (CF_INFO_EXE, CF_TRAIN_DEMO_EXE);
// convfusion-bench has its own tests (bench_test.cc).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
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

using testing::ReadAll;
using testing::TempDir;
using Result = testing::ProcessResult;

// Runs `exe args...` in `cwd`; stdout and stderr go to files outside it.
Result RunApp(const std::string& exe, const std::vector<std::string>& args, const fs::path& cwd) {
  return testing::RunProcess(exe, args, cwd);
}

std::set<std::string> Entries(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::recursive_directory_iterator(dir)) names.insert(fs::relative(e.path(), dir).string());
  return names;
}

std::string Show(const std::string& exe, const std::vector<std::string>& args) {
  std::string s = fs::path(exe).filename().string();
  for (const std::string& a : args) s += " " + a;
  return s;
}

struct Bad {
  std::string exe;
  std::vector<std::string> args;
  int code;              // 2: usage error, 1: failure at run time
  std::string mentions;  // stderr names this (the flag, the argument or the path)
};

const std::string kInfo = CF_INFO_EXE, kTrain = CF_TRAIN_DEMO_EXE;

TEST(AppsCli, BadInvocationsExitWithOneLineAndLeaveNothing) {
  const std::vector<Bad> table = {
      // cf_info takes no options.
      {kInfo, {"--bogus"}, 2, "--bogus"},
      {kInfo, {"--ops=3"}, 2, "--ops"},
      {kInfo, {"extra"}, 2, "extra"},
      // cf_train_demo
      {kTrain, {"--steps=99999999999"}, 2, "--steps"},
      {kTrain, {"--steps=99999999999999999999999"}, 2, "--steps"},
      {kTrain, {"--steps=0"}, 2, "--steps"},
      {kTrain, {"--steps=-5"}, 2, "--steps"},
      {kTrain, {"--steps=1.5"}, 2, "--steps"},
      {kTrain, {"--steps=abc"}, 2, "--steps"},
      {kTrain, {"--steps="}, 2, "--steps"},
      {kTrain, {"--steps"}, 2, "--steps"},
      {kTrain, {"--lr=0"}, 2, "--lr"},
      {kTrain, {"--lr=-0.1"}, 2, "--lr"},
      {kTrain, {"--lr=nan"}, 2, "--lr"},
      {kTrain, {"--lr=inf"}, 2, "--lr"},
      {kTrain, {"--lr=1e999"}, 2, "--lr"},
      {kTrain, {"--lr=0.1x"}, 2, "--lr"},
      {kTrain, {"--device=tpu"}, 2, "--device"},
      {kTrain, {"--device=CUDA"}, 2, "--device"},
      {kTrain, {"tpu"}, 2, "tpu"},
      {kTrain, {"100", "0.1", "cpu"}, 2, "100"},  // the old positional syntax
      {kTrain, {"--step=5"}, 2, "--step"},
  };
  for (const Bad& b : table) {
    SCOPED_TRACE(Show(b.exe, b.args));
    TempDir dir;
    fs::create_directory(dir.path() / "sub");
    std::ofstream(dir.path() / "plain.txt") << "fixture\n";
    const std::set<std::string> before = Entries(dir.path());
    const Result r = RunApp(b.exe, b.args, dir.path());
    EXPECT_EQ(r.code, b.code) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(r.err.empty() || r.err.back() != '\n') << r.err;
    EXPECT_EQ(r.err.rfind(fs::path(b.exe).filename().string() + ": ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(b.mentions), std::string::npos) << r.err;
    if (b.code == 2) {
      EXPECT_NE(r.err.find("--help"), std::string::npos) << r.err;
    }
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(Entries(dir.path()), before);  // no output, no temporary
  }
}

TEST(AppsCli, Messages) {
  TempDir dir;
  EXPECT_EQ(RunApp(kTrain, {"--steps=99999999999"}, dir.path()).err,
            "cf_train_demo: --steps: value 99999999999 is out of range [1, 10000000] (see --help)\n");
  EXPECT_EQ(RunApp(kTrain, {"--device=tpu"}, dir.path()).err,
            "cf_train_demo: --device: 'tpu' is not one of cpu, cuda (see --help)\n");
  EXPECT_EQ(RunApp(kTrain, {"--lr=0"}, dir.path()).err,
            "cf_train_demo: --lr: value 0 is out of range (0, 1000] (see --help)\n");
  EXPECT_EQ(RunApp(kInfo, {"--bogus=1"}, dir.path()).err, "cf_info: --bogus: unknown flag (see --help)\n");
}

TEST(AppsCli, CudaWithoutADeviceIsARunTimeFailure) {
  TempDir dir;
  const Result r = RunApp(kTrain, {"--device=cuda", "--steps=1"}, dir.path());
  if (CheckDeviceAvailable(Device::CUDA()).ok()) {
    EXPECT_EQ(r.code, 0) << r.err;
  } else {
    EXPECT_EQ(r.code, 1) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find("cuda"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
  }
  EXPECT_TRUE(Entries(dir.path()).empty());
}

TEST(AppsCli, HelpExitsZeroWithUsage) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> table = {
      {kInfo, {}},
      {kTrain, {"--steps", "--lr", "--device", "cpu|cuda", "[1, 10000000]", "(default: 2000)"}},
  };
  for (const auto& [exe, mentions] : table) {
    for (const char* flag : {"--help", "-h"}) {
      SCOPED_TRACE(Show(exe, {flag}));
      TempDir dir;
      const Result r = RunApp(exe, {flag}, dir.path());
      EXPECT_EQ(r.code, 0);
      EXPECT_EQ(r.err, "");
      EXPECT_NE(r.out.find("Usage: " + fs::path(exe).filename().string()), std::string::npos) << r.out;
      EXPECT_NE(r.out.find("--help"), std::string::npos) << r.out;
      for (const std::string& m : mentions) EXPECT_NE(r.out.find(m), std::string::npos) << m << "\n" << r.out;
      EXPECT_TRUE(Entries(dir.path()).empty());
    }
  }
  // --help wins over a bad value elsewhere on the line.
  TempDir dir;
  EXPECT_EQ(RunApp(kTrain, {"--steps=abc", "--help"}, dir.path()).code, 0);
}

TEST(AppsCli, InfoRuns) {
  TempDir dir;
  const Result r = RunApp(kInfo, {}, dir.path());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("ConvFusion runtime"), std::string::npos);
  EXPECT_NE(r.out.find("ops registered"), std::string::npos);
}

TEST(AppsCli, TrainDemoRuns) {
  TempDir dir;
  // A repeated flag takes the last value.
  const Result r = RunApp(kTrain, {"--steps=10000000", "--steps=5", "--lr", "0.05", "--device=cpu"}, dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("     5  "), std::string::npos) << r.out;  // the last step's loss line
  EXPECT_NE(r.out.find("one training step on cpu"), std::string::npos) << r.out;
  EXPECT_TRUE(Entries(dir.path()).empty());
}

}  // namespace
}  // namespace cf
