// convfusion-module unet / vae-decode / vae-encode run as processes on the
// tiny diffusers folders under tests/data/unet and tests/data/vae (made by
// tools/make_unet_golden.py and tools/make_vae_golden.py): the golden
// io.safetensors is the --input (its extra tensors are ignored), and the
// written outputs must match diffusers' within 1e-4 relative (f32). Plus the
// report of what loaded, a scalar timestep, a replaced self-attention, and
// the errors (exit 2 for the command line, 1 for the model or the files).
// The executable's path comes from tests/CMakeLists.txt (CF_MODULE_EXE).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nn/safetensors.h"
#include "tests/support/model_golden.h"
#include "tests/support/process.h"

namespace cf {
namespace {

namespace fs = std::filesystem;
using testing::RelativeError;

const std::string kExe = CF_MODULE_EXE;
const fs::path kData = fs::path(CF_SOURCE_DIR) / "tests" / "data";

testing::ProcessResult RunModule(const std::vector<std::string>& args, const fs::path& cwd) {
  return testing::RunProcess(kExe, args, cwd);
}

std::vector<double> Values(const SafetensorsFile& f, const std::string& name) {
  auto t = f.Read(name);
  EXPECT_TRUE(t.ok()) << name << ": " << t.status();
  if (!t.ok()) return {};
  auto v = t->ToVector<double>();
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *v : std::vector<double>{};
}

// Runs `args` + --input=<golden> --output=<tmp>/out.safetensors, expects
// success and each of `names` to match the golden file's tensor. Returns stdout.
std::string RunAndMatch(std::vector<std::string> args, const fs::path& golden, const std::vector<std::string>& names,
                        double tol = 1e-4) {
  SCOPED_TRACE(golden.string());
  testing::TempDir dir;
  args.push_back("--input=" + golden.string());
  args.push_back("--output=" + dir / "out.safetensors");
  const auto r = RunModule(args, dir.path());
  EXPECT_EQ(r.code, 0) << r.err;
  if (r.code != 0) return r.out;
  auto want = SafetensorsFile::Open(golden.string());
  auto got = SafetensorsFile::Open(dir / "out.safetensors");
  EXPECT_TRUE(want.ok() && got.ok());
  if (!want.ok() || !got.ok()) return r.out;
  for (const std::string& n : names) {
    const double rel = RelativeError(Values(*got, n), Values(*want, n));
    EXPECT_LE(rel, tol) << n;
  }
  EXPECT_EQ(got->metadata().at("dtype"), "f32");
  return r.out;
}

void ExpectContains(const std::string& text, const std::vector<std::string>& parts) {
  for (const std::string& p : parts) EXPECT_NE(text.find(p), std::string::npos) << "no '" << p << "' in:\n" << text;
}

TEST(ModuleModels, UNetMatchesDiffusers) {
  // A whole diffusers folder (unet/ inside), f32 in one file.
  const fs::path sd15 = kData / "unet" / "tiny_sd15";
  const std::string out = RunAndMatch({"unet", "--model=" + sd15.string()}, sd15 / "io.safetensors", {"output"});
  ExpectContains(out, {"unet: " + (sd15 / "unet").string(), "dtype f32", "201924 parameters", "config: block_out_channels [16, 32]",
                       "self-attention: self x", "loaded", "0 missing, 0 unexpected"});
  // The odd size on the same weights.
  RunAndMatch({"unet", "--model=" + sd15.string()}, kData / "unet" / "tiny_sd15_odd" / "io.safetensors", {"output"});
  // The component folder itself: SDXL's text-time inputs, f16 weights in shards.
  const fs::path sdxl = kData / "unet" / "tiny_sdxl";
  RunAndMatch({"unet", "--model=" + (sdxl / "unet").string()}, sdxl / "io.safetensors", {"output"});
}

// The authors' ConvBlocks on a base checkpoint: their folder (config with
// the conv1 kernel keys, conv1 tensors only) as --extra-weights.
TEST(ModuleModels, UNetConvBlocksOnABaseCheckpoint) {
  const fs::path cb = kData / "unet" / "tiny_sd15_convblock";
  const std::string out =
      RunAndMatch({"unet", "--model=" + (kData / "unet" / "tiny_sd15").string(),
                   "--extra-weights=" + (cb / "unet").string()},
                  cb / "io.safetensors", {"output"});
  ExpectContains(out, {"config from " + (cb / "unet").string(), "self-attention: convblock:",
                       "the unexpected tensors are attn1's"});
  EXPECT_EQ(out.find("self-attention: self"), std::string::npos) << out;
}

TEST(ModuleModels, UNetScalarTimestepAndAttentionChoice) {
  testing::TempDir dir;
  const fs::path sd15 = kData / "unet" / "tiny_sd15";
  auto io = SafetensorsFile::Open((sd15 / "io.safetensors").string());
  ASSERT_TRUE(io.ok()) << io.status();
  const auto write = [&](const std::string& file, const Tensor& timestep) {
    ASSERT_TRUE(WriteSafetensors(dir / file, {{"sample", *io->Read("sample")},
                                              {"encoder_hidden_states", *io->Read("encoder_hidden_states")},
                                              {"timestep", timestep}})
                    .ok());
  };
  write("scalar.safetensors", *Tensor::FromValues<double>({17.0}, Shape{}, DType::f64));
  write("batch.safetensors", *Tensor::FromValues<int64_t>({17, 17}, Shape{2}));
  const auto run = [&](const std::string& in, const std::string& attention) {
    const auto r = RunModule({"unet", "--model=" + sd15.string(), "--input=" + dir / in, "--output=" + dir / "out.safetensors",
                        "--attention=" + attention},
                       dir.path());
    EXPECT_EQ(r.code, 0) << r.err;
    auto f = SafetensorsFile::Open(dir / "out.safetensors");
    EXPECT_TRUE(f.ok());
    return std::make_pair(r.out, f.ok() ? Values(*f, "output") : std::vector<double>{});
  };
  const auto scalar = run("scalar.safetensors", "self").second;
  EXPECT_EQ(RelativeError(scalar, run("batch.safetensors", "self").second), 0.0);
  // Neighborhood attention reuses attn1's projections: it runs and differs.
  const auto [report, na] = run("batch.safetensors", "na:3");
  ExpectContains(report, {"self-attention: na:3 x", "0 missing, 0 unexpected"});  // the same projections
  const double diff = RelativeError(na, scalar);
  EXPECT_GT(diff, 1e-3);
  EXPECT_TRUE(std::isfinite(diff));
  // A ConvBlock needs conv1 weights the base checkpoint lacks: every one is named.
  const auto r = RunModule({"unet", "--model=" + sd15.string(), "--input=" + dir / "batch.safetensors",
                      "--output=" + dir / "cb.safetensors", "--attention=convblock:5"},
                     dir.path());
  EXPECT_EQ(r.code, 1);
  ExpectContains(r.err, {"missing", "conv1.conv_up.weight"});
  EXPECT_FALSE(fs::exists(dir / "cb.safetensors"));
}

TEST(ModuleModels, VaeMatchesDiffusers) {
  const fs::path vae = kData / "vae" / "tiny_vae";
  for (const char* c : {"tiny_vae", "tiny_vae_odd"}) {
    SCOPED_TRACE(c);
    const fs::path io = kData / "vae" / c / "io.safetensors";
    const std::string enc = RunAndMatch({"vae-encode", "--model=" + vae.string()}, io, {"latent_mean", "latent_logvar"});
    ExpectContains(enc, {"vae (encoder): " + (vae / "vae").string(), "24504 parameters", "block_out_channels [8, 16, 16], layers_per_block 1", "scaling_factor 0.18215", "0 missing"});
    const std::string dec = RunAndMatch({"vae-decode", "--model=" + (vae / "vae").string()}, io, {"output"});
    ExpectContains(dec, {"vae (decoder)", "37959 parameters", "0 missing", "encoder.* and quant_conv.*"});
  }
}

// A VAE folder saved before diffusers 0.14 (query / key / value / proj_attn).
TEST(ModuleModels, VaeWithOldAttentionNames) {
  testing::TempDir dir;
  const fs::path vae = kData / "vae" / "tiny_vae" / "vae";
  auto src = SafetensorsFile::Open((vae / "diffusion_pytorch_model.safetensors").string());
  ASSERT_TRUE(src.ok()) << src.status();
  std::vector<std::pair<std::string, Tensor>> old;
  for (const std::string& k : src->names()) {
    std::string name = k;
    if (const size_t at = name.find(".to_out.0."); at != std::string::npos) name.replace(at, 10, ".proj_attn.");
    if (const size_t at = name.find(".to_q."); at != std::string::npos) name.replace(at, 6, ".query.");
    old.push_back({name, *src->Read(k)});
  }
  fs::create_directories(dir.path() / "old" / "vae");
  fs::copy_file(vae / "config.json", dir.path() / "old" / "vae" / "config.json");
  ASSERT_TRUE(WriteSafetensors(dir / "old/vae/diffusion_pytorch_model.safetensors", old).ok());
  const fs::path io = kData / "vae" / "tiny_vae" / "io.safetensors";
  const std::string out = RunAndMatch({"vae-decode", "--model=" + dir / "old"}, io, {"output"});
  ExpectContains(out, {"8 tensors under the old attention names", "0 missing"});
}

TEST(ModuleModels, Errors) {
  testing::TempDir dir;
  const std::string io = (kData / "vae" / "tiny_vae" / "io.safetensors").string();
  const std::string out = "--output=" + dir / "out.safetensors";
  struct Case {
    std::vector<std::string> args;
    int code;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {{"vae-decode", "--input=" + io, out}, 2, {"--model: is required"}},
      {{"vae-decode", "--model=" + (kData / "vae").string(), out}, 2, {"--input: is required"}},
      {{"unet", "--model=x", "--input=" + io, out, "--attention=na:4"}, 2, {"--attention", "odd kernel"}},
      {{"vae-decode", "--model=" + dir / "nowhere", "--input=" + io, out}, 1, {"not a folder"}},
      {{"vae-decode", "--model=" + dir.path().string(), "--input=" + io, out}, 1,
       {"neither vae/config.json nor config.json"}},
      {{"vae-decode", "--model=" + (kData / "unet" / "tiny_sd15").string(), "--input=" + io, out}, 1,
       {"neither vae/config.json"}},
      {{"vae-decode", "--model=" + (kData / "unet" / "tiny_sd15" / "unet").string(), "--input=" + io, out}, 1,
       {"is a UNet2DConditionModel, not a AutoencoderKL"}},
      {{"unet", "--model=" + (kData / "unet" / "tiny_sd15").string(), "--input=" + io, out}, 1,
       {"has no tensor 'sample'", "image"}},
      // image [2, 3, 16, 16] handed to the decoder as latents: the channel count is named.
      {{"vae-encode", "--model=" + (kData / "vae" / "tiny_vae").string(),
        "--input=" + (kData / "unet" / "tiny_sd15" / "io.safetensors").string(), out},
       1, {"has no tensor 'image'"}},
  };
  for (const Case& c : cases) {
    std::string shown;
    for (const std::string& a : c.args) shown += " " + a;
    SCOPED_TRACE(shown);
    const auto r = RunModule(c.args, dir.path());
    EXPECT_EQ(r.code, c.code) << r.out << r.err;
    ExpectContains(r.err, c.parts);
    EXPECT_FALSE(fs::exists(dir / "out.safetensors"));
  }
  // Latents with the wrong channel count: the builder's error names the shape.
  ASSERT_TRUE(WriteSafetensors(dir / "bad.safetensors",
                               {{"latents", *Tensor::Zeros(Shape{1, 3, 4, 4}, DType::f32)}})
                  .ok());
  const auto r = RunModule({"vae-decode", "--model=" + (kData / "vae" / "tiny_vae").string(),
                      "--input=" + dir / "bad.safetensors", out},
                     dir.path());
  EXPECT_EQ(r.code, 1);
  ExpectContains(r.err, {"decode", "[B, 4, h, w]", "f32[1, 3, 4, 4]"});
}

}  // namespace
}  // namespace cf
