// nn/autoencoder_kl.h: the released SD1.5 VAE built as shape-only graphs
// (parameter count equal to diffusers', the planner's arena within 1.05x of
// its lower bound), config errors, and the tiny random AutoencoderKL against
// diffusers' encode / decode (tests/data/vae, tools/make_vae_golden.py).
#include "nn/autoencoder_kl.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "graph/executor.h"
#include "graph/planner.h"
#include "nn/weights.h"
#include "tests/support/model_golden.h"
#include "tests/support/op_harness.h"
#include "tests/support/process.h"

namespace cf::testing {
namespace {

std::string DataDir() { return TestDataDir("vae"); }

TEST(AutoencoderKL, ReleasedConfigFileGivesTheBuiltInConfig) {
  CF_ASSERT_OK_AND_ASSIGN(auto c, AutoencoderKLConfig::Load(DataDir() + "/sd15_vae_config.json"));
  const auto want = AutoencoderKLConfig::StableDiffusion15();
  EXPECT_EQ(c.note, "");
  EXPECT_EQ(c.block_out_channels, want.block_out_channels);
  EXPECT_EQ(c.layers_per_block, want.layers_per_block);
  EXPECT_EQ(c.norm_num_groups, want.norm_num_groups);
  EXPECT_EQ(c.latent_channels, 4);
  EXPECT_DOUBLE_EQ(c.scaling_factor, 0.18215);
  EXPECT_FALSE(c.shift_factor.has_value());
  EXPECT_EQ(c.downsample_factor(), 8);
  EXPECT_DOUBLE_EQ(AutoencoderKLConfig::StableDiffusionXL().scaling_factor, 0.13025);
}

// diffusers' AutoencoderKL(SD1.5 config): 83,653,863 parameters (encoder
// 34,163,592 + quant_conv 72, decoder 49,490,179 + post_quant_conv 20), as
// tools/make_vae_golden.py checks. Both halves in one graph, at 512 and
// 1024, batch 1, f16.
TEST(AutoencoderKL, FullSizeParameterCountAndPlans) {
  const auto c = AutoencoderKLConfig::StableDiffusion15();
  for (int64_t size : {512, 1024}) {
    SCOPED_TRACE(size);
    for (const char* part : {"encode", "decode", "both"}) {
      SCOPED_TRACE(part);
      const auto t0 = std::chrono::steady_clock::now();
      Graph g;
      Builder b(&g);
      const VaeGraphShape s{.batch = 1, .height = size, .width = size, .dtype = DType::f16};
      const std::string p = part;
      if (p != "decode") CF_ASSERT_OK(BuildVaeEncodeGraph(b, c, s).status());
      if (p != "encode") CF_ASSERT_OK(BuildVaeDecodeGraph(b, c, s).status());
      CF_ASSERT_OK(b.Finish().status());
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      const int64_t want = p == "encode" ? 34163592 + 72 : p == "decode" ? 49490179 + 20 : 83653863;
      EXPECT_EQ(ParameterCount(g), want);
      EXPECT_LT(ms, 1000.0);
      if (p == "both") continue;
      CF_ASSERT_OK_AND_ASSIGN(MemoryPlan plan, PlanMemory(g));
      CF_EXPECT_OK(VerifyPlan(g, plan));
      EXPECT_LE(plan.ratio(), 1.05) << plan.ToString();
      std::printf("SD1.5 VAE %s %lldx%lld (batch 1, f16): %lld parameters, %d nodes, built in %.1f ms, "
                  "arena %.1f MiB = %.3f x lower bound\n",
                  part, static_cast<long long>(size), static_cast<long long>(size),
                  static_cast<long long>(ParameterCount(g)), g.num_nodes(), ms,
                  static_cast<double>(plan.arena_bytes) / (1 << 20), plan.ratio());
    }
  }
}

TEST(AutoencoderKL, ConfigErrorsNameTheFileAndTheKey) {
  const auto parse = [](const std::string& json) {
    auto c = DiffusersConfig::Parse(json, "tiny/vae/config.json");
    EXPECT_TRUE(c.ok());
    return AutoencoderKLConfig::FromDiffusers(*c);
  };
  const std::string blocks = R"("down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
      "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"])";
  ExpectError(parse("{" + blocks + "}").status(), {"tiny/vae/config.json", "'block_out_channels' is missing"});
  ExpectError(parse("{" + blocks + R"(, "block_out_channels": [8])" + "}").status(),
              {"'block_out_channels' must have 2 entries"});
  ExpectError(parse("{" + blocks + R"(, "block_out_channels": [8, 16], "norm_num_groups": 3})").status(),
              {"block_out_channels[0] = 8", "norm_num_groups 3"});
  ExpectError(parse("{" + blocks + R"(, "block_out_channels": [8, 16], "act_fn": "relu"})").status(),
              {"act_fn", "relu", "not implemented"});
  ExpectError(parse(R"({"down_block_types": ["AttnDownEncoderBlock2D"], "up_block_types": ["UpDecoderBlock2D"],
                        "block_out_channels": [8]})")
                  .status(),
              {"AttnDownEncoderBlock2D", "not implemented"});
  CF_ASSERT_OK_AND_ASSIGN(auto ok, parse("{" + blocks + R"(, "block_out_channels": [8, 16], "norm_num_groups": 4,
      "shift_factor": 0.0609, "use_quant_conv": false, "brand_new_option": 1})"));
  EXPECT_NE(ok.note.find("ignored unknown keys brand_new_option"), std::string::npos) << ok.note;
  EXPECT_EQ(ok.shift_factor, 0.0609);
  EXPECT_FALSE(ok.use_quant_conv);
  {  // a wrong channel count is a builder error naming the input
    Graph g;
    Builder b(&g);
    AutoencoderKLEncode(b, ok, b.Input("image", Shape{1, 4, 16, 16}, DType::f32));
    ExpectError(b.status(), {"encode", "[B, 3, H, W]", "f32[1, 4, 16, 16]"});
  }
  Graph g;
  Builder b(&g);
  ExpectError(BuildVaeDecodeGraph(b, ok, {.height = 17, .width = 16}).status(), {"17x16", "factor 2"});
}

// ---- Fidelity: the tiny random AutoencoderKL against diffusers --------------------

struct Golden {
  SafetensorsFile io;
  AutoencoderKLConfig config;
  WeightFiles weights;
};

// Builds the encode or decode graph on `input`'s shape with every tap marked,
// loads the weights, runs (poisoned arena) and compares each output and tap.
void RunAndCompare(const Golden& gd, const std::string& name, bool encode) {
  SCOPED_TRACE(absl::StrCat(name, encode ? " encode" : " decode"));
  CF_ASSERT_OK_AND_ASSIGN(Tensor x, gd.io.Read(encode ? "image" : "latents"));
  Graph g;
  Builder b(&g);
  Value in = b.Input(encode ? "image" : "latents", x.shape(), DType::f32);
  std::vector<std::string> names;
  VaeTaps taps;
  if (encode) {
    VaeEncodeOutputs e = AutoencoderKLEncode(b, gd.config, in);
    b.MarkOutput(e.latent_mean, "latent_mean");
    b.MarkOutput(e.latent_logvar, "latent_logvar");
    names = {"latent_mean", "latent_logvar"};
    taps = e.taps;
  } else {
    VaeDecodeOutputs d = AutoencoderKLDecode(b, gd.config, in);
    b.MarkOutput(d.image, "output");
    names = {"output"};
    taps = d.taps;
  }
  EXPECT_EQ(taps.size(), encode ? gd.config.block_out_channels.size() + 2 : gd.config.block_out_channels.size() + 2);
  for (const auto& [tap, v] : taps) {
    ASSERT_TRUE(gd.io.contains("tap." + tap)) << tap;
    b.MarkOutput(v, "tap." + tap);
  }
  CF_ASSERT_OK(b.Finish().status());
  LoadWeightsOptions lo;
  lo.allow_unexpected = true;  // the other half of the model
  CF_ASSERT_OK_AND_ASSIGN(LoadedWeights w, LoadWeights(g, gd.weights, lo));
  EXPECT_EQ(w.parameters.size(), g.Parameters().size());
  for (const std::string& k : w.unexpected)
    EXPECT_TRUE(k.rfind(encode ? "decoder." : "encoder.", 0) == 0 || k.rfind(encode ? "post_quant" : "quant", 0) == 0)
        << k;
  ExecutorOptions eo;
  eo.poison = true;
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, eo));
  for (const auto& [pn, t] : w.parameters) CF_ASSERT_OK(exec->SetParameter(pn, t));
  CF_ASSERT_OK_AND_ASSIGN(auto outs, exec->RunNamed({{encode ? "image" : "latents", x}}));
  for (const auto& [tap, v] : taps) names.push_back("tap." + tap);
  for (const std::string& o : names) {
    CF_ASSERT_OK_AND_ASSIGN(Tensor want, gd.io.Read(o));
    const std::vector<double> got = o.rfind("tap.", 0) == 0 ? NhwcToNchw(outs.at(o)) : ToDoubles(outs.at(o));
    ASSERT_EQ(got.size(), static_cast<size_t>(want.numel())) << o;
    const double rel = RelativeError(got, ToDoubles(want));
    EXPECT_LE(rel, 1e-4) << o;
    std::printf("%s %s: relative error %.2e\n", name.c_str(), o.c_str(), rel);
  }
  // The clamp shows: the golden logvar has entries at both bounds, and ours
  // are within f32 rounding of them.
  if (encode) {
    const std::vector<double> lv = ToDoubles(outs.at("latent_logvar"));
    int lo = 0, hi = 0;
    for (double v : lv) {
      EXPECT_GE(v, -30.0 - 1e-5);
      EXPECT_LE(v, 20.0 + 1e-5);
      lo += std::abs(v + 30.0) < 1e-5;
      hi += std::abs(v - 20.0) < 1e-5;
    }
    EXPECT_GT(lo, 0);
    EXPECT_GT(hi, 0);
  }
}

// tests/data/vae/<case>/io.safetensors: diffusers' encode and decode of the
// weights in tests/data/vae/tiny_vae/vae (f32), at 16x16 / 4x4 latents and
// at the odd sizes 17x13 / 3x5 (tools/make_vae_golden.py).
TEST(AutoencoderKL, MatchesDiffusers) {
  const std::string folder = DataDir() + "/tiny_vae/vae";
  for (const char* name : {"tiny_vae", "tiny_vae_odd"}) {
    SCOPED_TRACE(name);
    CF_ASSERT_OK_AND_ASSIGN(SafetensorsFile io, SafetensorsFile::Open(DataDir() + "/" + name + "/io.safetensors"));
    CF_ASSERT_OK_AND_ASSIGN(auto config, AutoencoderKLConfig::Load(folder));
    EXPECT_EQ(config.note, "");
    CF_ASSERT_OK_AND_ASSIGN(WeightFiles files, WeightFiles::Open(folder));
    const Golden gd{std::move(io), config, std::move(files)};
    RunAndCompare(gd, name, /*encode=*/true);
    RunAndCompare(gd, name, /*encode=*/false);
  }
}

// The tiny VAE in f16 and bf16 storage on the CPU (weights converted at
// load, inputs rounded) against diffusers' float64 outputs. Measured
// 2026-12-02: f16 1.7e-3 (mean) / 1.5e-3 (image), bf16 9.4e-3 / 1.4e-2.
TEST(AutoencoderKL, HalfPrecisionStaysCloseToDiffusers) {
  const std::string folder = DataDir() + "/tiny_vae/vae";
  CF_ASSERT_OK_AND_ASSIGN(SafetensorsFile io, SafetensorsFile::Open(DataDir() + "/tiny_vae/io.safetensors"));
  CF_ASSERT_OK_AND_ASSIGN(auto config, AutoencoderKLConfig::Load(folder));
  CF_ASSERT_OK_AND_ASSIGN(WeightFiles files, WeightFiles::Open(folder));
  for (const auto& [dt, tol] : std::vector<std::pair<DType, double>>{{DType::f16, 5e-3}, {DType::bf16, 3e-2}}) {
    for (const bool encode : {true, false}) {
      SCOPED_TRACE(absl::StrCat(DTypeName(dt), encode ? " encode" : " decode"));
      Graph g;
      Builder b(&g);
      const VaeGraphShape shape{.batch = 2, .height = 16, .width = 16, .dtype = dt};
      CF_ASSERT_OK(encode ? BuildVaeEncodeGraph(b, config, shape).status()
                          : BuildVaeDecodeGraph(b, config, shape).status());
      CF_ASSERT_OK(b.Finish().status());
      LoadWeightsOptions lo;
      lo.allow_unexpected = true;
      CF_ASSERT_OK_AND_ASSIGN(LoadedWeights w, LoadWeights(g, files, lo));
      CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g));
      for (const auto& [pn, t] : w.parameters) {
        ASSERT_EQ(t.dtype(), dt) << pn;
        CF_ASSERT_OK(exec->SetParameter(pn, t));
      }
      const std::string in = encode ? "image" : "latents";
      CF_ASSERT_OK_AND_ASSIGN(Tensor x, io.Read(in));
      CF_ASSERT_OK_AND_ASSIGN(auto outs, exec->RunNamed({{in, CastTo(x, dt)}}));
      for (const char* o : encode ? std::vector<const char*>{"latent_mean", "latent_logvar"}
                                  : std::vector<const char*>{"output"}) {
        CF_ASSERT_OK_AND_ASSIGN(Tensor want, io.Read(o));
        const double rel = RelativeError(ToDoubles(outs.at(o)), ToDoubles(want));
        std::printf("tiny_vae %s in %s: relative error %.2e\n", o, DTypeName(dt), rel);
        EXPECT_LE(rel, tol) << o;
      }
    }
  }
}

// The same weights under the pre-0.14 attention names (query, key, value,
// proj_attn) load through WithCurrentVaeAttentionNames and give the same
// outputs; a file with both old and new names is refused.
TEST(AutoencoderKL, LegacyAttentionNames) {
  const std::string folder = DataDir() + "/tiny_vae/vae";
  CF_ASSERT_OK_AND_ASSIGN(SafetensorsFile src, SafetensorsFile::Open(folder + "/diffusion_pytorch_model.safetensors"));
  std::vector<std::pair<std::string, Tensor>> old, mixed;
  for (const std::string& k : src.names()) {
    std::string name = k;
    for (const auto& [now, before] : std::vector<std::pair<std::string, std::string>>{
             {".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."}, {".to_out.0.", ".proj_attn."}})
      if (const size_t at = name.find(now); at != std::string::npos) name.replace(at, now.size(), before);
    CF_ASSERT_OK_AND_ASSIGN(Tensor t, src.Read(k));
    old.push_back({name, t});
    mixed.push_back({k, t});
    if (name != k) mixed.push_back({name, t});
  }
  testing::TempDir dir;
  CF_ASSERT_OK(WriteSafetensors(dir / "old.safetensors", old));
  CF_ASSERT_OK(WriteSafetensors(dir / "mixed.safetensors", mixed));
  CF_ASSERT_OK_AND_ASSIGN(WeightFiles files, WeightFiles::Open(dir / "old.safetensors"));
  EXPECT_TRUE(files.contains("encoder.mid_block.attentions.0.proj_attn.bias"));
  int renamed = 0;
  CF_ASSERT_OK_AND_ASSIGN(WeightFiles current, WithCurrentVaeAttentionNames(files, &renamed));
  EXPECT_EQ(renamed, 16);  // 4 projections x (weight, bias) x (encoder, decoder)
  EXPECT_TRUE(current.contains("encoder.mid_block.attentions.0.to_out.0.bias"));
  EXPECT_FALSE(current.contains("encoder.mid_block.attentions.0.proj_attn.bias"));
  CF_ASSERT_OK_AND_ASSIGN(SafetensorsFile io, SafetensorsFile::Open(DataDir() + "/tiny_vae/io.safetensors"));
  CF_ASSERT_OK_AND_ASSIGN(auto config, AutoencoderKLConfig::Load(folder));
  const Golden gd{std::move(io), config, std::move(current)};
  RunAndCompare(gd, "tiny_vae (old names)", /*encode=*/true);
  RunAndCompare(gd, "tiny_vae (old names)", /*encode=*/false);
  // Current names pass through untouched.
  CF_ASSERT_OK_AND_ASSIGN(WeightFiles now, WeightFiles::Open(folder));
  CF_ASSERT_OK(WithCurrentVaeAttentionNames(now, &renamed).status());
  EXPECT_EQ(renamed, 0);
  CF_ASSERT_OK_AND_ASSIGN(WeightFiles both, WeightFiles::Open(dir / "mixed.safetensors"));
  ExpectError(WithCurrentVaeAttentionNames(both).status(), {"mixed.safetensors", "old and new attention names"});
}

// Without the mid-block attention or the quant convs (configs that some
// later VAEs use), the graph has exactly the parameters diffusers' model has.
TEST(AutoencoderKL, OptionalPartsChangeTheParameters) {
  auto c = AutoencoderKLConfig::StableDiffusion15();
  const auto count = [](const AutoencoderKLConfig& c) {
    Graph g;
    Builder b(&g);
    EXPECT_TRUE(BuildVaeEncodeGraph(b, c, {.height = 64, .width = 64}).ok());
    EXPECT_TRUE(BuildVaeDecodeGraph(b, c, {.height = 64, .width = 64}).ok());
    return ParameterCount(g);
  };
  const int64_t full = count(c);
  c.use_quant_conv = c.use_post_quant_conv = false;
  EXPECT_EQ(count(c), full - 72 - 20);
  c.mid_block_add_attention = false;
  // Two attentions (encoder and decoder) of group_norm 2·512 and four 512x512 linears with biases.
  EXPECT_EQ(count(c), full - 72 - 20 - 2 * (2 * 512 + 4 * (512 * 512 + 512)));
}

}  // namespace
}  // namespace cf::testing
