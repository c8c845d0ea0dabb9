// convfusion-module text-encoder, run as a process on the tiny SDXL-like
// folder of tests/data/clip (tools/make_clip_golden.py): both encoders from
// the diffusers folder and from a component folder, --prompt through the
// tokenizer, --attention-mask, the report, and the errors.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nn/safetensors.h"
#include "runtime/tensor.h"
#include "tests/support/process.h"

namespace cf {
namespace {

namespace fs = std::filesystem;

const std::string kExe = CF_MODULE_EXE;
const fs::path kData = fs::path(CF_SOURCE_DIR) / "tests" / "data" / "clip" / "tiny_sdxl";

testing::ProcessResult RunTextEncoder(const std::vector<std::string>& args, const fs::path& cwd) {
  std::vector<std::string> all = {"text-encoder"};
  all.insert(all.end(), args.begin(), args.end());
  return testing::RunProcess(kExe, all, cwd);
}

// max |got - want| / max |want| of two F32 tensors of one shape (1 on a mismatch).
double RelativeError(const SafetensorsFile& got, const std::string& name, const SafetensorsFile& want,
                     const std::string& want_name) {
  auto g = got.Read(name);
  auto w = want.Read(want_name);
  if (!g.ok() || !w.ok() || g->shape() != w->shape()) {
    ADD_FAILURE() << name << ": " << g.status() << " / " << w.status();
    return 1;
  }
  const std::vector<double> gv = *g->ToVector<double>(), wv = *w->ToVector<double>();
  double err = 0, scale = 0;
  for (size_t i = 0; i < wv.size(); ++i) {
    err = std::max(err, std::isnan(gv[i]) ? INFINITY : std::abs(gv[i] - wv[i]));
    scale = std::max(scale, std::abs(wv[i]));
  }
  return err / scale;
}

TEST(TextEncoderCommand, BothEncodersMatchTransformers) {
  testing::TempDir dir;
  for (const auto& [encoder, model] : std::vector<std::pair<std::string, fs::path>>{
           {"1", kData}, {"2", kData}, {"1", kData / "text_encoder"}}) {
    const std::string component = encoder == "2" ? "text_encoder_2" : "text_encoder";
    SCOPED_TRACE(model.string() + " --encoder=" + encoder);
    const fs::path io_path = kData / ("io_" + component + ".safetensors");
    const auto r = RunTextEncoder({"--model=" + model.string(), "--encoder=" + encoder, "--input=" + io_path.string(),
                                   "--output=out.safetensors"},
                                  dir.path());
    ASSERT_EQ(r.code, 0) << r.err;
    // The report: what was built and what loaded.
    EXPECT_NE(r.out.find(component + ": "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(encoder == "2" ? "CLIPTextModelWithProjection (2 layers, width 32"
                                        : "CLIPTextModel (3 layers, width 16"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find(encoder == "2" ? "loaded 37 tensors" : "loaded 52 tensors"), std::string::npos) << r.out;
    if (encoder == "1") {
      EXPECT_NE(r.out.find("position_ids"), std::string::npos) << r.out;
    }
    auto out = SafetensorsFile::Open((dir.path() / "out.safetensors").string());
    ASSERT_TRUE(out.ok()) << out.status();
    auto io = SafetensorsFile::Open(io_path.string());
    ASSERT_TRUE(io.ok()) << io.status();
    std::vector<std::string> names = {"last_hidden_state", "hidden_states_penultimate", "pooled_output"};
    if (encoder == "2") names.push_back("text_embeds");
    EXPECT_EQ(out->names().size(), names.size());
    for (const std::string& n : names) EXPECT_LE(RelativeError(*out, n, *io, n), 1e-4) << n;
    EXPECT_EQ(out->metadata().at("module"), "text-encoder");
  }
}

TEST(TextEncoderCommand, AttentionMaskFromTheInput) {
  testing::TempDir dir;
  const fs::path io_path = kData / "io_text_encoder_2.safetensors";
  const auto r = RunTextEncoder({"--model=" + kData.string(), "--encoder=2", "--input=" + io_path.string(),
                                 "--attention-mask", "--output=out.safetensors"},
                                dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("with attention_mask"), std::string::npos) << r.out;
  auto out = SafetensorsFile::Open((dir.path() / "out.safetensors").string());
  ASSERT_TRUE(out.ok()) << out.status();
  auto io = SafetensorsFile::Open(io_path.string());
  ASSERT_TRUE(io.ok()) << io.status();
  for (const char* n : {"last_hidden_state", "pooled_output", "text_embeds"})
    EXPECT_LE(RelativeError(*out, n, *io, std::string("masked.") + n), 1e-4) << n;
}

// --prompt with the tokenizer: the first two golden rows are these prompts
// padded with <|endoftext|> by the same tokenizer files.
TEST(TextEncoderCommand, PromptsThroughTheTokenizer) {
  testing::TempDir dir;
  const fs::path tok = fs::path(CF_SOURCE_DIR) / "tests" / "data" / "tokenizer" / "clip";
  const auto r = RunTextEncoder(
      {"--model=" + kData.string(), "--tokenizer=" + tok.string(), "--prompt=a photo of a cat", "--prompt",
       "An astronaut riding a horse on the moon, highly detailed, 8k, trending on artstation, "
       "An astronaut riding a horse on the moon, highly detailed, 8k, trending on artstation, "
       "An astronaut riding a horse on the moon, highly detailed, 8k, trending on artstation, "
       "An astronaut riding a horse on the moon, highly detailed, 8k, trending on artstation, ",
       "--output=out.safetensors"},
      dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("input_ids [2, 77] from 2 prompt(s)"), std::string::npos) << r.out;
  auto out = SafetensorsFile::Open((dir.path() / "out.safetensors").string());
  ASSERT_TRUE(out.ok()) << out.status();
  auto pooled = out->Read("pooled_output");
  ASSERT_TRUE(pooled.ok()) << pooled.status();
  auto io = SafetensorsFile::Open((kData / "io_text_encoder.safetensors").string());
  ASSERT_TRUE(io.ok()) << io.status();
  auto want = io->Read("pooled_output");
  ASSERT_TRUE(want.ok()) << want.status();
  const std::vector<double> g = *pooled->ToVector<double>(), w = *want->ToVector<double>();
  ASSERT_EQ(g.size() * 2, w.size());
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], w[i], 1e-4 * (1 + std::abs(w[i]))) << i;
}

// The text encoders of single-file checkpoints (SD1.5's cond_stage_model.*;
// SDXL's conditioner.embedders.0 and, in OpenCLIP's own names, .1; with a
// --config: tests/data/ldm's tiny encoders of tools/make_ldm_golden.py) give
// the same outputs as the same tensors under diffusers' names in a folder.
TEST(TextEncoderCommand, SingleFileCheckpointEqualsTheFolder) {
  const fs::path ldm = fs::path(CF_SOURCE_DIR) / "tests" / "data" / "ldm";
  struct Case {
    const char* file;
    const char* reference;
    const char* encoder;
    bool projection;
  };
  for (const Case& k : {Case{"tiny_sd15.safetensors", "tiny_sd15_text_encoder.safetensors", "1", false},
                        Case{"tiny_sdxl.safetensors", "tiny_sdxl_text_encoder.safetensors", "1", false},
                        Case{"tiny_sdxl.safetensors", "tiny_sdxl_text_encoder_2.safetensors", "2", true}}) {
    SCOPED_TRACE(std::string(k.file) + " --encoder=" + k.encoder);
    testing::TempDir dir;
    const fs::path folder = dir.path() / "text_encoder";
    fs::create_directories(folder);
    fs::copy_file(ldm / k.reference, folder / "model.safetensors");
    {
      std::ofstream cfg(folder / "config.json");
      cfg << "{\"architectures\": [\"" << (k.projection ? "CLIPTextModelWithProjection" : "CLIPTextModel")
          << R"("], "vocab_size": 50, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
                 "num_attention_heads": 2, "max_position_embeddings": 8, "projection_dim": 12, "bos_token_id": 0,
                 "eos_token_id": 2, "pad_token_id": 1, "layer_norm_eps": 1e-5, "hidden_act": ")"
          << (k.projection ? "gelu" : "quick_gelu") << "\"}";
    }
    auto ids = Tensor::FromValues<int64_t>({0, 5, 17, 2, 1, 1, 0, 9, 2, 1, 1, 1}, Shape{2, 6}, DType::i64);
    ASSERT_TRUE(ids.ok()) << ids.status();
    ASSERT_TRUE(WriteSafetensors((dir.path() / "in.safetensors").string(), {{"input_ids", *ids}}).ok());
    const auto a = RunTextEncoder({"--model=" + folder.string(), "--input=in.safetensors", "--output=a.safetensors"},
                                  dir.path());
    ASSERT_EQ(a.code, 0) << a.err;
    const auto b = RunTextEncoder({"--model=" + (ldm / k.file).string(), std::string("--encoder=") + k.encoder,
                                   "--config=" + (folder / "config.json").string(), "--input=in.safetensors",
                                   "--output=b.safetensors"},
                                  dir.path());
    ASSERT_EQ(b.code, 0) << b.err;
    auto fa = SafetensorsFile::Open((dir.path() / "a.safetensors").string());
    auto fb = SafetensorsFile::Open((dir.path() / "b.safetensors").string());
    ASSERT_TRUE(fa.ok() && fb.ok());
    std::vector<std::string> names = {"last_hidden_state", "hidden_states_penultimate", "pooled_output"};
    if (k.projection) names.push_back("text_embeds");
    for (const std::string& name : names) EXPECT_EQ(RelativeError(*fb, name, *fa, name), 0.0) << name;
  }
}

TEST(TextEncoderCommand, ErrorsNameWhatIsWrong) {
  testing::TempDir dir;
  const std::string io1 = (kData / "io_text_encoder.safetensors").string();
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--model=" + kData.string(), "--output=o.safetensors"}, 2, "--input or --prompt: one is required"},
      {{"--model=" + kData.string(), "--input=" + io1, "--prompt=x", "--output=o.safetensors"}, 2, "not both"},
      {{"--input=" + io1, "--output=o.safetensors"}, 2, "--model: is required"},
      {{"--model=" + kData.string(), "--encoder=3", "--input=" + io1, "--output=o.safetensors"}, 2, "--encoder"},
      // No tokenizer/ beside the encoders, none given.
      {{"--model=" + kData.string(), "--prompt=x", "--output=o.safetensors"}, 1, "give --tokenizer=PATH"},
      // text_encoder's ids (up to 49407) in text_encoder_2's 600-token vocabulary.
      {{"--model=" + kData.string(), "--encoder=2", "--input=" + io1, "--output=o.safetensors"}, 1,
       "input_ids[0, 0] = 49406 is not a token id in [0, vocab_size 600)"},
      // An input without input_ids.
      {{"--model=" + kData.string(),
        "--input=" + (kData / "text_encoder_2" / "model-00001-of-00004.safetensors").string(),
        "--output=o.safetensors"},
       1, "has no tensor 'input_ids'"},
      // A folder without an encoder.
      {{"--model=" + dir.path().string(), "--input=" + io1, "--output=o.safetensors"}, 1,
       "has neither text_encoder/config.json nor config.json"},
  };
  for (const Case& c : cases) {
    const auto r = RunTextEncoder(c.args, dir.path());
    EXPECT_EQ(r.code, c.code) << c.message << "\n" << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir.path() / "o.safetensors"));
  }
}

}  // namespace
}  // namespace cf
