// apps/common: the shared command-line parser (cf::cli::App), the subcommand
// dispatcher and the repeatable-flag helper in-process, and WriteFileAtomic.
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/common/cli.h"
#include "apps/common/output_file.h"
#include "gtest/gtest.h"

namespace cf::cli {
namespace {

namespace fs = std::filesystem;

struct Values {
  int64_t count = 7;
  int small = 3;
  double rate = 0.5, any = 0;
  std::string mode = "a", path;
  bool verbose = false;
};

// Parses `args` into fresh defaults.
ParseOutcome ParseInto(const std::vector<std::string>& args, Values* v) {
  App app("prog", "A test program.");
  app.Int("--count", &v->count, -10, 1'000'000'000'000, "an int64");
  app.Int("--small", &v->small, 1, 8, "an int");
  app.Double("--rate", &v->rate, Interval::AboveUpTo(0, 1), "a rate");
  app.Double("--any", &v->any, Interval::Any(), "any finite number");
  app.Enum("--mode", &v->mode, {"a", "bb"}, "a mode");
  app.String("--path", &v->path, "FILE", "a path");
  app.Flag("--verbose", &v->verbose, "more output");
  return app.TryParse(args);
}

TEST(CliWrapper, GoodValues) {
  Values v;
  ParseOutcome r = ParseInto({}, &v);
  EXPECT_TRUE(r.proceed);
  EXPECT_EQ(v.count, 7);
  EXPECT_EQ(v.mode, "a");

  r = ParseInto({"--count=-10", "--small", "8", "--rate=1", "--any=-1e300", "--mode", "bb", "--path=x/y.md",
                 "--verbose"},
                &v);
  ASSERT_TRUE(r.proceed) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(v.count, -10);
  EXPECT_EQ(v.small, 8);
  EXPECT_EQ(v.rate, 1.0);
  EXPECT_EQ(v.any, -1e300);
  EXPECT_EQ(v.mode, "bb");
  EXPECT_EQ(v.path, "x/y.md");
  EXPECT_TRUE(v.verbose);

  Values w;
  r = ParseInto({"--count=1000000000000", "--small=2", "--small=5"}, &w);
  ASSERT_TRUE(r.proceed) << r.err;
  EXPECT_EQ(w.count, 1'000'000'000'000);
  EXPECT_EQ(w.small, 5);  // the last one
}

TEST(CliWrapper, UsageErrors) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> table = {
      {{"--count=1000000000001"}, "prog: --count: value 1000000000001 is out of range [-10, 1000000000000]"},
      {{"--count=-11"}, "prog: --count: value -11 is out of range [-10, 1000000000000]"},
      {{"--count=92233720368547758070"}, "prog: --count: value 92233720368547758070 is out of range"},
      {{"--count=0x10"}, "prog: --count: '0x10' is not an integer"},
      {{"--count= 5"}, "prog: --count: ' 5' is not an integer"},
      {{"--count=5k"}, "prog: --count: '5k' is not an integer"},
      {{"--small=9"}, "prog: --small: value 9 is out of range [1, 8]"},
      {{"--small=4294967297"}, "prog: --small: value 4294967297 is out of range [1, 8]"},
      {{"--rate=0"}, "prog: --rate: value 0 is out of range (0, 1]"},
      {{"--rate=1.0000001"}, "prog: --rate: value 1.0000001 is out of range (0, 1]"},
      {{"--rate=nan"}, "prog: --rate: value nan is not a finite number"},
      {{"--any=-inf"}, "prog: --any: value -inf is not a finite number"},
      {{"--any=1e400"}, "prog: --any: value 1e400 is not a finite number"},
      {{"--any=one"}, "prog: --any: 'one' is not a number"},
      {{"--any="}, "prog: --any: needs a value"},
      {{"--mode=c"}, "prog: --mode: 'c' is not one of a, bb"},
      {{"--mode=A"}, "prog: --mode: 'A' is not one of a, bb"},
      {{"--path="}, "prog: --path: needs a value"},
      {{"--path"}, "prog: --path: needs a value"},
      {{"--path", ""}, "prog: --path: needs a non-empty value"},
      {{"--nope=1"}, "prog: --nope: unknown flag"},
      {{"--small=2", "-x"}, "prog: -x: unknown flag"},
      {{"stray"}, "prog: unexpected argument 'stray'"},
      {{"--", "stray"}, "prog: unexpected argument 'stray'"},
      {{"--"}, "prog: unexpected argument '--'"},
  };
  for (const auto& [args, message] : table) {
    SCOPED_TRACE(::testing::PrintToString(args));
    Values v;
    const ParseOutcome r = ParseInto(args, &v);
    EXPECT_FALSE(r.proceed);
    EXPECT_EQ(r.exit_code, kExitUsage);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err.rfind(message, 0), 0u) << r.err;
    EXPECT_EQ(r.err.find('\n'), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("--help"), std::string::npos) << r.err;
  }
}

TEST(CliWrapper, Help) {
  Values v;
  const ParseOutcome r = ParseInto({"--help"}, &v);
  EXPECT_FALSE(r.proceed);
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_EQ(r.err, "");
  for (const char* s : {"Usage: prog", "A test program.", "--count", "INT in [-10, 1000000000000]", "(default: 7)",
                        "NUMBER in (0, 1]", "(default: 0.5)", "a|bb", "FILE", "--verbose"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  }
}

TEST(CliWrapper, IntervalAndOneLine) {
  EXPECT_TRUE(Interval::AboveUpTo(0, 1).Contains(1));
  EXPECT_FALSE(Interval::AboveUpTo(0, 1).Contains(0));
  EXPECT_TRUE(Interval::Closed(0, 1).Contains(0));
  EXPECT_FALSE(Interval::Any().Contains(std::numeric_limits<double>::infinity()));
  EXPECT_EQ(Interval::Any().ToString(), "(-inf, inf)");
  EXPECT_EQ(OneLine("a\nb\n\n"), "a; b");
}

std::string ReadAll(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A repeatable flag is taken out of argv, both spellings, in order; the rest
// stays for App::Parse; a trailing flag without its value is an error.
TEST(CliWrapper, TakeRepeated) {
  std::vector<std::string> args = {"prog", "--prompt=a cat", "--max=3", "--prompt", "b, c", "x"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  std::vector<std::string> values;
  std::vector<char*> rest;
  ASSERT_TRUE(TakeRepeated(static_cast<int>(argv.size()), argv.data(), "--prompt", &values, &rest).ok());
  EXPECT_EQ(values, (std::vector<std::string>{"a cat", "b, c"}));
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_STREQ(rest[0], "prog");
  EXPECT_STREQ(rest[1], "--max=3");
  EXPECT_STREQ(rest[2], "x");
  std::vector<std::string> bad = {"prog", "--prompt"};
  std::vector<char*> bad_argv = {bad[0].data(), bad[1].data()};
  values.clear();
  const Status st = TakeRepeated(2, bad_argv.data(), "--prompt", &values, &rest);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("--prompt: needs a value"), std::string::npos);
}

int g_ran = 0;
int RunA(int argc, char** argv) { return g_ran = 10 + argc; }

// Dispatch runs the named subcommand on argv + 1, prints the help for
// --help, and refuses nothing, an unknown name or a flag first with exit 2.
TEST(CliWrapper, Dispatch) {
  const std::vector<Subcommand> table = {{"alpha", "the first", RunA}, {"beta", "the second", RunA}};
  const std::string help = SubcommandHelp("prog", "Header.\n", table, 6);
  EXPECT_NE(help.find("  alpha  the first\n"), std::string::npos) << help;
  EXPECT_NE(help.find("prog SUBCOMMAND --help"), std::string::npos);
  EXPECT_EQ(SubcommandNames(table), "alpha, beta");
  auto run = [&](std::vector<std::string> args) {
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    return Dispatch("prog", table, help, static_cast<int>(argv.size()), argv.data());
  };
  EXPECT_EQ(run({"prog", "beta", "--x=1"}), 12);  // argv + 1: "beta", "--x=1"
  EXPECT_EQ(g_ran, 12);
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(run({"prog", "--help"}), kExitOk);
  EXPECT_EQ(::testing::internal::GetCapturedStdout(), help);
  for (const auto& args : std::vector<std::vector<std::string>>{{"prog"}, {"prog", "gamma"}, {"prog", "--x=1", "alpha"}}) {
    ::testing::internal::CaptureStderr();
    EXPECT_EQ(run(args), kExitUsage);
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("alpha, beta"), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  }
}

class WriteFileAtomicTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "cf_write_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  size_t Count() const { return static_cast<size_t>(std::distance(fs::directory_iterator(dir_), {})); }
  fs::path dir_;
};

TEST_F(WriteFileAtomicTest, WritesAndReplaces) {
  const fs::path f = dir_ / "out.txt";
  ASSERT_TRUE(WriteFileAtomic(f.string(), "one\n").ok());
  EXPECT_EQ(ReadAll(f), "one\n");
  ASSERT_TRUE(WriteFileAtomic(f.string(), std::string(1 << 20, 'x')).ok());
  EXPECT_EQ(fs::file_size(f), 1u << 20);
  EXPECT_EQ(Count(), 1u);
  // The mode a plain open() would give, not mkstemp's 0600.
  struct stat st {};
  ASSERT_EQ(::stat(f.c_str(), &st), 0);
  const mode_t mask = ::umask(0);
  ::umask(mask);
  EXPECT_EQ(st.st_mode & 0777, 0666 & ~mask);
}

TEST_F(WriteFileAtomicTest, RefusesWithoutLeavingATemporary) {
  fs::create_directory(dir_ / "sub");
  std::ofstream(dir_ / "plain") << "keep\n";
  for (const fs::path& p : {dir_ / "sub", dir_ / "sub/", dir_ / "missing" / "x", dir_ / "plain" / "x", dir_ / "plain/"}) {
    SCOPED_TRACE(p.string());
    const Status s = WriteFileAtomic(p.string(), "text");
    EXPECT_FALSE(s.ok());
    EXPECT_NE(std::string(s.message()).find(p.string()), std::string::npos) << s;
  }
  EXPECT_FALSE(WriteFileAtomic("", "text").ok());
  EXPECT_EQ(Count(), 2u);
  EXPECT_TRUE(fs::is_empty(dir_ / "sub"));
  EXPECT_EQ(ReadAll(dir_ / "plain"), "keep\n");
}

}  // namespace
}  // namespace cf::cli
