// nn/pixart_transformer.h: the released PixArt-alpha 512 / 1024-MS and
// PixArt-Sigma 1024-MS configurations read from their config.json and built
// as shape-only graphs (parameter counts equal diffusers', build times
// printed, the planner's arena within 1.05x of its lower bound), the
// per-layer self-attention choices, config and input errors, and tiny random
// configurations against diffusers' outputs (tests/data/pixart,
// tools/make_pixart_golden.py).
#include "nn/pixart_transformer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "graph/executor.h"
#include "graph/planner.h"
#include "nn/weights.h"
#include "tests/support/model_golden.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

std::string DataDir() { return TestDataDir("pixart"); }

struct Built {
  Graph graph;
  PixArtOutputs out;
  double ms = 0;
};

std::unique_ptr<Built> Build(const PixArtTransformerConfig& config, const PixArtGraphShape& shape,
                             const PixArtBuildOptions& options = {}) {
  auto r = std::make_unique<Built>();
  const auto t0 = std::chrono::steady_clock::now();
  Builder b(&r->graph);
  auto out = BuildPixArtTransformerGraph(b, config, shape, options);
  EXPECT_TRUE(out.ok()) << out.status();
  if (out.ok()) r->out = std::move(*out);
  EXPECT_TRUE(b.Finish().ok()) << b.status();
  r->ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

// Latent h x w (image / 8), batch 2, f16.
PixArtGraphShape Latent(int64_t h, int64_t w, int64_t tokens = 120) {
  return {.batch = 2, .height = h, .width = w, .tokens = tokens, .attention_mask = true, .dtype = DType::f16};
}

TEST(PixArtTransformer, ReleasedConfigFilesGiveTheBuiltInConfigs) {
  for (const auto& [file, want] : std::vector<std::pair<std::string, PixArtTransformerConfig>>{
           {"pixart_alpha_512_config.json", PixArtTransformerConfig::PixArtAlpha512()},
           {"pixart_alpha_1024_ms_config.json", PixArtTransformerConfig::PixArtAlpha1024MS()},
           {"pixart_sigma_1024_ms_config.json", PixArtTransformerConfig::PixArtSigma1024MS()}}) {
    SCOPED_TRACE(file);
    CF_ASSERT_OK_AND_ASSIGN(auto c, PixArtTransformerConfig::Load(DataDir() + "/" + file));
    EXPECT_EQ(c.note, "");  // every key of the released files is understood
    EXPECT_EQ(c.heads, 16);
    EXPECT_EQ(c.head_dim, 72);
    EXPECT_EQ(c.num_layers, 28);
    EXPECT_EQ(c.in_channels, 4);
    EXPECT_EQ(c.out_channels, 8);
    EXPECT_EQ(c.caption_channels, 4096);
    EXPECT_EQ(c.cross_attention_dim, 1152);
    EXPECT_TRUE(c.attention_bias);
    EXPECT_TRUE(c.gelu_tanh);
    EXPECT_FALSE(c.norm_elementwise_affine);
    EXPECT_EQ(c.norm_eps, 1e-6);
    EXPECT_EQ(c.sample_size, want.sample_size);
    EXPECT_EQ(c.base_size(), want.base_size());
    EXPECT_EQ(c.interpolation_scale, want.interpolation_scale);
    EXPECT_EQ(c.use_additional_conditions, want.use_additional_conditions);
  }
  // diffusers' defaults: 512 -> base 32, scale 1, no micro-conditions; 1024 -> base 64, scale 2, with them.
  EXPECT_EQ(PixArtTransformerConfig::PixArtAlpha512().base_size(), 32);
  EXPECT_EQ(PixArtTransformerConfig::PixArtAlpha512().interpolation_scale, 1.0);
  EXPECT_TRUE(PixArtTransformerConfig::PixArtAlpha1024MS().use_additional_conditions);
  EXPECT_FALSE(PixArtTransformerConfig::PixArtSigma1024MS().use_additional_conditions);
  EXPECT_EQ(PixArtTransformerConfig::PixArtSigma1024MS().interpolation_scale, 2.0);
}

// The counts of diffusers' PixArtTransformer2DModel built from the released
// configs (sum of p.numel() over model.parameters(), printed by
// tools/make_pixart_golden.py). Alpha 1024-MS adds the resolution and
// aspect-ratio embedders (2 x (256·384 + 384 + 384·384 + 384) = 493056).
TEST(PixArtTransformer, FullSizeParameterCountsBuildTimesAndPlans) {
  struct Case {
    const char* name;
    PixArtTransformerConfig config;
    int64_t params;
    int64_t tokens;
    std::vector<std::pair<int64_t, int64_t>> latents;  // image / 8
  };
  const std::vector<Case> cases = {
      {"PixArt-alpha 512", PixArtTransformerConfig::PixArtAlpha512(), 610856096LL, 120, {{64, 64}}},
      {"PixArt-alpha 1024-MS", PixArtTransformerConfig::PixArtAlpha1024MS(), 611349152LL, 120, {{128, 128}}},
      {"PixArt-Sigma 1024-MS", PixArtTransformerConfig::PixArtSigma1024MS(), 610856096LL, 300,
       {{128, 128}, {270, 512}}},  // 1024x1024 and 4K (4096x2160)
  };
  for (const Case& c : cases) {
    for (const auto& [h, w] : c.latents) {
      SCOPED_TRACE(absl::StrCat(c.name, " ", 8 * w, "x", 8 * h));
      auto r = Build(c.config, Latent(h, w, c.tokens));
      EXPECT_EQ(ParameterCount(r->graph), c.params);
      EXPECT_EQ(r->out.sites.size(), 28u);
      const auto t0 = std::chrono::steady_clock::now();
      CF_ASSERT_OK_AND_ASSIGN(MemoryPlan plan, PlanMemory(r->graph));
      const double plan_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      CF_EXPECT_OK(VerifyPlan(r->graph, plan));
      EXPECT_LE(plan.ratio(), 1.05) << plan.ToString();
      std::printf("%s %lldx%lld (batch 2, %lld tokens, f16): %lld parameters, %d nodes, built in %.1f ms, planned in "
                  "%.0f ms, arena %.1f MiB = %.3f x lower bound\n",
                  c.name, static_cast<long long>(8 * w), static_cast<long long>(8 * h),
                  static_cast<long long>(c.tokens), static_cast<long long>(ParameterCount(r->graph)),
                  r->graph.num_nodes(), r->ms, plan_ms, static_cast<double>(plan.arena_bytes) / (1 << 20),
                  plan.ratio());
      EXPECT_LT(r->ms, 1000.0);
    }
  }
}

std::map<std::string, int> Kinds(const PixArtOutputs& out) {
  std::map<std::string, int> k;
  for (const auto& s : out.sites) ++k[s.choice.ToString()];
  return k;
}

TEST(PixArtTransformer, SelfAttentionIsChosenPerLayer) {
  const auto sigma = PixArtTransformerConfig::PixArtSigma1024MS();
  const std::string b0 = "transformer_blocks.0.";
  {  // self-attention with biases on q, k, v everywhere by default
    auto r = Build(sigma, Latent(128, 128));
    EXPECT_EQ(Kinds(r->out), (std::map<std::string, int>{{"self", 28}}));
    EXPECT_GE(r->graph.FindParameter(b0 + "attn1.to_q.bias"), 0);
    EXPECT_GE(r->graph.FindParameter(b0 + "attn2.to_k.bias"), 0);
    EXPECT_GE(r->graph.FindParameter(b0 + "scale_shift_table"), 0);
    EXPECT_LT(r->graph.FindParameter(b0 + "norm1.weight"), 0);  // no affine
  }
  {  // "convblock": the released PixArt block, K = 13 and the sigmoid gate, in all 28 blocks
    PixArtBuildOptions o;
    o.self_attention.kind = SelfAttentionKind::kConvBlock;
    auto r = Build(sigma, Latent(128, 128), o);
    EXPECT_EQ(Kinds(r->out), (std::map<std::string, int>{{"convblock:13:sigmoid", 28}}));
    const int up = r->graph.FindParameter(b0 + "conv1.conv_up.weight");
    ASSERT_GE(up, 0);
    EXPECT_EQ(r->graph.value(up).type.shape, Shape({576, 1152}));
    const int dw = r->graph.FindParameter(b0 + "conv1.gates.0.conv_spatial.weight");
    ASSERT_GE(dw, 0);
    EXPECT_EQ(r->graph.value(dw).type.shape, Shape({13, 13, 576}));
    EXPECT_LT(r->graph.FindParameter(b0 + "attn1.to_q.weight"), 0);
    EXPECT_GE(r->graph.FindParameter(b0 + "attn2.to_q.weight"), 0);
  }
  {  // an explicit kernel and the paper's gate stay as given
    PixArtBuildOptions o;
    o.self_attention = *ParseSelfAttentionChoice("convblock:25:paper");
    EXPECT_EQ(Kinds(Build(sigma, Latent(64, 64), o)->out), (std::map<std::string, int>{{"convblock:25:paper", 28}}));
  }
  {  // per layer: NA in even blocks, window attention in odd ones, LinFusion in the last
    PixArtBuildOptions o;
    o.per_layer = [](const PixArtAttentionSite& s) -> std::optional<SelfAttentionChoice> {
      EXPECT_EQ(s.channels, 1152);
      EXPECT_EQ(s.height, 64);
      EXPECT_EQ(s.width, 64);
      if (s.block == 27) return *ParseSelfAttentionChoice("linfusion");
      return *ParseSelfAttentionChoice(s.block % 2 == 0 ? "na:13" : "window:64");
    };
    auto r = Build(sigma, Latent(128, 128), o);
    EXPECT_EQ(Kinds(r->out), (std::map<std::string, int>{{"linfusion", 1}, {"na:13", 14}, {"window:64", 13}}));
    EXPECT_GE(r->graph.FindParameter(b0 + "attn1.to_q.bias"), 0);  // NA keeps PixArt's q, k, v biases
    EXPECT_GE(r->graph.FindParameter("transformer_blocks.1.attn1.to_v.bias"), 0);
    EXPECT_GE(r->graph.FindParameter("transformer_blocks.27.attn1.to_q_.0.weight"), 0);
    EXPECT_EQ(r->out.sites[3].scope, "transformer_blocks.3");
  }
}

TEST(PixArtTransformer, ConfigErrorsNameTheFileAndTheKey) {
  const auto parse = [](const std::string& json) {
    auto c = DiffusersConfig::Parse(json, "tiny/config.json");
    EXPECT_TRUE(c.ok());
    return PixArtTransformerConfig::FromDiffusers(*c);
  };
  ExpectError(parse(R"({"norm_type": "ada_norm_zero"})").status(), {"tiny/config.json", "norm_type", "not implemented"});
  ExpectError(parse(R"({"activation_fn": "geglu"})").status(), {"activation_fn", "geglu"});
  ExpectError(parse(R"({"_class_name": "UNet2DConditionModel"})").status(), {"UNet2DConditionModel"});
  ExpectError(parse(R"({"caption_channels": 4096, "cross_attention_dim": 768})").status(),
              {"cross_attention_dim 768", "inner dim 1152"});
  ExpectError(parse(R"({"num_attention_heads": 2, "attention_head_dim": 8, "cross_attention_dim": 16,
                        "use_additional_conditions": true})")
                  .status(),
              {"divisible by 3", "16"});
  ExpectError(parse(R"({"only_cross_attention": true})").status(), {"only_cross_attention"});
  ExpectError(parse(R"({"num_vector_embeds": 1024})").status(), {"num_vector_embeds"});
  ExpectError(parse(R"({"patch_size": "2"})").status(), {"patch_size"});
  CF_ASSERT_OK_AND_ASSIGN(auto ok, parse(R"({"num_attention_heads": 2, "attention_head_dim": 8,
      "cross_attention_dim": 16, "caption_channels": 16, "sample_size": 256, "brand_new_option": 1})"));
  EXPECT_NE(ok.note.find("ignored unknown keys brand_new_option"), std::string::npos) << ok.note;
  EXPECT_EQ(ok.interpolation_scale, 4.0);          // max(256 // 64, 1)
  EXPECT_FALSE(ok.use_additional_conditions);      // sample_size != 128
  EXPECT_EQ(ok.base_size(), 128);

  // Input errors are builder errors naming the input and its type.
  const auto build = [&](Shape hidden, bool conditions, Shape mask) {
    Graph g;
    Builder b(&g);
    PixArtInputs in{.hidden_states = b.Input("hidden_states", hidden, DType::f32),
                    .timestep = b.Input("timestep", Shape{2}, DType::f32),
                    .encoder_hidden_states = b.Input("ehs", Shape{2, 5, 16}, DType::f32)};
    in.encoder_attention_mask = b.Input("mask", mask, DType::u8);
    if (conditions) {
      in.resolution = b.Input("resolution", Shape{2, 2}, DType::f32);
      in.aspect_ratio = b.Input("aspect_ratio", Shape{2, 1}, DType::f32);
    }
    PixArtTransformer2D(b, ok, in);
    return b.status();
  };
  CF_EXPECT_OK(build(Shape{2, 4, 8, 6}, false, Shape{2, 5}));
  ExpectError(build(Shape{2, 4, 9, 6}, false, Shape{2, 5}), {"multiples of the patch size 2", "f32[2, 4, 9, 6]"});
  ExpectError(build(Shape{2, 3, 8, 6}, false, Shape{2, 5}), {"hidden_states must be [B, 4, H, W]"});
  ExpectError(build(Shape{2, 4, 8, 6}, true, Shape{2, 5}), {"resolution and aspect_ratio are not used"});
  ExpectError(build(Shape{2, 4, 8, 6}, false, Shape{2, 4}), {"encoder_attention_mask must be [2, 5]"});
  auto alpha = PixArtTransformerConfig::PixArtAlpha1024MS();
  Graph g;
  Builder b(&g);
  CF_EXPECT_OK(BuildPixArtTransformerGraph(b, alpha, {.height = 32, .width = 32}).status());  // declares them
  Graph g2;
  Builder b2(&g2);
  PixArtInputs in{.hidden_states = b2.Input("hidden_states", Shape{1, 4, 16, 16}, DType::f32),
                  .timestep = b2.Input("timestep", Shape{1}, DType::f32),
                  .encoder_hidden_states = b2.Input("ehs", Shape{1, 7, 4096}, DType::f32)};
  PixArtTransformer2D(b2, alpha, in);
  ExpectError(b2.status(), {"resolution and aspect_ratio are required"});
}

// ---- Fidelity: tiny random configurations against diffusers ----------------------

// Each tests/data/pixart/<case>/io.safetensors: diffusers' inputs, output and
// taps for the weights in tests/data/pixart/<weights>/transformer (f32;
// tiny_sigma_convblock: the authors' ConvBlocks on top of tiny_sigma's
// weights), made by tools/make_pixart_golden.py. The taps are token-major
// [B, N, D] in diffusers, the same memory as the graph's [B, h, w, D].
TEST(PixArtTransformer, MatchesDiffusers) {
  int cases = 0;
  for (const char* name : {"tiny_sigma", "tiny_sigma_odd", "tiny_alpha_ms", "tiny_sigma_convblock"}) {
    SCOPED_TRACE(name);
    CF_ASSERT_OK_AND_ASSIGN(SafetensorsFile io, SafetensorsFile::Open(DataDir() + "/" + name + "/io.safetensors"));
    std::vector<std::string> folders;
    for (absl::string_view w : absl::StrSplit(io.metadata().at("weights"), ','))
      folders.push_back(absl::StrCat(DataDir(), "/", w, "/transformer"));
    CF_ASSERT_OK_AND_ASSIGN(auto config, PixArtTransformerConfig::Load(folders.back()));
    EXPECT_EQ(config.note, "");
    const bool convblock = folders.size() > 1;
    CF_ASSERT_OK_AND_ASSIGN(Tensor hidden, io.Read("hidden_states"));
    CF_ASSERT_OK_AND_ASSIGN(Tensor ehs, io.Read("encoder_hidden_states"));
    PixArtGraphShape shape{.batch = hidden.shape()[0], .height = hidden.shape()[2], .width = hidden.shape()[3],
                           .tokens = ehs.shape()[1], .attention_mask = true, .dtype = DType::f32};
    PixArtBuildOptions options;
    if (convblock) options.self_attention.kind = SelfAttentionKind::kConvBlock;  // K 13, sigmoid: as released
    Graph g;
    Builder b(&g);
    CF_ASSERT_OK_AND_ASSIGN(PixArtOutputs out, BuildPixArtTransformerGraph(b, config, shape, options));
    std::vector<std::string> taps;
    for (const auto& [tap, v] : out.taps) {
      if (!io.contains("tap." + tap)) continue;  // the ".self" states are not in diffusers' module outputs
      b.MarkOutput(v, "tap." + tap);
      taps.push_back("tap." + tap);
    }
    EXPECT_EQ(taps.size(), 4 + config.num_layers);
    CF_ASSERT_OK(b.Finish().status());
    for (const auto& site : out.sites)
      EXPECT_EQ(site.choice.ToString(), convblock ? "convblock:13:sigmoid" : "self") << site.scope;

    const auto t0 = std::chrono::steady_clock::now();
    CF_ASSERT_OK_AND_ASSIGN(WeightFiles files, WeightFiles::Open(folders));
    LoadWeightsOptions lo;
    lo.allow_unexpected = convblock;  // the base's attn1 tensors, replaced by conv1
    CF_ASSERT_OK_AND_ASSIGN(LoadedWeights w, LoadWeights(g, files, lo));
    EXPECT_EQ(w.parameters.size(), g.Parameters().size());
    for (const std::string& k : w.unexpected) EXPECT_NE(k.find(".attn1."), std::string::npos) << k;
    EXPECT_EQ(w.unexpected.empty(), !convblock);
    ExecutorOptions eo;
    eo.poison = true;
    CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, eo));
    for (const auto& [pn, t] : w.parameters) CF_ASSERT_OK(exec->SetParameter(pn, t));
    std::map<std::string, Tensor> inputs;
    for (const char* in :
         {"hidden_states", "timestep", "encoder_hidden_states", "encoder_attention_mask", "resolution", "aspect_ratio"}) {
      if (g.FindInput(in) < 0) continue;
      CF_ASSERT_OK_AND_ASSIGN(inputs[in], io.Read(in));
    }
    EXPECT_EQ(inputs.size(), config.use_additional_conditions ? 6u : 4u);
    CF_ASSERT_OK_AND_ASSIGN(auto outs, exec->RunNamed(inputs));
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    taps.push_back("output");
    for (const std::string& o : taps) {
      CF_ASSERT_OK_AND_ASSIGN(Tensor want, io.Read(o));
      const std::vector<double> got = ToDoubles(outs.at(o));
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

// The caption mask matters: the same tiny_sigma run with every token kept
// differs from diffusers' masked output (so MatchesDiffusers checks the mask).
TEST(PixArtTransformer, CaptionMaskChangesTheOutput) {
  CF_ASSERT_OK_AND_ASSIGN(SafetensorsFile io, SafetensorsFile::Open(DataDir() + "/tiny_sigma/io.safetensors"));
  CF_ASSERT_OK_AND_ASSIGN(auto config, PixArtTransformerConfig::Load(DataDir() + "/tiny_sigma/transformer"));
  Graph g;
  Builder b(&g);
  CF_ASSERT_OK(BuildPixArtTransformerGraph(b, config, {.batch = 2, .height = 8, .width = 8, .tokens = 5}).status());
  CF_ASSERT_OK(b.Finish().status());
  CF_ASSERT_OK_AND_ASSIGN(WeightFiles files, WeightFiles::Open(DataDir() + "/tiny_sigma/transformer"));
  CF_ASSERT_OK_AND_ASSIGN(LoadedWeights w, LoadWeights(g, files));
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g));
  for (const auto& [pn, t] : w.parameters) CF_ASSERT_OK(exec->SetParameter(pn, t));
  std::map<std::string, Tensor> inputs;
  for (const char* in : {"hidden_states", "timestep", "encoder_hidden_states"}) {
    CF_ASSERT_OK_AND_ASSIGN(inputs[in], io.Read(in));
  }
  CF_ASSERT_OK_AND_ASSIGN(auto outs, exec->RunNamed(inputs));
  CF_ASSERT_OK_AND_ASSIGN(Tensor want, io.Read("output"));
  EXPECT_GT(RelativeError(ToDoubles(outs.at("output")), ToDoubles(want)), 1e-3);
}

// Builds tiny_sigma_odd (a 5x7 token grid) with `options` in `dtype`, loads
// its weights (parameters the file lacks, such as LinFusion's MLPs or a
// ConvBlock: seeded random), runs diffusers' inputs and returns the output.
std::vector<double> RunTinySigmaOdd(const PixArtBuildOptions& options, DType dtype = DType::f32) {
  const std::string folder = DataDir() + "/tiny_sigma_odd/transformer";
  auto io = SafetensorsFile::Open(DataDir() + "/tiny_sigma_odd/io.safetensors");
  auto config = PixArtTransformerConfig::Load(folder);
  auto files = WeightFiles::Open(folder);
  EXPECT_TRUE(io.ok() && config.ok() && files.ok());
  if (!io.ok() || !config.ok() || !files.ok()) return {};
  Graph g;
  Builder b(&g);
  auto out = BuildPixArtTransformerGraph(
      b, *config, {.batch = 2, .height = 10, .width = 14, .tokens = 4, .attention_mask = true, .dtype = dtype}, options);
  EXPECT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(b.Finish().ok()) << b.status();
  LoadWeightsOptions lo;
  lo.allow_missing = lo.allow_unexpected = true;
  auto w = LoadWeights(g, *files, lo);
  EXPECT_TRUE(w.ok()) << w.status();
  auto exec = Executor::Create(g);
  EXPECT_TRUE(exec.ok()) << exec.status();
  if (!w.ok() || !exec.ok()) return {};
  for (const auto& [pn, t] : w->parameters) EXPECT_TRUE((*exec)->SetParameter(pn, t).ok());
  uint64_t seed = 11;
  for (const std::string& m : w->missing) {  // "name f32[...]"
    const std::string pn = m.substr(0, m.find(' '));
    const Shape ps = g.value(g.FindParameter(pn)).type.shape;
    const bool scale = pn.find("_.1.weight") != std::string::npos;  // LinFusion's LayerNorm scales near 1
    EXPECT_TRUE((*exec)->SetParameter(pn, RandomTensor(ps, dtype, ++seed, scale ? 0.8 : -0.2, scale ? 1.2 : 0.2)).ok());
  }
  std::map<std::string, Tensor> in;
  for (const char* name : {"hidden_states", "timestep", "encoder_hidden_states", "encoder_attention_mask"}) {
    auto t = io->Read(name);
    EXPECT_TRUE(t.ok()) << t.status();
    if (!t.ok()) return {};
    const int id = g.FindInput(name);
    const DType want = g.value(id).type.dtype;
    if (t->dtype() == want) {
      in[name] = *t;
    } else {
      in[name] = FromDoubles(ToDoubles(*t), t->shape(), want);
    }
  }
  for (int id : g.Inputs())  // window attention's cached residuals: zero
    if (!in.count(g.value(id).name)) in[g.value(id).name] = *Tensor::Zeros(g.value(id).type.shape, dtype);
  auto outs = (*exec)->RunNamed(in);
  EXPECT_TRUE(outs.ok()) << outs.status();
  if (!outs.ok()) return {};
  std::vector<double> v = ToDoubles(outs->at("output"));
  for (double x : v) EXPECT_TRUE(std::isfinite(x));
  return v;
}

// Every self-attention choice runs in a PixArt block (modulated input, gated
// residual, PixArt's q, k, v biases); the degenerate ones equal
// self-attention: a band over all 35 tokens, NA whose window covers the 5x7
// map. The others differ.
TEST(PixArtTransformer, EveryChoiceRunsInTheTinyModel) {
  const auto run = [](const std::string& choice) {
    SCOPED_TRACE(choice);
    PixArtBuildOptions o;
    auto c = ParseSelfAttentionChoice(choice);
    EXPECT_TRUE(c.ok()) << c.status();
    if (c.ok()) o.self_attention = *c;
    return RunTinySigmaOdd(o);
  };
  CF_ASSERT_OK_AND_ASSIGN(SafetensorsFile io, SafetensorsFile::Open(DataDir() + "/tiny_sigma_odd/io.safetensors"));
  CF_ASSERT_OK_AND_ASSIGN(Tensor want, io.Read("output"));
  const std::vector<double> self = run("self");
  EXPECT_LE(RelativeError(self, ToDoubles(want)), 1e-4);
  EXPECT_LE(RelativeError(run("window:40"), self), 1e-5);  // the band covers all 35 tokens, residual 0
  EXPECT_LE(RelativeError(run("window:4:full"), self), 1e-5);
  EXPECT_LE(RelativeError(run("na:7"), self), 1e-5);       // 7 > the map's height 5: full attention
  EXPECT_GT(RelativeError(run("window:4"), self), 1e-3);
  EXPECT_GT(RelativeError(run("na:3"), self), 1e-3);
  EXPECT_GT(RelativeError(run("linfusion"), self), 1e-3);
  EXPECT_GT(RelativeError(run("convblock"), self), 1e-3);
  EXPECT_GT(RelativeError(run("convblock:3:paper"), self), 1e-3);
}

// The tiny model in f16 and bf16 storage on the CPU (weights converted at
// load, inputs rounded) against diffusers' float64 output.
TEST(PixArtTransformer, HalfPrecisionStaysCloseToDiffusers) {
  CF_ASSERT_OK_AND_ASSIGN(SafetensorsFile io, SafetensorsFile::Open(DataDir() + "/tiny_sigma_odd/io.safetensors"));
  CF_ASSERT_OK_AND_ASSIGN(Tensor want, io.Read("output"));
  for (const auto& [dt, tol] : std::vector<std::pair<DType, double>>{{DType::f16, 5e-3}, {DType::bf16, 3e-2}}) {
    SCOPED_TRACE(DTypeName(dt));
    const double rel = RelativeError(RunTinySigmaOdd({}, dt), ToDoubles(want));
    EXPECT_LE(rel, tol);
    EXPECT_GT(rel, 1e-6);  // it did run in low precision
    std::printf("tiny_sigma_odd in %s: relative error %.2e\n", DTypeName(dt), rel);
  }
}

}  // namespace
}  // namespace cf::testing
