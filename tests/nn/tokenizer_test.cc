// The CLIP tokenizer (nn/clip_tokenizer.h) against its two references on the
// prompts of tests/data/tokenizer/golden.json (tools/make_tokenizer_golden.py:
// transformers' CLIPTokenizer on SD1.5's folder, which pads with
// <|endoftext|>, and on SDXL's tokenizer_2 folder, which pads with "!";
// OpenCLIP's SimpleTokenizer), at max_length 77 and 10; then the pieces
// (byte table, text fixes, splits, BPE) and the errors.
#include "nn/clip_tokenizer.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "nn/clip_text.h"
#include "tests/support/process.h"

namespace cf {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path DataDir() { return fs::path(CF_SOURCE_DIR) / "tests" / "data" / "tokenizer"; }

const json& Golden() {
  static const json j = [] {
    std::ifstream in(DataDir() / "golden.json");
    return json::parse(in);
  }();
  return j;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// SDXL's tokenizer_2: its config files beside the shared vocab.json and merges.txt.
class SdxlFolder {
 public:
  SdxlFolder() {
    for (const char* f : {"vocab.json", "merges.txt"}) fs::copy_file(DataDir() / "clip" / f, dir_.path() / f);
    for (const char* f : {"tokenizer_config.json", "special_tokens_map.json"})
      fs::copy_file(DataDir() / "sdxl_tokenizer_2" / f, dir_.path() / f);
  }
  std::string path() const { return dir_.path().string(); }

 private:
  testing::TempDir dir_;
};

const ClipTokenizer& Sd15() {
  static const ClipTokenizer t = ClipTokenizer::Load((DataDir() / "clip").string()).value();
  return t;
}
const ClipTokenizer& Sdxl2() {
  static const SdxlFolder* folder = new SdxlFolder();
  static const ClipTokenizer t = ClipTokenizer::Load(folder->path()).value();
  return t;
}
const ClipTokenizer& Sd15Basic() {
  static const ClipTokenizer t =
      ClipTokenizer::Load((DataDir() / "clip").string(), ClipTokenizerFlavor::kHuggingFaceBasic).value();
  return t;
}
const ClipTokenizer& Sdxl2Basic() {
  static const SdxlFolder* folder = new SdxlFolder();
  static const ClipTokenizer t = ClipTokenizer::Load(folder->path(), ClipTokenizerFlavor::kHuggingFaceBasic).value();
  return t;
}
const ClipTokenizer& Sd15Ftfy() {
  static const ClipTokenizer t =
      ClipTokenizer::Load((DataDir() / "clip").string(), ClipTokenizerFlavor::kHuggingFaceFtfy).value();
  return t;
}
const ClipTokenizer& Sdxl2Ftfy() {
  static const SdxlFolder* folder = new SdxlFolder();
  static const ClipTokenizer t = ClipTokenizer::Load(folder->path(), ClipTokenizerFlavor::kHuggingFaceFtfy).value();
  return t;
}
// The .gz needs zlib, which CMakeLists.txt treats as optional.
bool HaveZlib() {
  static const bool have = ClipTokenizer::Load((DataDir() / "bpe_simple_vocab_16e6.txt.gz").string()).status().code() !=
                           absl::StatusCode::kUnimplemented;
  return have;
}
#define SKIP_WITHOUT_ZLIB() \
  if (!HaveZlib()) GTEST_SKIP() << "this build has no zlib for bpe_simple_vocab_16e6.txt.gz"

const ClipTokenizer& OpenClip() {
  static const ClipTokenizer t = ClipTokenizer::Load((DataDir() / "bpe_simple_vocab_16e6.txt.gz").string()).value();
  return t;
}

std::string Escaped(const std::string& s) { return json(s).dump(); }

// Every golden prompt, for one reference (`key`: "hf_eos_77", ...) and
// length. The file holds the ids up to the end token; the generator checked
// that the reference pads with its pad id and masks exactly the rest.
void ExpectGolden(const ClipTokenizer& tok, const std::string& key, int64_t max_length) {
  ASSERT_GE(Golden()["cases"].size(), 40u);
  const std::string reference = key.substr(0, key.rfind('_'));
  const int64_t pad = Golden()["meta"]["pad_ids"].at(reference).get<int64_t>();
  EXPECT_EQ(tok.pad_id(), pad) << reference;
  for (const json& c : Golden()["cases"]) {
    const std::string prompt = c["prompt"].get<std::string>();
    const StatusOr<ClipEncoding> e = tok.Tokenize(prompt, max_length);
    ASSERT_TRUE(e.ok()) << Escaped(prompt) << ": " << e.status();
    std::vector<int64_t> want = c.at(key).get<std::vector<int64_t>>();
    const size_t n = want.size();
    want.resize(static_cast<size_t>(max_length), pad);
    std::vector<int64_t> mask(n, 1);
    mask.resize(static_cast<size_t>(max_length), 0);
    EXPECT_EQ(e->ids, want) << key << " of " << Escaped(prompt);
    EXPECT_EQ(e->attention_mask, mask) << key << " of " << Escaped(prompt);
  }
}

TEST(ClipTokenizerGolden, HuggingFaceEosPadding) {
  EXPECT_EQ(Sd15().pad_id(), 49407);
  EXPECT_EQ(Sd15().model_max_length(), 77);
  ExpectGolden(Sd15(), "hf_eos_77", 77);
  ExpectGolden(Sd15(), "hf_eos_10", 10);
}

TEST(ClipTokenizerGolden, HuggingFaceBangPadding) {
  EXPECT_EQ(Sdxl2().pad_id(), 0);
  ExpectGolden(Sdxl2(), "hf_bang_77", 77);
  ExpectGolden(Sdxl2(), "hf_bang_10", 10);
}

TEST(ClipTokenizerGolden, Transformers4BasicTokenizer) {
  EXPECT_EQ(Sd15Basic().flavor(), ClipTokenizerFlavor::kHuggingFaceBasic);
  ExpectGolden(Sd15Basic(), "hfbasic_eos_77", 77);
  ExpectGolden(Sd15Basic(), "hfbasic_eos_10", 10);
  ExpectGolden(Sdxl2Basic(), "hfbasic_bang_77", 77);
  ExpectGolden(Sdxl2Basic(), "hfbasic_bang_10", 10);
}

TEST(ClipTokenizerGolden, Transformers4WithFtfy) {
  EXPECT_EQ(Sd15Ftfy().flavor(), ClipTokenizerFlavor::kHuggingFaceFtfy);
  ExpectGolden(Sd15Ftfy(), "hfftfy_eos_77", 77);
  ExpectGolden(Sd15Ftfy(), "hfftfy_eos_10", 10);
  ExpectGolden(Sdxl2Ftfy(), "hfftfy_bang_77", 77);
  ExpectGolden(Sdxl2Ftfy(), "hfftfy_bang_10", 10);
}

TEST(ClipTokenizerGolden, OpenClip) {
  SKIP_WITHOUT_ZLIB();
  EXPECT_EQ(OpenClip().vocab_size(), 49408);
  EXPECT_EQ(OpenClip().bos_id(), 49406);
  EXPECT_EQ(OpenClip().eos_id(), 49407);
  ExpectGolden(OpenClip(), "openclip_77", 77);
  ExpectGolden(OpenClip(), "openclip_10", 10);
}

TEST(ClipTokenizerGolden, OpenClipCleaning) {
  for (const json& c : Golden()["cases"]) {
    const std::string prompt = c["prompt"].get<std::string>();
    const std::u32string text = clip::DecodeUtf8(prompt).value();
    EXPECT_EQ(clip::EncodeUtf8(clip::OpenClipClean(text)), c.at("openclip_clean").get<std::string>()) << Escaped(prompt);
  }
}

TEST(ClipTokenizerGolden, MaskCoversBosToEos) {
  SKIP_WITHOUT_ZLIB();
  const ClipEncoding e = OpenClip().Tokenize("a photo of a cat").value();
  ASSERT_EQ(e.ids.size(), 77u);
  EXPECT_EQ(std::vector<int64_t>(e.attention_mask.begin(), e.attention_mask.begin() + 7),
            std::vector<int64_t>(7, 1));
  EXPECT_EQ(e.ids[6], 49407);
  EXPECT_EQ(e.attention_mask[7], 0);
}

// ---- Pieces ----------------------------------------------------------------------

TEST(ClipText, ByteTableIsABijectionOntoPrintables) {
  std::vector<bool> seen(512, false);
  for (int b = 0; b < 256; ++b) {
    const char32_t c = clip::ByteToUnicode(static_cast<uint8_t>(b));
    ASSERT_LT(c, 512u);
    EXPECT_FALSE(seen[c]) << b;
    seen[c] = true;
    EXPECT_FALSE(clip::IsWhiteSpace(c)) << b;
  }
  EXPECT_EQ(clip::ByteToUnicode('a'), U'a');
  EXPECT_EQ(clip::ByteToUnicode(' '), 0x120u);  // 'Ġ'
  EXPECT_EQ(clip::ByteToUnicode(0), 0x100u);
  EXPECT_EQ(clip::ByteToUnicode(0xAD), 0x143u);
  // Round trip through UTF-8: "é" is bytes C3 A9 -> "Ã©".
  EXPECT_EQ(clip::ByteSymbols(U"\u00e9"), (std::vector<std::string>{"\u00c3", "\u00a9"}));
}

TEST(ClipText, Utf8RoundTripAndErrors) {
  const std::u32string s = U"a\u00e9\u4e2d\U0001F431";
  EXPECT_EQ(clip::DecodeUtf8(clip::EncodeUtf8(s)).value(), s);
  for (const std::string bad : {"\xff", "a\xc3", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe4\xb8x"}) {
    const auto r = clip::DecodeUtf8(bad);
    EXPECT_FALSE(r.ok()) << Escaped(bad);
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("offset"), std::string::npos) << r.status();
    }
  }
}

TEST(ClipText, ClipSplitFollowsTheRegex) {
  auto split = [](const std::u32string& s, bool ignore_case = false) {
    std::vector<std::string> out;
    for (const auto& p : clip::ClipSplit(s, {U"<|startoftext|>", U"<|endoftext|>"}, ignore_case))
      out.push_back(clip::EncodeUtf8(p));
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(split(U"it's a cat's 'll"), (V{"it", "'s", "a", "cat", "'s", "'ll"}));
  EXPECT_EQ(split(U"abc123 4.5"), (V{"abc", "1", "2", "3", "4", ".", "5"}));
  EXPECT_EQ(split(U"hi!!?  ;)"), (V{"hi", "!!?", ";)"}));
  EXPECT_EQ(split(U"x<|endoftext|>y"), (V{"x", "<|endoftext|>", "y"}));
  EXPECT_EQ(split(U"!<|endoftext|>"), (V{"!<|", "endoftext", "|>"}));  // a run of others does not stop at a special
  EXPECT_EQ(split(U"'S"), (V{"'", "S"}));
  EXPECT_EQ(split(U"'S", true), (V{"'S"}));
  EXPECT_EQ(split(U"'\u017f", true), (V{"'\u017f"}));
  EXPECT_EQ(split(U"a!\u0345!", false), (V{"a", "!\u0345!"}));
  EXPECT_EQ(split(U"a!\u0345!", true), (V{"a", "!", "!"}));  // U+0345 matches nothing under IGNORECASE
  EXPECT_EQ(split(U"\u00e9t\u00e9 \u4e2d\u6587 \u0661"), (V{"\u00e9t\u00e9", "\u4e2d\u6587", "\u0661"}));
  EXPECT_EQ(split(U"a\u3000b\u00a0c"), (V{"a", "b", "c"}));
  EXPECT_TRUE(split(U"").empty());
  // The ByteLevel split re-splits a special-token match.
  std::vector<std::string> g;
  for (const auto& p : clip::Gpt2Split(U"<|endoftext|>")) g.push_back(clip::EncodeUtf8(p));
  EXPECT_EQ(g, (V{"<|", "endoftext", "|>"}));
}

TEST(ClipText, Normalisation) {
  EXPECT_EQ(clip::Nfc(U"e\u0301"), U"\u00e9");
  EXPECT_EQ(clip::Nfc(U"q\u0307\u0323"), U"q\u0323\u0307");          // reordered, nothing to compose with q
  EXPECT_EQ(clip::Nfc(U"\u1100\u1161\u11a8"), U"\uac01");              // Hangul L V T
  EXPECT_EQ(clip::Nfc(U"\u212b"), U"\u00c5");                          // singleton
  EXPECT_EQ(clip::LowercaseChars(U"\u0130\u03a3A"), U"i\u0307\u03c3a");  // no final sigma
  EXPECT_EQ(clip::PythonLower(U"\u039f\u0394\u039f\u03a3 \u03a3"), U"\u03bf\u03b4\u03bf\u03c2 \u03c3");
  EXPECT_EQ(clip::HtmlUnescape(U"&amp;amp; &ampx &notit; &#65 &#x263a; &#150; &#0; &bogus;"),
            U"&amp; &x \u00acit; A \u263a \u2013 \ufffd &bogus;");
  EXPECT_EQ(clip::FtfyFixText(U"\ufb01 \uff21 \u201cq\u2019 \x1b[31mred\x1b[0m a\u0007b\r\nc"), U"fi A \"q' red ab\nc");
  EXPECT_EQ(clip::FtfyFixText(U"&lt;b&gt;"), U"<b>");
  EXPECT_EQ(clip::FtfyFixText(U"<b> &lt;"), U"<b> &lt;");  // a '<' turns HTML unescaping off
  EXPECT_EQ(clip::BertBasicClean(U" A\u0007B\u00ad\tC\u4e2d\u6587 \u039f\u03a3\u0000 "), U"ab c \u4e2d \u6587 \u03bf\u03c2");
}

TEST(ClipTokenizerBpe, KnownWords) {
  SKIP_WITHOUT_ZLIB();
  const ClipTokenizer& t = Sd15();
  EXPECT_EQ(t.Bpe(clip::ByteSymbols(U"hello")), (std::vector<std::string>{"hello</w>"}));
  EXPECT_EQ(t.TokenId("hello</w>"), 3306);
  EXPECT_EQ(t.Bpe(clip::ByteSymbols(U"endoftext")), (std::vector<std::string>{"endof", "text</w>"}));
  EXPECT_EQ(t.Bpe(clip::ByteSymbols(U"a")), (std::vector<std::string>{"a</w>"}));
  EXPECT_EQ(t.Encode("a photo of a cat").value(), (std::vector<int64_t>{320, 1125, 539, 320, 2368}));
  // Both references share the vocabulary and merges.
  EXPECT_EQ(OpenClip().Encode("supercalifragilistic").value(), t.Encode("supercalifragilistic").value());
}

TEST(ClipTokenizerBpe, TruncationKeepsTheEndToken) {
  SKIP_WITHOUT_ZLIB();
  std::string long_prompt;
  for (int i = 0; i < 100; ++i) long_prompt += "cat ";
  for (const ClipTokenizer* t : {&Sd15(), &Sdxl2(), &OpenClip()}) {
    const ClipEncoding e = t->Tokenize(long_prompt, 77).value();
    ASSERT_EQ(e.ids.size(), 77u);
    EXPECT_EQ(e.ids.front(), t->bos_id());
    EXPECT_EQ(e.ids.back(), t->eos_id());
    EXPECT_EQ(e.ids[75], 2368);
    EXPECT_EQ(e.attention_mask, std::vector<int64_t>(77, 1));
    const ClipEncoding two = t->Tokenize(long_prompt, 2).value();
    EXPECT_EQ(two.ids, (std::vector<int64_t>{t->bos_id(), t->eos_id()}));
    EXPECT_FALSE(t->Tokenize("x", 1).ok());
  }
}

TEST(ClipTokenizerBpe, ThreadSafeCache) {
  SKIP_WITHOUT_ZLIB();
  const ClipTokenizer& t = OpenClip();
  const std::vector<int64_t> want = t.Encode("thread safe tokenizer words 123").value();
  std::vector<std::thread> threads;
  std::vector<bool> ok(4, false);
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      bool all = true;
      for (int k = 0; k < 200; ++k) all = all && t.Encode("thread safe tokenizer words 123").value() == want;
      ok[i] = all;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok, std::vector<bool>(4, true));
}

// ---- Errors ----------------------------------------------------------------------

std::string LoadError(const std::string& path) {
  const StatusOr<ClipTokenizer> t = ClipTokenizer::Load(path);
  EXPECT_FALSE(t.ok()) << path;
  return t.ok() ? "" : std::string(t.status().message());
}

TEST(ClipTokenizerErrors, MissingFiles) {
  testing::TempDir dir;
  EXPECT_NE(LoadError(dir / "nothing").find("does not exist"), std::string::npos);
  EXPECT_NE(LoadError(dir / "x.gz").find("x.gz"), std::string::npos);
  EXPECT_NE(LoadError(dir.path().string()).find("vocab.json"), std::string::npos);
  WriteFile(dir / "plain.txt", "x");
  EXPECT_NE(LoadError(dir / "plain.txt").find("neither"), std::string::npos);
  EXPECT_FALSE(
      ClipTokenizer::Load((DataDir() / "bpe_simple_vocab_16e6.txt.gz").string(), ClipTokenizerFlavor::kHuggingFaceBasic)
          .ok());
  EXPECT_FALSE(ClipTokenizer::LoadHuggingFace((DataDir() / "clip").string(), ClipTokenizerFlavor::kOpenClip).ok());
}

TEST(ClipTokenizerErrors, MalformedHuggingFaceFiles) {
  testing::TempDir dir;
  const std::string vocab = R"({"a": 0, "b": 1, "ab": 2, "a</w>": 3, "b</w>": 4, "ab</w>": 5, "<|startoftext|>": 6,
 "<|endoftext|>": 7})";
  WriteFile(dir / "vocab.json", "{\"a\": 0,\n \"b\": }");
  std::string e = LoadError(dir.path().string());
  EXPECT_NE(e.find("vocab.json"), std::string::npos) << e;
  EXPECT_NE(e.find("line 2"), std::string::npos) << e;
  WriteFile(dir / "vocab.json", R"({"a": "zero"})");
  e = LoadError(dir.path().string());
  EXPECT_NE(e.find("'a'"), std::string::npos) << e;
  WriteFile(dir / "vocab.json", vocab);
  WriteFile(dir / "merges.txt", "#version: 0.2\na b\na b c\n");
  e = LoadError(dir.path().string());
  EXPECT_NE(e.find("merges.txt' line 3"), std::string::npos) << e;
  WriteFile(dir / "merges.txt", "#version: 0.2\na b\nb q\n");
  e = LoadError(dir.path().string());
  EXPECT_NE(e.find("line 3: 'q' is not in vocab.json"), std::string::npos) << e;
  WriteFile(dir / "merges.txt", "#version: 0.2\na b</w>\n");
  WriteFile(dir / "tokenizer_config.json", R"({"pad_token": "zz"})");
  e = LoadError(dir.path().string());
  EXPECT_NE(e.find("pad_token 'zz'"), std::string::npos) << e;
  WriteFile(dir / "tokenizer_config.json", R"({"pad_token": 7})");
  e = LoadError(dir.path().string());
  EXPECT_NE(e.find("tokenizer_config.json': pad_token"), std::string::npos) << e;
  WriteFile(dir / "tokenizer_config.json", R"({"pad_token": {"content": "a", "lstrip": true}})");
  e = LoadError(dir.path().string());
  EXPECT_NE(e.find("lstrip"), std::string::npos) << e;
  // A well-formed tiny folder loads; pieces missing from its vocabulary become
  // unk; the pad token is split out of the text as a special token (as "!" is
  // by SDXL's tokenizer_2).
  WriteFile(dir / "tokenizer_config.json", R"({"pad_token": "a", "model_max_length": 5})");
  const ClipTokenizer t = ClipTokenizer::Load(dir.path().string()).value();
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_EQ(t.model_max_length(), 5);
  EXPECT_EQ(t.Encode("bab b").value(), (std::vector<int64_t>{4, 0, 4, 4}));
  EXPECT_EQ(t.Encode("x").value(), (std::vector<int64_t>{7}));
  EXPECT_EQ(t.Tokenize("ab").value().ids, (std::vector<int64_t>{6, 0, 4, 7, 0}));
  WriteFile(dir / "added_tokens.json", R"({"<cat-toy>": 8})");
  e = LoadError(dir.path().string());
  EXPECT_NE(e.find("added_tokens.json': extra added tokens"), std::string::npos) << e;
  WriteFile(dir / "added_tokens.json", "{}");
  WriteFile(dir / "tokenizer_config.json", "{}");
  const ClipTokenizer u = ClipTokenizer::Load(dir.path().string()).value();
  EXPECT_EQ(u.pad_id(), 7);
  EXPECT_EQ(u.model_max_length(), 77);
  EXPECT_EQ(u.Encode("ab b").value(), (std::vector<int64_t>{5, 4}));
  const auto bad = t.Encode("\xff");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("invalid UTF-8: byte 0xff at offset 0"), std::string::npos) << bad.status();
}

TEST(ClipTokenizerErrors, MalformedOpenClipFile) {
  testing::TempDir dir;
  WriteFile(dir / "bad.gz", "not gzip at all");
  const std::string e = LoadError(dir / "bad.gz");
  EXPECT_NE(e.find("bad.gz"), std::string::npos) << e;  // too few merge lines (zlib reads plain text as is)
}

}  // namespace
}  // namespace cf
