// `convfusion-module tokenize` run as a process: the printed ids and the
// written input_ids / attention_mask against the golden ids of
// tests/data/tokenizer/golden.json (transformers and OpenCLIP), plus usage
// errors (exit 2) and run-time errors (exit 1, no output file left).
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "nn/safetensors.h"
#include "tests/support/process.h"

namespace cf {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kExe = CF_MODULE_EXE;
const fs::path kData = fs::path(CF_SOURCE_DIR) / "tests" / "data" / "tokenizer";

testing::ProcessResult RunTokenize(const std::vector<std::string>& args, const fs::path& cwd) {
  std::vector<std::string> all = {"tokenize"};
  all.insert(all.end(), args.begin(), args.end());
  return testing::RunProcess(kExe, all, cwd);
}

const json& Case(const std::string& prompt) {
  static const json golden = [] {
    std::ifstream in(kData / "golden.json");
    return json::parse(in);
  }();
  for (const json& c : golden["cases"])
    if (c["prompt"] == prompt) return c;
  ADD_FAILURE() << "no golden case for " << prompt;
  static const json none;
  return none;
}

// The golden ids (up to the end token) padded to `length` with `pad`, as one line.
std::string Line(const json& ids, int64_t pad, size_t length = 77) {
  std::vector<int64_t> v = ids.get<std::vector<int64_t>>();
  v.resize(length, pad);
  return absl::StrJoin(v, " ");
}

TEST(TokenizeCommand, PrintsTheHuggingFaceIds) {
  testing::TempDir dir;
  const std::vector<std::string> prompts = {"a photo of a cat", "Hello, World! How's it going?",
                                            "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m"};
  std::vector<std::string> args = {"--tokenizer=" + (kData / "clip").string()};
  for (const std::string& p : prompts) args.push_back("--prompt=" + p);
  const auto r = RunTokenize(args, dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), prompts.size()) << r.out;
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(lines[i], Line(Case(prompts[i]).at("hf_eos_77"), 49407)) << prompts[i];
  EXPECT_EQ(dir.Entries(), std::vector<std::string>{});
}

TEST(TokenizeCommand, WritesOpenClipIdsAndMask) {
  testing::TempDir dir;
  const std::vector<std::string> prompts = {"\u201ccurly\u201d \u2018quotes\u2019 it\u2019s \u201ehere\u201f",
                                            "a very " + [] {
                                              std::string s;
                                              for (int i = 0; i < 59; ++i) s += "a very ";
                                              return s;
                                            }() + "long prompt"};
  const std::string out = dir / "ids.safetensors";
  const auto r = RunTokenize({"--tokenizer=" + (kData / "bpe_simple_vocab_16e6.txt.gz").string(), "--prompt", prompts[0],
                      "--prompt=" + prompts[1], "--max-length=10", "--output=" + out},
                     dir.path());
  if (r.err.find("has no zlib") != std::string::npos) GTEST_SKIP() << r.err;  // optional in CMakeLists.txt
  ASSERT_EQ(r.code, 0) << r.err;
  const SafetensorsFile f = SafetensorsFile::Open(out).value();
  const Tensor ids = f.Read("input_ids").value();
  const Tensor mask = f.Read("attention_mask").value();
  EXPECT_EQ(ids.dtype(), DType::i64);
  EXPECT_EQ(ids.shape(), (Shape{2, 10}));
  EXPECT_EQ(mask.shape(), (Shape{2, 10}));
  const std::vector<int64_t> got = ids.ToVector<int64_t>().value(), m = mask.ToVector<int64_t>().value();
  for (size_t i = 0; i < 2; ++i) {
    std::vector<int64_t> want = Case(prompts[i]).at("openclip_10").get<std::vector<int64_t>>();
    const size_t n = want.size();
    want.resize(10, 0);
    EXPECT_EQ(std::vector<int64_t>(got.begin() + 10 * i, got.begin() + 10 * (i + 1)), want) << prompts[i];
    for (size_t k = 0; k < 10; ++k) EXPECT_EQ(m[10 * i + k], k < n ? 1 : 0) << prompts[i] << " at " << k;
  }
  EXPECT_EQ(f.metadata().at("flavor"), "openclip");
  EXPECT_EQ(f.metadata().at("max_length"), "10");
  const std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1], Line(Case(prompts[1]).at("openclip_10"), 0, 10));
}

TEST(TokenizeCommand, SdxlTokenizer2PadsWithBang) {
  testing::TempDir dir;
  const fs::path folder = dir.path() / "tokenizer_2";
  fs::create_directory(folder);
  for (const char* f : {"vocab.json", "merges.txt"}) fs::copy_file(kData / "clip" / f, folder / f);
  for (const char* f : {"tokenizer_config.json", "special_tokens_map.json"})
    fs::copy_file(kData / "sdxl_tokenizer_2" / f, folder / f);
  const auto r = RunTokenize({"--tokenizer=" + folder.string(), "--prompt=hello!! world! !"}, dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, Line(Case("hello!! world! !").at("hf_bang_77"), 0) + "\n");
}

TEST(TokenizeCommand, Transformers4BasicTokenizer) {
  testing::TempDir dir;
  const std::string prompt = "bell\x07 null esc\x1b[31mred\x1b[0m del\x7f";
  const std::string folder = "--tokenizer=" + (kData / "clip").string();
  auto r = RunTokenize({folder, "--hf-pipeline=basic", "--prompt=" + prompt}, dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, Line(Case(prompt).at("hfbasic_eos_77"), 49407) + "\n");
  r = RunTokenize({folder, "--prompt=" + prompt}, dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, Line(Case(prompt).at("hf_eos_77"), 49407) + "\n");
  EXPECT_NE(Case(prompt).at("hf_eos_77"), Case(prompt).at("hfbasic_eos_77"));
}

TEST(TokenizeCommand, UsageErrors) {
  testing::TempDir dir;
  const std::string tok = "--tokenizer=" + (kData / "clip").string();
  struct Bad {
    std::vector<std::string> args;
    std::string says;
  };
  for (const Bad& b : std::vector<Bad>{{{"--prompt=x"}, "--tokenizer"},
                                       {{tok}, "--prompt"},
                                       {{tok, "--prompt"}, "--prompt: needs a value"},
                                       {{tok, "--prompt=x", "--max-length=1"}, "--max-length"},
                                       {{tok, "--prompt=x", "--bogus"}, "--bogus"},
                                       {{tok, "--prompt=x", "--hf-pipeline=slow"}, "--hf-pipeline"}}) {
    const auto r = RunTokenize(b.args, dir.path());
    EXPECT_EQ(r.code, 2) << absl::StrJoin(b.args, " ") << ": " << r.err;
    EXPECT_NE(r.err.find(b.says), std::string::npos) << r.err;
  }
}

TEST(TokenizeCommand, RunTimeErrorsLeaveNoOutput) {
  testing::TempDir dir;
  const std::string out = dir / "ids.safetensors";
  auto r = RunTokenize({"--tokenizer=" + (dir / "missing"), "--prompt=x", "--output=" + out}, dir.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("missing' does not exist"), std::string::npos) << r.err;
  r = RunTokenize({"--tokenizer=" + (kData / "clip").string(), "--prompt=ok", "--prompt=\xff", "--output=" + out},
          dir.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--prompt #2: invalid UTF-8"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(dir.Entries(), std::vector<std::string>{});
}

}  // namespace
}  // namespace cf
