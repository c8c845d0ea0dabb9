// nn/clip_text_model.h: the released CLIP text encoders as shape-only graphs
// (parameter counts equal transformers', the planner's arena within 1.05x of
// its lower bound), the config reader, the pooled-token rules, the weight
// layouts, and the tiny random configurations against transformers' outputs
// (tests/data/clip, tools/make_clip_golden.py).
#include "nn/clip_text_model.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "graph/executor.h"
#include "graph/planner.h"
#include "nn/safetensors.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

std::string DataDir() { return (std::filesystem::path(CF_SOURCE_DIR) / "tests" / "data" / "clip").string(); }

int64_t ParameterCount(const Graph& g) {
  int64_t n = 0;
  for (int id : g.Parameters()) n += g.value(id).type.shape.numel();
  return n;
}

TEST(ClipTextModel, ReleasedConfigFilesGiveTheBuiltInConfigs) {
  for (const auto& [file, want] : std::vector<std::pair<std::string, ClipTextConfig>>{
           {"clip_vit_l14_config.json", ClipTextConfig::ClipVitL14()},
           {"openclip_bigg_config.json", ClipTextConfig::OpenClipBigG()}}) {
    SCOPED_TRACE(file);
    CF_ASSERT_OK_AND_ASSIGN(auto c, ClipTextConfig::Load(DataDir() + "/" + file));
    EXPECT_EQ(c.note, "");  // every key of the released files is understood
    EXPECT_EQ(c.with_projection, want.with_projection);
    EXPECT_EQ(c.vocab_size, want.vocab_size);
    EXPECT_EQ(c.hidden_size, want.hidden_size);
    EXPECT_EQ(c.intermediate_size, want.intermediate_size);
    EXPECT_EQ(c.num_layers, want.num_layers);
    EXPECT_EQ(c.heads, want.heads);
    EXPECT_EQ(c.max_positions, want.max_positions);
    EXPECT_EQ(c.quick_gelu, want.quick_gelu);
    EXPECT_EQ(c.layer_norm_eps, want.layer_norm_eps);
    EXPECT_EQ(c.projection_dim, want.projection_dim);
    EXPECT_EQ(c.eos_token_id, want.eos_token_id);
    EXPECT_EQ(c.head_dim(), 64);
  }
}

// The counts of transformers' models built from the released configs
// (tools/make_clip_golden.py prints them).
TEST(ClipTextModel, FullSizeParameterCountsAndPlans) {
  for (const auto& [name, config, params] : std::vector<std::tuple<std::string, ClipTextConfig, int64_t>>{
           {"CLIP ViT-L/14", ClipTextConfig::ClipVitL14(), 123060480LL},
           {"OpenCLIP bigG", ClipTextConfig::OpenClipBigG(), 694659840LL}}) {
    SCOPED_TRACE(name);
    const auto t0 = std::chrono::steady_clock::now();
    Graph g;
    Builder b(&g);
    CF_ASSERT_OK_AND_ASSIGN(ClipTextOutputs o, BuildClipTextGraph(b, config, {.batch = 2, .tokens = 77,
                                                                                .dtype = DType::f16}));
    CF_ASSERT_OK(b.Finish().status());
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(ParameterCount(g), params);
    EXPECT_EQ(o.hidden_states.size(), static_cast<size_t>(config.num_layers + 1));
    EXPECT_EQ(o.last_hidden_state.shape(), Shape({2, 77, config.hidden_size}));
    EXPECT_EQ(o.pooled_output.shape(), Shape({2, config.hidden_size}));
    EXPECT_EQ(o.text_embeds.valid(), config.with_projection);
    EXPECT_GE(g.FindParameter("text_model.encoder.layers.0.self_attn.q_proj.weight"), 0);
    EXPECT_GE(g.FindParameter("text_model.final_layer_norm.bias"), 0);
    CF_ASSERT_OK_AND_ASSIGN(MemoryPlan plan, PlanMemory(g));
    CF_EXPECT_OK(VerifyPlan(g, plan));
    EXPECT_LE(plan.ratio(), 1.05) << plan.ToString();
    std::printf("%s (batch 2, 77 tokens, f16): %lld parameters, %d nodes, built in %.1f ms, arena %.2f MiB = %.3f x "
                "lower bound\n",
                name.c_str(), static_cast<long long>(ParameterCount(g)), g.num_nodes(), ms,
                static_cast<double>(plan.arena_bytes) / (1 << 20), plan.ratio());
    EXPECT_LT(ms, 1000.0);
  }
}

TEST(ClipTextModel, PooledIndexFollowsTransformersRules) {
  CF_ASSERT_OK_AND_ASSIGN(Tensor ids, Tensor::FromValues<int64_t>({49406, 320, 49407, 49407,   // eos-padded
                                                                    49406, 320, 49407, 0,       // 0-padded
                                                                    49406, 49407, 5, 5},
                                                                   Shape{3, 4}));
  ClipTextConfig legacy = ClipTextConfig::ClipVitL14();  // eos_token_id 2: argmax, the first maximum
  CF_ASSERT_OK_AND_ASSIGN(Tensor a, ClipPooledIndex(ids, legacy));
  EXPECT_EQ(*a.ToVector<int64_t>(), (std::vector<int64_t>{2, 4 + 2, 8 + 1}));
  ClipTextConfig first = legacy;  // any other id: its first position, 0 where it does not occur
  first.eos_token_id = 5;
  CF_ASSERT_OK_AND_ASSIGN(Tensor f, ClipPooledIndex(ids, first));
  EXPECT_EQ(*f.ToVector<int64_t>(), (std::vector<int64_t>{0, 4 + 0, 8 + 2}));
  first.eos_token_id = 49407;
  CF_ASSERT_OK_AND_ASSIGN(Tensor g, ClipPooledIndex(ids, first));
  EXPECT_EQ(*g.ToVector<int64_t>(), (std::vector<int64_t>{2, 4 + 2, 8 + 1}));
  CF_ASSERT_OK_AND_ASSIGN(Tensor bad, Tensor::FromValues<int64_t>({1, 49408}, Shape{1, 2}));
  ExpectError(ClipPooledIndex(bad, legacy).status(), {"input_ids[0, 1] = 49408", "vocab_size 49408"});
  CF_ASSERT_OK_AND_ASSIGN(Tensor neg, Tensor::FromValues<int64_t>({-1}, Shape{1, 1}));
  ExpectError(ClipPooledIndex(neg, legacy).status(), {"input_ids[0, 0] = -1"});
  CF_ASSERT_OK_AND_ASSIGN(Tensor flat, Tensor::FromValues<int64_t>({1, 2}, Shape{2}));
  ExpectError(ClipPooledIndex(flat, legacy).status(), {"[B, T]"});
}

TEST(ClipTextModel, ConfigErrorsNameTheFileAndTheKey) {
  const auto parse = [](const std::string& json) {
    auto c = DiffusersConfig::Parse(json, "te/config.json");
    EXPECT_TRUE(c.ok()) << c.status();
    return ClipTextConfig::FromTransformers(*c);
  };
  ExpectError(parse(R"({"model_type": "clip"})").status(), {"te/config.json", "model_type \"clip\""});
  ExpectError(parse(R"({"architectures": ["CLIPVisionModel"]})").status(), {"architectures [CLIPVisionModel]"});
  ExpectError(parse(R"({"hidden_act": "relu"})").status(), {"hidden_act \"relu\"", "not implemented"});
  ExpectError(parse(R"({"hidden_size": 30, "num_attention_heads": 4})").status(), {"not divisible"});
  ExpectError(parse(R"({"num_hidden_layers": "twelve"})").status(), {"num_hidden_layers"});
  ExpectError(parse(R"({"max_position_embeddings": 0})").status(), {"must be positive"});
  // Absent keys take CLIPTextConfig's defaults; unknown ones are a note.
  CF_ASSERT_OK_AND_ASSIGN(auto d, parse(R"({"brand_new_option": 1, "dtype": "float16"})"));
  EXPECT_FALSE(d.with_projection);
  EXPECT_EQ(d.hidden_size, 512);
  EXPECT_EQ(d.eos_token_id, 49407);
  EXPECT_NE(d.note.find("ignored unknown keys brand_new_option"), std::string::npos) << d.note;
  CF_ASSERT_OK_AND_ASSIGN(auto p, parse(R"({"architectures": ["CLIPTextModelWithProjection"], "hidden_act": "gelu"})"));
  EXPECT_TRUE(p.with_projection);
  EXPECT_FALSE(p.quick_gelu);
  EXPECT_EQ(p.Describe(), "CLIPTextModelWithProjection (12 layers, width 512, 8 heads, gelu, vocab 49408, 77 "
                          "positions, projection 512)");
}

TEST(ClipTextModel, BuilderErrorsNameTheInput) {
  const ClipTextConfig c = ClipTextConfig::ClipVitL14();
  {
    Graph g;
    Builder b(&g);
    ClipTextModel(b, c, {.input_ids = b.Input("ids", Shape{1, 78}, DType::i64)});
    ExpectError(b.status(), {"CLIPTextModel", "max_position_embeddings 77", "i64[1, 78]"});
  }
  {
    Graph g;
    Builder b(&g);
    ClipTextModel(b, c, {.input_ids = b.Input("ids", Shape{1, 7}, DType::f32)});
    ExpectError(b.status(), {"input_ids must be [B, T] i32 or i64", "f32[1, 7]"});
  }
  {
    Graph g;
    Builder b(&g);
    ClipTextModel(b, c, {.input_ids = b.Input("ids", Shape{2, 7}, DType::i64),
                         .pooled_index = b.Input("p", Shape{3}, DType::i64)});
    ExpectError(b.status(), {"pooled_index must be [2]", "i64[3]"});
  }
}

// ---- Fidelity: tiny random configurations against transformers ---------------------

// max |got - want| / max |want|.
double RelativeError(const std::vector<double>& got, const std::vector<double>& want) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, std::abs(got[i] - want[i]));
    if (std::isnan(got[i])) err = INFINITY;
    scale = std::max(scale, std::abs(want[i]));
  }
  return err / scale;
}

struct RunResult {
  std::map<std::string, Tensor> outputs;
  LoadedWeights weights;
};

// Builds `folder`'s model for io's input_ids (and attention_mask when
// `masked`), loads the weights and runs it on the CPU in f32; the outputs
// are the graph's plus hidden_states.I for every I but the penultimate.
StatusOr<RunResult> RunTiny(const std::string& folder, const SafetensorsFile& io, bool masked, DType dt = DType::f32) {
  CF_ASSIGN_OR_RETURN(ClipTextConfig config, ClipTextConfig::Load(folder));
  CF_ASSIGN_OR_RETURN(Tensor ids, io.Read("input_ids"));
  std::map<std::string, Tensor> inputs = {{"input_ids", ids}};
  CF_ASSIGN_OR_RETURN(inputs["pooled_index"], ClipPooledIndex(ids, config));
  if (masked) {
    CF_ASSIGN_OR_RETURN(Tensor m, io.Read("attention_mask"));
    CF_ASSIGN_OR_RETURN(std::vector<int64_t> mv, m.ToVector<int64_t>());
    CF_ASSIGN_OR_RETURN(Tensor u8, Tensor::Empty(m.shape(), DType::u8));
    for (size_t i = 0; i < mv.size(); ++i) u8.data<uint8_t>()[i] = mv[i] != 0 ? 1 : 0;
    inputs["attention_mask"] = u8;
  }
  Graph g;
  Builder b(&g);
  CF_ASSIGN_OR_RETURN(ClipTextOutputs o, BuildClipTextGraph(b, config,
                                                            {.batch = ids.shape()[0], .tokens = ids.shape()[1],
                                                             .attention_mask = masked, .dtype = dt}));
  for (size_t i = 0; i < o.hidden_states.size(); ++i)
    if (i + 2 != o.hidden_states.size()) b.MarkOutput(o.hidden_states[i], absl::StrCat("hidden_states.", i));
  CF_RETURN_IF_ERROR(b.Finish().status());
  RunResult r;
  CF_ASSIGN_OR_RETURN(WeightFiles files, WeightFiles::Open(folder));
  CF_ASSIGN_OR_RETURN(r.weights, LoadClipTextWeights(g, files));
  ExecutorOptions eo;
  eo.poison = true;
  CF_ASSIGN_OR_RETURN(auto exec, Executor::Create(g, eo));
  for (const auto& [pn, t] : r.weights.parameters) CF_RETURN_IF_ERROR(exec->SetParameter(pn, t));
  CF_ASSIGN_OR_RETURN(auto outs, exec->RunNamed(inputs));
  r.outputs = std::move(outs);
  return r;
}

// Every output against the golden tensor of the same name (`prefix` +
// name), within `tol` relative to the tensor's largest magnitude.
int Compare(const std::string& label, const std::map<std::string, Tensor>& outs, const SafetensorsFile& io,
            const std::string& prefix, double tol) {
  int n = 0;
  for (const auto& [name, t] : outs) {
    const std::string want_name = prefix + name;
    if (!io.contains(want_name)) continue;
    auto want = io.Read(want_name);
    EXPECT_TRUE(want.ok()) << want.status();
    if (!want.ok()) continue;
    EXPECT_EQ(t.shape(), want->shape()) << want_name;
    if (t.shape() != want->shape()) continue;
    const double rel = RelativeError(ToDoubles(t), ToDoubles(*want));
    EXPECT_LE(rel, tol) << label << " " << want_name;
    std::printf("%s %s: relative error %.2e\n", label.c_str(), want_name.c_str(), rel);
    ++n;
  }
  return n;
}

// tiny_sdxl/text_encoder: ViT-L/14's rules (quick_gelu, pooled at the
// argmax), f16 weights under text_model.* plus the position_ids buffer;
// rows padded with the end token and with 0; one prompt truncated.
// text_encoder_2: bigG's rules (gelu, the projection) with eos_token_id 5
// (first position, not the argmax), sharded f32 weights, 20 of 77 positions.
TEST(ClipTextModel, MatchesTransformers) {
  for (const auto& [component, outputs] :
       std::vector<std::pair<std::string, int>>{{"text_encoder", 3 + 3}, {"text_encoder_2", 4 + 2}}) {
    SCOPED_TRACE(component);
    const std::string folder = DataDir() + "/tiny_sdxl/" + component;
    CF_ASSERT_OK_AND_ASSIGN(SafetensorsFile io,
                            SafetensorsFile::Open(DataDir() + "/tiny_sdxl/io_" + component + ".safetensors"));
    CF_ASSERT_OK_AND_ASSIGN(ClipTextConfig config, ClipTextConfig::Load(folder));
    EXPECT_EQ(config.note, "");
    const auto t0 = std::chrono::steady_clock::now();
    CF_ASSERT_OK_AND_ASSIGN(RunResult r, RunTiny(folder, io, false));
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    // last_hidden_state, penultimate, pooled (+ text_embeds), hidden_states.I
    EXPECT_EQ(Compare(component, r.outputs, io, "", 1e-4), outputs);
    CF_ASSERT_OK_AND_ASSIGN(Tensor pen, io.Read(absl::StrCat("hidden_states.", config.num_layers - 1)));
    EXPECT_LE(RelativeError(ToDoubles(r.outputs.at("hidden_states_penultimate")), ToDoubles(pen)), 1e-4);
    if (component == "text_encoder") {
      EXPECT_EQ(r.weights.unexpected.size(), 1u);  // the int64 position_ids buffer, skipped
      if (!r.weights.unexpected.empty()) {
        EXPECT_EQ(r.weights.unexpected[0].rfind("text_model.embeddings.position_ids", 0), 0u);
      }
    } else {
      EXPECT_TRUE(r.weights.unexpected.empty());
    }
    std::printf("%s: %s, %s, loaded and ran in %.0f ms\n", component.c_str(), config.Describe().c_str(),
                r.weights.Summary().c_str(), ms);
    // With transformers' attention_mask on top of the causal mask.
    CF_ASSERT_OK_AND_ASSIGN(RunResult m, RunTiny(folder, io, true));
    EXPECT_EQ(Compare(component + " masked", m.outputs, io, "masked.", 1e-4), config.with_projection ? 3 : 2);
    // The mask changes the padded positions (and so can be told apart).
    EXPECT_GT(RelativeError(ToDoubles(m.outputs.at("last_hidden_state")),
                            ToDoubles(r.outputs.at("last_hidden_state"))),
              1e-3);
  }
}

// The same weights as transformers 5 writes a CLIPTextModel: no
// "text_model." prefix, no position_ids; and in bf16 storage.
TEST(ClipTextModel, ReadsTheTransformers5Layout) {
  const std::string src = DataDir() + "/tiny_sdxl/text_encoder";
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "clip_flat";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(src + "/config.json", dir / "config.json");
  CF_ASSERT_OK_AND_ASSIGN(SafetensorsFile legacy, SafetensorsFile::Open(src + "/model.safetensors"));
  std::vector<std::pair<std::string, Tensor>> flat;
  for (const std::string& k : legacy.names()) {
    if (k == "text_model.embeddings.position_ids") continue;
    CF_ASSERT_OK_AND_ASSIGN(Tensor t, legacy.Read(k));
    flat.push_back({k.substr(std::string("text_model.").size()), CastTo(t, DType::bf16)});
  }
  CF_ASSERT_OK(WriteSafetensors((dir / "model.safetensors").string(), flat, {}));
  CF_ASSERT_OK_AND_ASSIGN(SafetensorsFile io,
                          SafetensorsFile::Open(DataDir() + "/tiny_sdxl/io_text_encoder.safetensors"));
  CF_ASSERT_OK_AND_ASSIGN(RunResult r, RunTiny(dir.string(), io, false));
  EXPECT_TRUE(r.weights.unexpected.empty());
  // bf16 weights: their rounding (2^-9 relative) shows in the output.
  CF_ASSERT_OK_AND_ASSIGN(Tensor want, io.Read("last_hidden_state"));
  const double rel = RelativeError(ToDoubles(r.outputs.at("last_hidden_state")), ToDoubles(want));
  EXPECT_LE(rel, 5e-2);
  EXPECT_GT(rel, 1e-6);
  std::printf("transformers 5 layout, bf16 weights: last_hidden_state relative error %.2e\n", rel);
}

// The tiny model in f16 and bf16 compute against transformers' float64.
TEST(ClipTextModel, HalfPrecisionStaysClose) {
  CF_ASSERT_OK_AND_ASSIGN(SafetensorsFile io,
                          SafetensorsFile::Open(DataDir() + "/tiny_sdxl/io_text_encoder_2.safetensors"));
  for (const auto& [dt, tol] : std::vector<std::pair<DType, double>>{{DType::f16, 5e-3}, {DType::bf16, 3e-2}}) {
    CF_ASSERT_OK_AND_ASSIGN(RunResult r, RunTiny(DataDir() + "/tiny_sdxl/text_encoder_2", io, false, dt));
    EXPECT_EQ(r.outputs.at("text_embeds").dtype(), dt);
    EXPECT_EQ(Compare(DTypeName(dt), {{"text_embeds", r.outputs.at("text_embeds")},
                                      {"last_hidden_state", r.outputs.at("last_hidden_state")}},
                      io, "", tol),
              2);
  }
}

// Weights of the wrong model: every missing and unexpected key at once.
TEST(ClipTextModel, WrongWeightsAreReportedAllAtOnce) {
  CF_ASSERT_OK_AND_ASSIGN(ClipTextConfig c, ClipTextConfig::Load(DataDir() + "/tiny_sdxl/text_encoder"));
  c.num_layers = 4;  // one layer more than the file has
  c.with_projection = true;
  Graph g;
  Builder b(&g);
  CF_ASSERT_OK(BuildClipTextGraph(b, c, {.batch = 1, .tokens = 5}).status());
  CF_ASSERT_OK_AND_ASSIGN(WeightFiles files, WeightFiles::Open(DataDir() + "/tiny_sdxl/text_encoder"));
  ExpectError(LoadClipTextWeights(g, files).status(),
              {"17 missing", "text_model.encoder.layers.3.mlp.fc2.bias f32[16]",
               "text_projection.weight f32[768, 16]"});
  // The other encoder's weights: mis-shaped tensors, named with both shapes.
  CF_ASSERT_OK_AND_ASSIGN(WeightFiles other, WeightFiles::Open(DataDir() + "/tiny_sdxl/text_encoder_2"));
  ExpectError(LoadClipTextWeights(g, other).status(),
              {"mis-shaped", "text_model.embeddings.token_embedding.weight: file F32[600, 32]",
               "expected [49408, 16]"});
}

}  // namespace
}  // namespace cf::testing
