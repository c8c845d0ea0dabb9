// convfusion-module transformer run as a process on the tiny PixArt folders
// under tests/data/pixart (tools/make_pixart_golden.py): the golden
// io.safetensors is the --input (its taps are ignored) and the written output
// must match diffusers' within 1e-4 relative (f32). Plus the load report, the
// authors' ConvBlocks as --extra-weights, a scalar timestep and no caption
// mask, the per-layer --attention overrides (transformer and unet), and the
// errors (exit 2 for the command line, 1 for the model or the files). The
// executable's path comes from tests/CMakeLists.txt (CF_MODULE_EXE).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "nn/attention.h"
#include "nn/safetensors.h"
#include "tests/support/model_golden.h"
#include "tests/support/process.h"

namespace cf {
namespace {

namespace fs = std::filesystem;
using testing::RelativeError;

const std::string kExe = CF_MODULE_EXE;
const fs::path kPixArt = fs::path(CF_SOURCE_DIR) / "tests" / "data" / "pixart";
const fs::path kUNet = fs::path(CF_SOURCE_DIR) / "tests" / "data" / "unet";

std::vector<double> Values(const SafetensorsFile& f, const std::string& name) {
  auto t = f.Read(name);
  EXPECT_TRUE(t.ok()) << name << ": " << t.status();
  if (!t.ok()) return {};
  auto v = t->ToVector<double>();
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *v : std::vector<double>{};
}

void ExpectContains(const std::string& text, const std::vector<std::string>& parts) {
  for (const std::string& p : parts) EXPECT_NE(text.find(p), std::string::npos) << "no '" << p << "' in:\n" << text;
}

struct RunResult {
  int code = -1;
  std::string out, err;
  std::vector<double> output;  // the written "output" (empty on failure)
};

// `args` + --input=`input` --output=<tmp>; the output tensor read back.
RunResult RunModule(std::vector<std::string> args, const fs::path& input) {
  testing::TempDir dir;
  args.push_back("--input=" + input.string());
  args.push_back("--output=" + dir / "out.safetensors");
  const auto r = testing::RunProcess(kExe, args, dir.path());
  RunResult run{r.code, r.out, r.err, {}};
  if (r.code == 0) {
    auto f = SafetensorsFile::Open(dir / "out.safetensors");
    EXPECT_TRUE(f.ok()) << f.status();
    if (f.ok()) {
      run.output = Values(*f, "output");
      EXPECT_EQ(f->metadata().at("module"), args[0]);
    }
  } else {
    EXPECT_FALSE(fs::exists(dir / "out.safetensors"));
  }
  return run;
}

std::vector<double> Golden(const fs::path& io) {
  auto f = SafetensorsFile::Open(io.string());
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() ? Values(*f, "output") : std::vector<double>{};
}

// Runs and expects success and diffusers' output within 1e-4. Returns stdout.
std::string RunAndMatch(const std::vector<std::string>& args, const fs::path& io) {
  SCOPED_TRACE(io.string());
  const RunResult r = RunModule(args, io);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_LE(RelativeError(r.output, Golden(io)), 1e-4);
  return r.out;
}

TEST(ModuleTransformer, MatchesDiffusers) {
  // A whole diffusers folder (transformer/ inside), PixArt-Sigma's layout.
  const fs::path sigma = kPixArt / "tiny_sigma";
  std::string out = RunAndMatch({"transformer", "--model=" + sigma.string()}, sigma / "io.safetensors");
  ExpectContains(out, {"transformer: " + (sigma / "transformer").string(), "dtype f32", "16208 parameters",
                       "config: 2 heads x 8, 2 layers, patch 2, sample_size 8", "caption mask: yes",
                       "2 transformer blocks, self-attention: self x2", "0 missing, 0 unexpected"});
  // Odd token grids (10 x 14 latents: 5 x 7 patches), the component folder itself.
  const fs::path odd = kPixArt / "tiny_sigma_odd";
  RunAndMatch({"transformer", "--model=" + (odd / "transformer").string()}, odd / "io.safetensors");
  // PixArt-alpha 1024-MS: resolution and aspect-ratio conditions.
  const fs::path alpha = kPixArt / "tiny_alpha_ms";
  out = RunAndMatch({"transformer", "--model=" + alpha.string()}, alpha / "io.safetensors");
  ExpectContains(out, {"resolution and aspect-ratio conditions", "0 missing, 0 unexpected"});
}

// The authors' ConvBlocks (conv1 tensors, and a config) on the base weights.
TEST(ModuleTransformer, ConvBlocksOnABaseCheckpoint) {
  const fs::path cb = kPixArt / "tiny_sigma_convblock";
  const std::string out = RunAndMatch({"transformer", "--model=" + (kPixArt / "tiny_sigma").string(),
                                       "--extra-weights=" + (cb / "transformer").string(), "--attention=convblock"},
                                      cb / "io.safetensors");
  ExpectContains(out, {"config from " + (cb / "transformer").string(), "self-attention: convblock:13:sigmoid x2",
                       "the unexpected tensors are attn1's"});
}

TEST(ModuleTransformer, ScalarTimestepAndNoCaptionMask) {
  testing::TempDir dir;
  const fs::path sigma = kPixArt / "tiny_sigma";
  auto io = SafetensorsFile::Open((sigma / "io.safetensors").string());
  ASSERT_TRUE(io.ok()) << io.status();
  const auto write = [&](const std::string& file, const Tensor& timestep, bool mask) {
    std::vector<std::pair<std::string, Tensor>> t = {{"hidden_states", *io->Read("hidden_states")},
                                                     {"encoder_hidden_states", *io->Read("encoder_hidden_states")},
                                                     {"timestep", timestep}};
    if (mask) {  // as i64, the tokenizer's dtype: any dtype is a mask
      auto m = io->Read("encoder_attention_mask")->ToVector<double>();
      std::vector<int64_t> v(m->begin(), m->end());
      t.push_back({"encoder_attention_mask", *Tensor::FromValues<int64_t>(v, Shape{2, 5})});
    }
    ASSERT_TRUE(WriteSafetensors(dir / file, t).ok());
  };
  write("scalar.safetensors", *Tensor::FromValues<double>({17.0}, Shape{}, DType::f64), true);
  write("batch.safetensors", *Tensor::FromValues<int64_t>({17, 17}, Shape{2}), true);
  write("nomask.safetensors", *Tensor::FromValues<int64_t>({17, 17}, Shape{2}), false);
  const std::vector<std::string> args = {"transformer", "--model=" + sigma.string()};
  const RunResult scalar = RunModule(args, dir / "scalar.safetensors");
  const RunResult batch = RunModule(args, dir / "batch.safetensors");
  ASSERT_EQ(scalar.code, 0) << scalar.err;
  ASSERT_EQ(batch.code, 0) << batch.err;
  EXPECT_EQ(RelativeError(scalar.output, batch.output), 0.0);
  EXPECT_GT(RelativeError(batch.output, Golden(sigma / "io.safetensors")), 1e-3);  // diffusers ran 999 and 17
  const RunResult nomask = RunModule(args, dir / "nomask.safetensors");
  ASSERT_EQ(nomask.code, 0) << nomask.err;
  ExpectContains(nomask.out, {"caption mask: no"});
  EXPECT_GT(RelativeError(nomask.output, batch.output), 1e-4);  // the first prompt has 2 padded tokens
}

TEST(ModuleTransformer, PerLayerAttention) {
  const fs::path base = kPixArt / "tiny_sigma", cb = kPixArt / "tiny_sigma_convblock";
  const fs::path io = cb / "io.safetensors";
  const std::vector<std::string> args = {"transformer", "--model=" + base.string(),
                                         "--extra-weights=" + (cb / "transformer").string()};
  const auto with = [&](const std::string& attention) {
    std::vector<std::string> a = args;
    a.push_back("--attention=" + attention);
    const RunResult r = RunModule(a, io);
    EXPECT_EQ(r.code, 0) << attention << ": " << r.err;
    return r;
  };
  const std::vector<double> golden = Golden(io);  // ConvBlocks in both blocks
  // A scope prefix selects every block under it: the golden's choice again.
  const RunResult all = with("self,transformer_blocks=convblock");
  EXPECT_LE(RelativeError(all.output, golden), 1e-4);
  ExpectContains(all.out, {"self-attention: convblock:13:sigmoid x2"});
  // The last match wins.
  EXPECT_LE(RelativeError(with("na:3,transformer_blocks=self,transformer_blocks.0=convblock,"
                               "transformer_blocks.1=convblock").output,
                          golden),
            1e-4);
  // One block back to self-attention (the base's attn1): only that one changes.
  const RunResult one = with("convblock,transformer_blocks.1=self");
  ExpectContains(one.out, {"self-attention: convblock:13:sigmoid x1, self x1"});
  const RunResult self = with("self");
  EXPECT_GT(RelativeError(one.output, golden), 1e-3);
  EXPECT_GT(RelativeError(one.output, self.output), 1e-3);
  EXPECT_GT(RelativeError(self.output, golden), 1e-3);
  // The other block alone replaced is yet another model.
  const RunResult other = with("convblock,transformer_blocks.0=self");
  ExpectContains(other.out, {"self-attention: convblock:13:sigmoid x1, self x1"});
  EXPECT_GT(RelativeError(other.output, one.output), 1e-3);
  // Neighborhood attention in one block uses that block's attn1 projections.
  const RunResult na = with("convblock,transformer_blocks.1=na:3");
  ExpectContains(na.out, {"convblock:13:sigmoid x1, na:3 x1"});
  EXPECT_GT(RelativeError(na.output, one.output), 1e-4);
}

// The same overrides in the UNet: scopes down to a transformer block.
TEST(ModuleTransformer, UNetPerLayerAttention) {
  const fs::path sd15 = kUNet / "tiny_sd15", io = sd15 / "io.safetensors";
  const auto with = [&](const std::string& attention) {
    const RunResult r = RunModule({"unet", "--model=" + sd15.string(), "--attention=" + attention}, io);
    EXPECT_EQ(r.code, 0) << attention << ": " << r.err;
    return r;
  };
  const std::vector<double> golden = Golden(io);
  // Every block overridden back to self-attention: diffusers' output.
  const RunResult back = with("na:3,down_blocks=self,mid_block=self,up_blocks=self");
  EXPECT_LE(RelativeError(back.output, golden), 1e-4);
  ExpectContains(back.out, {"self-attention: self x"});
  EXPECT_EQ(back.out.find("na:3"), std::string::npos) << back.out;
  // The mid block alone in neighborhood attention.
  const RunResult mid = with("self,mid_block=na:3");
  ExpectContains(mid.out, {"na:3 x1, self x"});
  EXPECT_GT(RelativeError(mid.output, golden), 1e-4);
  // The ConvBlock folder's config keys choose ConvBlocks everywhere; an
  // override of the same kernel leaves the golden, another kernel does not.
  const fs::path cb = kUNet / "tiny_sd15_convblock";
  const std::vector<std::string> extra = {"unet", "--model=" + sd15.string(),
                                          "--extra-weights=" + (cb / "unet").string()};
  auto a = extra;
  a.push_back("--attention=self,mid_block=convblock:3");
  const RunResult same = RunModule(a, cb / "io.safetensors");
  ASSERT_EQ(same.code, 0) << same.err;
  EXPECT_LE(RelativeError(same.output, Golden(cb / "io.safetensors")), 1e-4);
  a.back() = "--attention=self,mid_block=self";
  const RunResult self_mid = RunModule(a, cb / "io.safetensors");
  ASSERT_EQ(self_mid.code, 0) << self_mid.err;
  ExpectContains(self_mid.out, {"self x1"});
  EXPECT_GT(RelativeError(self_mid.output, Golden(cb / "io.safetensors")), 1e-4);
}

TEST(ModuleTransformer, AttentionFlagParses) {
  const std::string text =
      "convblock,down_blocks.0=na:13,transformer_blocks.3=self,down_blocks.0.attentions.1=window:8";
  auto c = ParseSelfAttentionChoices(text);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->ToString(), text);
  std::vector<int> matched(c->overrides.size(), 0);
  EXPECT_EQ(c->For("down_blocks.0.attentions.0.transformer_blocks.0", &matched)->ToString(), "na:13");
  EXPECT_EQ(c->For("down_blocks.0.attentions.1.transformer_blocks.0", &matched)->ToString(), "window:8");
  EXPECT_FALSE(c->For("down_blocks.00.attentions.0", &matched).has_value());  // whole scope parts only
  EXPECT_FALSE(c->For("up_blocks.transformer_blocks.3", &matched).has_value());
  EXPECT_EQ(c->For("transformer_blocks.3", &matched)->ToString(), "self");
  EXPECT_FALSE(c->For("transformer_blocks.30", &matched).has_value());
  EXPECT_EQ(matched, (std::vector<int>{2, 1, 1}));
  auto d = ParseSelfAttentionChoices("mid_block=na:3");  // no default: self
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->ToString(), "self,mid_block=na:3");
  for (const char* bad : {"na:4", "self,na:3", "self,=na:3", "self,mid_block.=na:3", "self,mid_block=na:4",
                          "self,,mid_block=self", ""}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(ParseSelfAttentionChoices(bad).ok());
  }
}

TEST(ModuleTransformer, Errors) {
  testing::TempDir dir;
  const std::string sigma = (kPixArt / "tiny_sigma").string();
  const std::string io = (kPixArt / "tiny_sigma" / "io.safetensors").string();
  const std::string out = "--output=" + dir / "out.safetensors";
  ASSERT_TRUE(WriteSafetensors(dir / "wide.safetensors",
                               {{"hidden_states", *Tensor::Zeros(Shape{1, 4, 8, 8}, DType::f32)},
                                {"timestep", *Tensor::Zeros(Shape{1}, DType::f32)},
                                {"encoder_hidden_states", *Tensor::Zeros(Shape{1, 3, 17}, DType::f32)}})
                  .ok());
  ASSERT_TRUE(WriteSafetensors(dir / "rank.safetensors",
                               {{"hidden_states", *Tensor::Zeros(Shape{4, 8, 8}, DType::f32)}})
                  .ok());
  struct Case {
    std::vector<std::string> args;
    int code;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {{"transformer", "--input=" + io, out}, 2, {"--model: is required"}},
      {{"transformer", "--model=" + sigma, "--input=" + io, out, "--attention=self,na:3"}, 2,
       {"--attention", "SCOPE=CHOICE"}},
      {{"transformer", "--model=" + sigma, "--input=" + io, out, "--attention=self,transformer_blocks.0=na:4"}, 2,
       {"--attention", "odd kernel"}},
      // A typo in a scope matches nothing: refused, with the scopes there are.
      {{"transformer", "--model=" + sigma, "--input=" + io, out, "--attention=self,transformer_block.0=na:3"}, 1,
       {"'transformer_block.0=na:3' matches no transformer block", "transformer_blocks.0, transformer_blocks.1"}},
      {{"unet", "--model=" + (kUNet / "tiny_sd15").string(),
        "--input=" + (kUNet / "tiny_sd15" / "io.safetensors").string(), out, "--attention=self,mid_blocks=na:3"},
       1, {"'mid_blocks=na:3' matches no transformer block", "down_blocks.0.attentions.0.transformer_blocks.0"}},
      {{"transformer", "--model=" + (kUNet / "tiny_sd15" / "unet").string(), "--input=" + io, out}, 1,
       {"is a UNet2DConditionModel, not a PixArtTransformer2DModel"}},
      {{"transformer", "--model=" + (kUNet / "tiny_sd15").string(), "--input=" + io, out}, 1,
       {"neither transformer/config.json nor config.json"}},
      {{"transformer", "--model=" + sigma, "--input=" + (kUNet / "tiny_sd15" / "io.safetensors").string(), out}, 1,
       {"has no tensor 'hidden_states'", "encoder_hidden_states [B, T, D]"}},
      {{"transformer", "--model=" + sigma, "--input=" + dir / "rank.safetensors", out}, 1,
       {"'hidden_states' f32[4, 8, 8] has rank 3"}},
      // Captions wider than caption_channels: the builder names both.
      {{"transformer", "--model=" + sigma, "--input=" + dir / "wide.safetensors", out}, 1,
       {"encoder_hidden_states must be [1, T, 16]", "[1, 3, 17]"}},
      // PixArt-alpha 1024 needs its micro-conditions.
      {{"transformer", "--model=" + (kPixArt / "tiny_alpha_ms").string(), "--input=" + io, out}, 1,
       {"has no tensor 'resolution'"}},
      // ConvBlocks without their weights: every missing one is named.
      {{"transformer", "--model=" + sigma, "--input=" + io, out, "--attention=convblock"}, 1,
       {"missing", "transformer_blocks.0.conv1.conv_up.weight"}},
  };
  for (const Case& c : cases) {
    std::string shown;
    for (const std::string& a : c.args) shown += " " + a;
    SCOPED_TRACE(shown);
    const auto r = testing::RunProcess(kExe, c.args, dir.path());
    EXPECT_EQ(r.code, c.code) << r.out << r.err;
    ExpectContains(r.err, c.parts);
    EXPECT_FALSE(fs::exists(dir / "out.safetensors"));
  }
}

}  // namespace
}  // namespace cf
