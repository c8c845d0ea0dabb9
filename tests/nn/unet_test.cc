// nn/unet2d_condition.h: the released SD1.5 and SDXL configurations built as
// shape-only graphs (parameter counts equal diffusers', build times printed,
// the planner's arena within 1.05x of its lower bound), the per-layer
// self-attention choices, and the tiny random configurations against
// diffusers' outputs (tests/data/unet, tools/make_unet_golden.py).
#include "nn/unet2d_condition.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "graph/accounting.h"
#include "graph/executor.h"
#include "graph/planner.h"
#include "nn/weights.h"
#include "tests/support/model_golden.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

std::string DataDir() { return TestDataDir("unet"); }

struct Built {
  Graph graph;
  UNetOutputs out;
  double ms = 0;
};

// Builds `config` at latent size h x w (batch 2, 77 tokens) and times it.
std::unique_ptr<Built> Build(const UNet2DConditionConfig& config, int64_t h, int64_t w,
                             const UNetBuildOptions& options = {}, DType dt = DType::f16) {
  auto r = std::make_unique<Built>();
  const auto t0 = std::chrono::steady_clock::now();
  Builder b(&r->graph);
  auto out = BuildUNet2DConditionGraph(b, config, {.height = h, .width = w, .dtype = dt}, options);
  EXPECT_TRUE(out.ok()) << out.status();
  if (out.ok()) r->out = std::move(*out);
  EXPECT_TRUE(b.Finish().ok()) << b.status();
  r->ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

TEST(UNet2DCondition, ReleasedConfigFilesGiveTheBuiltInConfigs) {
  for (const auto& [file, want] : std::vector<std::pair<std::string, UNet2DConditionConfig>>{
           {"sd15_config.json", UNet2DConditionConfig::StableDiffusion15()},
           {"sdxl_config.json", UNet2DConditionConfig::StableDiffusionXL()}}) {
    SCOPED_TRACE(file);
    CF_ASSERT_OK_AND_ASSIGN(auto c, UNet2DConditionConfig::Load(DataDir() + "/" + file));
    EXPECT_EQ(c.note, "");  // every key of the released files is understood
    EXPECT_EQ(c.block_out_channels, want.block_out_channels);
    EXPECT_EQ(c.attention_heads, want.attention_heads);
    EXPECT_EQ(c.transformer_layers_per_block, want.transformer_layers_per_block);
    EXPECT_EQ(c.reverse_transformer_layers_per_block, want.reverse_transformer_layers_per_block);
    EXPECT_EQ(c.cross_attention_dim, want.cross_attention_dim);
    EXPECT_EQ(c.use_linear_projection, want.use_linear_projection);
    EXPECT_EQ(c.text_time, want.text_time);
    EXPECT_EQ(c.time_embed_dim, want.time_embed_dim);
    EXPECT_EQ(c.down_block_types, want.down_block_types);
    EXPECT_EQ(c.up_block_types, want.up_block_types);
  }
}

// The counts of diffusers' UNet2DConditionModel for the released configs
// (sum of p.numel() over model.parameters()).
TEST(UNet2DCondition, FullSizeParameterCountsBuildTimesAndPlans) {
  struct Case {
    const char* name;
    UNet2DConditionConfig config;
    int64_t params;
    std::vector<std::pair<int64_t, int64_t>> latents;  // image / 8
  };
  const std::vector<Case> cases = {
      // 512, 1024, 2K = 2560x1440, 4K = 4096x2160, 8K = 7680x4320, 16K = 15360x8640 (docs/paper-facts.md)
      {"SD1.5", UNet2DConditionConfig::StableDiffusion15(), 859520964LL,
       {{64, 64}, {128, 128}, {180, 320}, {270, 512}, {540, 960}, {1080, 1920}}},
      {"SDXL", UNet2DConditionConfig::StableDiffusionXL(), 2567463684LL,
       {{64, 64}, {128, 128}, {180, 320}, {270, 512}, {540, 960}, {1080, 1920}}},
  };
  for (const Case& c : cases) {
    for (const auto& [h, w] : c.latents) {
      SCOPED_TRACE(absl::StrCat(c.name, " ", 8 * w, "x", 8 * h));
      auto r = Build(c.config, h, w);
      EXPECT_EQ(ParameterCount(r->graph), c.params);
      const auto t0 = std::chrono::steady_clock::now();
      CF_ASSERT_OK_AND_ASSIGN(MemoryPlan plan, PlanMemory(r->graph));
      const double plan_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      CF_EXPECT_OK(VerifyPlan(r->graph, plan));
      EXPECT_LE(plan.ratio(), 1.05) << plan.ToString();
      std::printf("%s %lldx%lld (batch 2, f16): %lld parameters, %d nodes, built in %.1f ms, planned in %.0f ms, "
                  "arena %.1f MiB = %.3f x lower bound\n",
                  c.name, static_cast<long long>(8 * w), static_cast<long long>(8 * h),
                  static_cast<long long>(ParameterCount(r->graph)), r->graph.num_nodes(), r->ms, plan_ms,
                  static_cast<double>(plan.arena_bytes) / (1 << 20), plan.ratio());
      EXPECT_LT(r->ms, 1000.0);
    }
  }
}

// The planner's check for every self-attention choice at 1024 and 16K.
TEST(UNet2DCondition, EveryChoicePlansWithinTheBound) {
  for (const auto& [name, config] : std::vector<std::pair<std::string, UNet2DConditionConfig>>{
           {"SD1.5", UNet2DConditionConfig::StableDiffusion15()}, {"SDXL", UNet2DConditionConfig::StableDiffusionXL()}})
    for (const char* choice : {"convblock", "na:13", "linfusion", "window:64"})
      for (const auto& [h, w] : std::vector<std::pair<int64_t, int64_t>>{{128, 128}, {1080, 1920}}) {
        SCOPED_TRACE(absl::StrCat(name, " ", choice, " ", 8 * w, "x", 8 * h));
        UNetBuildOptions o;
        o.self_attention = *ParseSelfAttentionChoice(choice);
        auto r = Build(config, h, w, o);
        CF_ASSERT_OK_AND_ASSIGN(MemoryPlan plan, PlanMemory(r->graph));
        CF_EXPECT_OK(VerifyPlan(r->graph, plan));
        EXPECT_LE(plan.ratio(), 1.05) << plan.ToString();
        std::printf("%s %s %lldx%lld: %d nodes, built in %.1f ms, arena %.0f MiB = %.3f x lower bound\n",
                    name.c_str(), choice, static_cast<long long>(8 * w), static_cast<long long>(8 * h),
                    r->graph.num_nodes(), r->ms, static_cast<double>(plan.arena_bytes) / (1 << 20), plan.ratio());
      }
}

// The paper's Table 1 row, from the real graph: SD1.5's top-level
// self-attention at 512 counts 2 · (8·N·C² + 4·N²·C + N·C) under the Table 1
// convention (q, k, v without bias; docs/paper-facts.md), batch 2.
TEST(UNet2DCondition, TopLevelSelfAttentionCountsThePapersFlops) {
  auto r = Build(UNet2DConditionConfig::StableDiffusion15(), 64, 64);
  CF_ASSERT_OK_AND_ASSIGN(CostReport report, Account(r->graph));
  CF_ASSERT_OK_AND_ASSIGN(const ScopeCost* top, report.HighestResolution("*.attn1"));
  const int64_t N = 64 * 64, C = 320;
  EXPECT_EQ(top->tokens, N);
  EXPECT_EQ(top->cost.table1_flops(), 2 * (8 * N * C * C + 4 * N * N * C + N * C)) << top->path;
  EXPECT_EQ(report.Match("*.attn1").size(), 16u);
  EXPECT_EQ(report.Find("")->params, 859520964LL);
}

// Counts the transformer blocks by what replaced their attn1.
std::map<std::string, int> Kinds(const UNetOutputs& out) {
  std::map<std::string, int> k;
  for (const auto& s : out.sites) ++k[s.choice.ToString()];
  return k;
}

TEST(UNet2DCondition, SelfAttentionIsChosenPerLayer) {
  const auto sd15 = UNet2DConditionConfig::StableDiffusion15();
  {  // 16 transformer blocks, all self-attention by default
    auto r = Build(sd15, 64, 64);
    EXPECT_EQ(r->out.sites.size(), 16u);
    EXPECT_EQ(Kinds(r->out), (std::map<std::string, int>{{"self", 16}}));
  }
  {  // ConvBlocks of the released sizes: down 7, 9, 5; mid 3; up 5, 9, 11
    UNetBuildOptions o;
    o.self_attention.kind = SelfAttentionKind::kConvBlock;
    auto r = Build(sd15, 64, 64, o);
    EXPECT_EQ(Kinds(r->out), (std::map<std::string, int>{{"convblock:11", 3}, {"convblock:3", 1}, {"convblock:5", 5},
                                                          {"convblock:7", 2}, {"convblock:9", 5}}));
    EXPECT_GE(r->graph.FindParameter("down_blocks.0.attentions.0.transformer_blocks.0.conv1.conv_up.weight"), 0);
    EXPECT_LT(r->graph.FindParameter("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"), 0);
    EXPECT_GE(r->graph.FindParameter("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q.weight"), 0);
    EXPECT_GE(r->graph.FindParameter("down_blocks.0.attentions.0.transformer_blocks.0.norm1.weight"), 0);
  }
  {  // per layer: neighborhood attention at the top level, LinFusion in the mid block, window elsewhere
    UNetBuildOptions o;
    o.per_layer = [](const UNetAttentionSite& s) -> std::optional<SelfAttentionChoice> {
      if (s.part == "mid") return *ParseSelfAttentionChoice("linfusion");
      if (s.channels == 320) return *ParseSelfAttentionChoice("na:13:2");
      return *ParseSelfAttentionChoice("window:64");
    };
    auto r = Build(sd15, 64, 64, o);
    EXPECT_EQ(Kinds(r->out), (std::map<std::string, int>{{"linfusion", 1}, {"na:13:2", 5}, {"window:64", 10}}));
    EXPECT_GE(r->graph.FindParameter("mid_block.attentions.0.transformer_blocks.0.attn1.to_q_.0.weight"), 0);
  }
  const auto sdxl = UNet2DConditionConfig::StableDiffusionXL();
  {  // SDXL: 70 blocks; ConvBlocks down 9, 7; mid 9; up 9, 13
    UNetBuildOptions o;
    o.self_attention.kind = SelfAttentionKind::kConvBlock;
    auto r = Build(sdxl, 128, 128, o);
    EXPECT_EQ(r->out.sites.size(), 70u);
    EXPECT_EQ(Kinds(r->out), (std::map<std::string, int>{{"convblock:13", 6}, {"convblock:7", 20},
                                                          {"convblock:9", 44}}));
  }
  {  // the authors' config keys select ConvBlocks of their sizes where > 0
    auto c = sdxl;
    c.has_conv1_kernels = true;
    c.down_conv1_kernels = {0, 5, 0};
    c.up_conv1_kernels = {0, 0, 0};
    c.mid_conv1_kernel = 3;
    auto r = Build(c, 32, 32);
    EXPECT_EQ(Kinds(r->out), (std::map<std::string, int>{{"convblock:3", 10}, {"convblock:5", 4}, {"self", 56}}));
    UNetBuildOptions teacher;
    teacher.config_conv1_kernels = false;
    EXPECT_EQ(Kinds(Build(c, 32, 32, teacher)->out), (std::map<std::string, int>{{"self", 70}}));
  }
}

TEST(UNet2DCondition, ChoicesParseAndPrint) {
  for (const char* s : {"self", "na:7", "na:13:2", "convblock", "convblock:11", "convblock:13:paper", "linfusion",
                        "window:64", "window:32:full", "window:32:full_and_cache"}) {
    CF_ASSERT_OK_AND_ASSIGN(auto c, ParseSelfAttentionChoice(s));
    EXPECT_EQ(c.ToString(), s);
  }
  for (const char* s : {"", "na", "na:4", "na:7:0", "convblock:12", "convblock:7:odd", "self:3", "window", "window:4:x",
                        "flash"})
    EXPECT_FALSE(ParseSelfAttentionChoice(s).ok()) << s;
}

TEST(UNet2DCondition, ConfigErrorsNameTheFileAndTheKey) {
  const auto parse = [](const std::string& json) {
    auto c = DiffusersConfig::Parse(json, "tiny/config.json");
    EXPECT_TRUE(c.ok());
    return UNet2DConditionConfig::FromDiffusers(*c);
  };
  const std::string base = R"("down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
      "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "cross_attention_dim": 32)";
  ExpectError(parse("{" + base + "}").status(), {"tiny/config.json", "'block_out_channels' is missing"});
  ExpectError(parse("{" + base + R"(, "block_out_channels": [32])" + "}").status(),
              {"'block_out_channels' must have 2 entries"});
  ExpectError(parse("{" + base + R"(, "block_out_channels": [32, 64], "class_embed_type": "timestep"})").status(),
              {"class_embed_type", "not implemented"});
  ExpectError(parse("{" + base + R"(, "block_out_channels": [32, 64], "resnet_time_scale_shift": "scale_shift"})")
                  .status(),
              {"resnet_time_scale_shift", "scale_shift"});
  ExpectError(parse(R"({"down_block_types": ["SimpleCrossAttnDownBlock2D"], "up_block_types": ["UpBlock2D"],
                        "block_out_channels": [32], "cross_attention_dim": 32})")
                  .status(),
              {"SimpleCrossAttnDownBlock2D", "not implemented"});
  CF_ASSERT_OK_AND_ASSIGN(auto ok, parse("{" + base + R"(, "block_out_channels": [32, 64], "attention_head_dim": 8,
      "norm_num_groups": 8, "brand_new_option": 1})"));
  EXPECT_NE(ok.note.find("ignored unknown keys brand_new_option"), std::string::npos) << ok.note;
  EXPECT_EQ(ok.mid_block_type, "UNetMidBlock2DCrossAttn");  // diffusers' default
  CF_ASSERT_OK_AND_ASSIGN(auto no_mid, parse("{" + base + R"(, "block_out_channels": [32, 64], "norm_num_groups": 8,
      "mid_block_type": null})"));
  EXPECT_EQ(no_mid.mid_block_type, "");  // null: no mid block
  ExpectError(parse("{" + base + R"(, "block_out_channels": [32, 64], "mid_block_type": "UNetMidBlock2DSimpleCrossAttn"})")
                  .status(),
              {"mid_block_type", "UNetMidBlock2DSimpleCrossAttn"});
  // A sample of the wrong channel count is a builder error naming the input.
  Graph g;
  Builder b(&g);
  UNetInputs in{.sample = b.Input("sample", Shape{1, 3, 16, 16}, DType::f32),
                .timestep = b.Input("timestep", Shape{1}, DType::f32),
                .encoder_hidden_states = b.Input("ehs", Shape{1, 7, 32}, DType::f32)};
  UNet2DCondition(b, ok, in);
  ExpectError(b.status(), {"sample must be [B, 4, H, W]", "f32[1, 3, 16, 16]"});
}

// ---- Fidelity: tiny random configurations against diffusers ----------------------

// Each tests/data/unet/<case>/io.safetensors: diffusers' inputs, output and
// taps for the weights in tests/data/unet/<weights>/unet (f32, or f16 in
// shards for tiny_sdxl; tiny_sd15_convblock: the authors' ConvBlocks, chosen by
// their config keys, loaded on top of tiny_sd15), made by
// tools/make_unet_golden.py.
TEST(UNet2DCondition, MatchesDiffusers) {
  int cases = 0;
  for (const char* name : {"tiny_sd15", "tiny_sd15_odd", "tiny_sd15_convblock", "tiny_sdxl"}) {
    SCOPED_TRACE(name);
    CF_ASSERT_OK_AND_ASSIGN(SafetensorsFile io, SafetensorsFile::Open(DataDir() + "/" + name + "/io.safetensors"));
    // "a,b": b's tensors on top of a's (the authors' conv1 weights on a base
    // checkpoint); the config is the last folder's.
    std::vector<std::string> folders;
    for (absl::string_view w : absl::StrSplit(io.metadata().at("weights"), ','))
      folders.push_back(absl::StrCat(DataDir(), "/", w, "/unet"));
    CF_ASSERT_OK_AND_ASSIGN(auto config, UNet2DConditionConfig::Load(folders.back()));
    EXPECT_EQ(config.note, "");
    CF_ASSERT_OK_AND_ASSIGN(Tensor sample, io.Read("sample"));
    CF_ASSERT_OK_AND_ASSIGN(Tensor ehs, io.Read("encoder_hidden_states"));
    UNetGraphShape shape;
    shape.batch = sample.shape()[0];
    shape.height = sample.shape()[2];
    shape.width = sample.shape()[3];
    shape.tokens = ehs.shape()[1];
    Graph g;
    Builder b(&g);
    CF_ASSERT_OK_AND_ASSIGN(UNetOutputs u, BuildUNet2DConditionGraph(b, config, shape));
    std::vector<std::string> taps;
    for (const auto& [tap, v] : u.taps) {
      ASSERT_TRUE(io.contains("tap." + tap)) << tap;
      b.MarkOutput(v, "tap." + tap);
      taps.push_back("tap." + tap);
    }
    CF_ASSERT_OK(b.Finish().status());

    const auto t0 = std::chrono::steady_clock::now();
    CF_ASSERT_OK_AND_ASSIGN(WeightFiles files, WeightFiles::Open(folders));
    LoadWeightsOptions lo;
    lo.allow_unexpected = folders.size() > 1;  // the base's attn1 tensors, replaced by conv1
    CF_ASSERT_OK_AND_ASSIGN(LoadedWeights w, LoadWeights(g, files, lo));
    EXPECT_EQ(w.parameters.size(), g.Parameters().size());
    for (const std::string& k : w.unexpected) EXPECT_NE(k.find(".attn1."), std::string::npos) << k;
    if (folders.size() > 1) {
      EXPECT_GT(w.unexpected.size(), 0u);
      int convblocks = 0;
      for (const auto& site : u.sites) convblocks += site.choice.kind == SelfAttentionKind::kConvBlock;
      EXPECT_EQ(convblocks, static_cast<int>(u.sites.size()));
    }
    ExecutorOptions eo;
    eo.poison = true;
    CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, eo));
    for (const auto& [pn, t] : w.parameters) CF_ASSERT_OK(exec->SetParameter(pn, t));
    std::map<std::string, Tensor> inputs;
    for (const char* in : {"sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids"}) {
      if (g.FindInput(in) < 0) continue;
      CF_ASSERT_OK_AND_ASSIGN(inputs[in], io.Read(in));
    }
    CF_ASSERT_OK_AND_ASSIGN(auto outs, exec->RunNamed(inputs));
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    taps.push_back("output");
    for (const std::string& o : taps) {
      CF_ASSERT_OK_AND_ASSIGN(Tensor want, io.Read(o));
      // The taps are channels-last; the output is diffusers' [B, C, H, W] already.
      const std::vector<double> got = o == "output" ? ToDoubles(outs.at(o)) : NhwcToNchw(outs.at(o));
      ASSERT_EQ(got.size(), static_cast<size_t>(want.numel())) << o;
      const double rel = RelativeError(got, ToDoubles(want));
      EXPECT_LE(rel, 1e-4) << o;
      std::printf("%s %s: relative error %.2e\n", name, o.c_str(), rel);
    }
    std::printf("%s: %s, loaded and ran in %.0f ms\n", name, w.Summary().c_str(), ms);
    ++cases;
  }
  EXPECT_EQ(cases, 4);
}

// Every self-attention choice builds and runs in the tiny SD1.5 model (the
// base weights, random ones for the parameters a choice adds); where a choice
// degenerates to full attention (a band or a window covering the map) the
// output equals self-attention's.
TEST(UNet2DCondition, EveryChoiceRunsInTheTinyModel) {
  CF_ASSERT_OK_AND_ASSIGN(SafetensorsFile io, SafetensorsFile::Open(DataDir() + "/tiny_sd15/io.safetensors"));
  const std::string folder = DataDir() + "/tiny_sd15/unet";
  CF_ASSERT_OK_AND_ASSIGN(auto config, UNet2DConditionConfig::Load(folder));
  CF_ASSERT_OK_AND_ASSIGN(WeightFiles files, WeightFiles::Open(folder));
  std::map<std::string, Tensor> inputs;
  for (const char* in : {"sample", "timestep", "encoder_hidden_states"}) {
    CF_ASSERT_OK_AND_ASSIGN(inputs[in], io.Read(in));
  }
  const auto run = [&](const std::string& choice) -> std::vector<double> {
    SCOPED_TRACE(choice);
    Graph g;
    Builder b(&g);
    UNetBuildOptions o;
    auto c = ParseSelfAttentionChoice(choice);
    EXPECT_TRUE(c.ok()) << c.status();
    o.self_attention = *c;
    UNetGraphShape shape;
    shape.batch = 2;
    shape.height = shape.width = 16;
    shape.tokens = 7;
    auto u = BuildUNet2DConditionGraph(b, config, shape, o);
    EXPECT_TRUE(u.ok()) << u.status();
    EXPECT_TRUE(b.Finish().ok()) << b.status();
    LoadWeightsOptions lo;
    lo.allow_missing = lo.allow_unexpected = true;
    auto w = LoadWeights(g, files, lo);
    EXPECT_TRUE(w.ok()) << w.status();
    auto exec = Executor::Create(g);
    EXPECT_TRUE(exec.ok()) << exec.status();
    if (!w.ok() || !exec.ok()) return {};
    for (const auto& [pn, t] : w->parameters) EXPECT_TRUE((*exec)->SetParameter(pn, t).ok());
    uint64_t seed = 7;
    for (const std::string& m : w->missing) {  // "name f32[...]"
      const std::string pn = m.substr(0, m.find(' '));
      const Shape ps = g.value(g.FindParameter(pn)).type.shape;
      // LayerNorm / GroupNorm scales near 1, everything else small.
      const bool scale = pn.find("_.1.weight") != std::string::npos;
      EXPECT_TRUE((*exec)->SetParameter(pn, RandomTensor(ps, DType::f32, ++seed, scale ? 0.8 : -0.2,
                                                         scale ? 1.2 : 0.2)).ok());
    }
    std::map<std::string, Tensor> in = inputs;
    for (int id : g.Inputs())  // window attention's cached residuals: zero
      if (!in.count(g.value(id).name)) in[g.value(id).name] = *Tensor::Zeros(g.value(id).type.shape, DType::f32);
    auto outs = (*exec)->RunNamed(in);
    EXPECT_TRUE(outs.ok()) << outs.status();
    if (!outs.ok()) return {};
    std::vector<double> v = ToDoubles(outs->at("output"));
    for (double x : v) EXPECT_TRUE(std::isfinite(x));
    return v;
  };
  const std::vector<double> self = run("self");
  CF_ASSERT_OK_AND_ASSIGN(Tensor want, io.Read("output"));
  EXPECT_LE(RelativeError(self, ToDoubles(want)), 1e-4);
  EXPECT_LE(RelativeError(run("window:256"), self), 1e-5);   // the band covers all 16x16 tokens, residual 0
  EXPECT_LE(RelativeError(run("window:8:full"), self), 1e-5);
  EXPECT_LE(RelativeError(run("window:8:full_and_cache"), self), 1e-5);
  EXPECT_LE(RelativeError(run("na:17"), self), 1e-5);        // the window covers the map
  EXPECT_GT(RelativeError(run("window:8"), self), 1e-3);
  EXPECT_GT(RelativeError(run("na:3"), self), 1e-3);
  EXPECT_GT(RelativeError(run("na:3:2"), self), 1e-3);
  EXPECT_GT(RelativeError(run("linfusion"), self), 1e-3);
  EXPECT_GT(RelativeError(run("convblock:5:paper"), self), 1e-3);
}

// The tiny SD1.5 model in f16 and bf16 storage on the CPU (weights converted
// at load, inputs rounded) against diffusers' float64 output.
// Measured 2026-12-02: f16 1.4e-3, bf16 1.2e-2.
TEST(UNet2DCondition, HalfPrecisionStaysCloseToDiffusers) {
  CF_ASSERT_OK_AND_ASSIGN(SafetensorsFile io, SafetensorsFile::Open(DataDir() + "/tiny_sd15/io.safetensors"));
  const std::string folder = DataDir() + "/tiny_sd15/unet";
  CF_ASSERT_OK_AND_ASSIGN(auto config, UNet2DConditionConfig::Load(folder));
  CF_ASSERT_OK_AND_ASSIGN(WeightFiles files, WeightFiles::Open(folder));
  CF_ASSERT_OK_AND_ASSIGN(Tensor want, io.Read("output"));
  for (const auto& [dt, tol] : std::vector<std::pair<DType, double>>{{DType::f16, 5e-3}, {DType::bf16, 3e-2}}) {
    SCOPED_TRACE(DTypeName(dt));
    Graph g;
    Builder b(&g);
    UNetGraphShape shape;
    shape.height = shape.width = 16;
    shape.tokens = 7;
    shape.dtype = dt;
    CF_ASSERT_OK(BuildUNet2DConditionGraph(b, config, shape).status());
    CF_ASSERT_OK(b.Finish().status());
    CF_ASSERT_OK_AND_ASSIGN(LoadedWeights w, LoadWeights(g, files));
    for (const auto& [pn, t] : w.parameters) ASSERT_EQ(t.dtype(), dt) << pn;
    CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g));
    for (const auto& [pn, t] : w.parameters) CF_ASSERT_OK(exec->SetParameter(pn, t));
    std::map<std::string, Tensor> in;
    for (const char* n : {"sample", "timestep", "encoder_hidden_states"}) {
      CF_ASSERT_OK_AND_ASSIGN(Tensor t, io.Read(n));
      in[n] = std::string(n) == "timestep" ? t : CastTo(t, dt);
    }
    CF_ASSERT_OK_AND_ASSIGN(auto outs, exec->RunNamed(in));
    const double rel = RelativeError(ToDoubles(outs.at("output")), ToDoubles(want));
    std::printf("tiny_sd15 in %s: relative error %.2e\n", DTypeName(dt), rel);
    EXPECT_LE(rel, tol);
  }
}

}  // namespace
}  // namespace cf::testing
