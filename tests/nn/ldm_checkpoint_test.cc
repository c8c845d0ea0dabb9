// nn/ldm_checkpoint.h: single-file SD1.5 / SDXL checkpoints
// (tests/data/ldm, tools/make_ldm_golden.py: the tiny diffusers models of
// tests/data/unet and tests/data/vae in the LDM / SGM layouts, checked with
// diffusers' converters) give the same parameters, and the same UNet outputs,
// as the diffusers folders; bad files are clear errors.
#include "nn/ldm_checkpoint.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "graph/executor.h"
#include "nn/autoencoder_kl.h"
#include "nn/unet2d_condition.h"
#include "tests/support/model_golden.h"
#include "tests/support/op_harness.h"
#include "tests/support/process.h"

namespace cf::testing {
namespace {

namespace fs = std::filesystem;

std::string Data(const std::string& rel) { return TestDataDir(rel); }
std::string Ldm(const std::string& c) { return Data("ldm/" + c + ".safetensors"); }

// The tiny UNet's graph for its io.safetensors.
struct UNetCase {
  SafetensorsFile io;
  Graph g;
};
std::unique_ptr<UNetCase> BuildUNet(const std::string& name) {
  auto io = SafetensorsFile::Open(Data("unet/" + name + "/io.safetensors"));
  auto config = UNet2DConditionConfig::Load(Data("unet/" + name + "/unet"));
  EXPECT_TRUE(io.ok() && config.ok());
  if (!io.ok() || !config.ok()) return nullptr;
  auto c = std::make_unique<UNetCase>(UNetCase{*std::move(io), Graph()});
  const Tensor sample = *c->io.Read("sample"), ehs = *c->io.Read("encoder_hidden_states");
  Builder b(&c->g);
  UNetGraphShape shape;
  shape.batch = sample.shape()[0];
  shape.height = sample.shape()[2];
  shape.width = sample.shape()[3];
  shape.tokens = ehs.shape()[1];
  EXPECT_TRUE(BuildUNet2DConditionGraph(b, *config, shape).ok());
  EXPECT_TRUE(b.Finish().ok());
  return c;
}

// Every parameter loaded from `a` equals the one from `b`, exactly.
void ExpectSameParameters(const LoadedWeights& a, const LoadedWeights& b) {
  ASSERT_EQ(a.parameters.size(), b.parameters.size());
  std::map<std::string, Tensor> want(b.parameters.begin(), b.parameters.end());
  for (const auto& [name, t] : a.parameters) {
    ASSERT_TRUE(want.count(name)) << name;
    EXPECT_EQ(t.shape(), want[name].shape()) << name;
    EXPECT_EQ(ToDoubles(t), ToDoubles(want[name])) << name;
  }
}

double RelativeError(const std::vector<double>& got, const std::vector<double>& want) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, std::isnan(got[i]) ? INFINITY : std::abs(got[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return err / scale;
}

TEST(LdmCheckpoint, InspectsTheFamilyAndComponents) {
  for (const auto& [name, family, n] :
       {std::tuple{"tiny_sd15", LdmFamily::kSd15, 3}, std::tuple{"tiny_sdxl", LdmFamily::kSdxl, 4}}) {
    SCOPED_TRACE(name);
    CF_ASSERT_OK_AND_ASSIGN(SafetensorsFile f, SafetensorsFile::Open(Ldm(name)));
    EXPECT_TRUE(IsLdmCheckpoint(f));
    CF_ASSERT_OK_AND_ASSIGN(LdmCheckpointInfo info, InspectLdmCheckpoint(f));
    EXPECT_EQ(info.family, family);
    EXPECT_EQ(static_cast<int>(info.components.size()), n);
    for (const char* c : {"unet", "vae", "text_encoder"}) EXPECT_TRUE(info.has(c)) << c;
    EXPECT_EQ(info.has("text_encoder_2"), family == LdmFamily::kSdxl);
  }
}

// The single file's UNet is the folder's, tensor for tensor (f32 for SD1.5,
// f16 for SDXL), and runs to diffusers' output.
TEST(LdmCheckpoint, UNetMatchesTheDiffusersFolder) {
  for (const char* name : {"tiny_sd15", "tiny_sdxl"}) {
    SCOPED_TRACE(name);
    auto c = BuildUNet(name);
    ASSERT_NE(c, nullptr);
    CF_ASSERT_OK_AND_ASSIGN(WeightFiles single, OpenLdmComponent(Ldm(name), "unet"));
    CF_ASSERT_OK_AND_ASSIGN(WeightFiles folder, WeightFiles::Open(Data(std::string("unet/") + name + "/unet")));
    EXPECT_EQ(single.names(), folder.names());
    CF_ASSERT_OK_AND_ASSIGN(LoadedWeights ws, LoadWeights(c->g, single));
    CF_ASSERT_OK_AND_ASSIGN(LoadedWeights wf, LoadWeights(c->g, folder));
    ExpectSameParameters(ws, wf);
    EXPECT_EQ(ws.bytes_read, wf.bytes_read);
    ExecutorOptions eo;
    eo.poison = true;
    CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(c->g, eo));
    for (const auto& [pn, t] : ws.parameters) CF_ASSERT_OK(exec->SetParameter(pn, t));
    std::map<std::string, Tensor> inputs;
    for (const char* in : {"sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids"}) {
      if (c->g.FindInput(in) < 0) continue;
      CF_ASSERT_OK_AND_ASSIGN(inputs[in], c->io.Read(in));
    }
    CF_ASSERT_OK_AND_ASSIGN(auto outs, exec->RunNamed(inputs));
    CF_ASSERT_OK_AND_ASSIGN(Tensor want, c->io.Read("output"));
    const double rel = RelativeError(ToDoubles(outs.at("output")), ToDoubles(want));
    EXPECT_LE(rel, 1e-4);
    std::printf("%s from the single file: %s; output relative error %.2e\n", name, ws.Summary().c_str(), rel);
  }
}

// The VAE (f32 in the SD1.5 file, bf16 in the SDXL one): the mid-block
// attention's 1x1 convs become the linears, the decoder's up.i is reversed;
// decoding with the single file's weights gives diffusers' image.
TEST(LdmCheckpoint, VaeMatchesTheDiffusersFolder) {
  const std::string dir = Data("vae/tiny_vae/vae");
  CF_ASSERT_OK_AND_ASSIGN(auto config, AutoencoderKLConfig::Load(dir));
  CF_ASSERT_OK_AND_ASSIGN(SafetensorsFile io, SafetensorsFile::Open(Data("vae/tiny_vae/io.safetensors")));
  CF_ASSERT_OK_AND_ASSIGN(Tensor latents, io.Read("latents"));
  for (const auto& [name, dtype] : {std::pair{"tiny_sd15", DType::f32}, std::pair{"tiny_sdxl", DType::bf16}}) {
    SCOPED_TRACE(name);
    CF_ASSERT_OK_AND_ASSIGN(WeightFiles single, OpenLdmComponent(Ldm(name), "vae"));
    CF_ASSERT_OK_AND_ASSIGN(WeightFiles folder, WeightFiles::Open(dir));
    EXPECT_EQ(single.names(), folder.names());
    CF_ASSERT_OK_AND_ASSIGN(auto attn, single.Info("encoder.mid_block.attentions.0.to_q.weight"));
    EXPECT_EQ(attn.shape, (Shape{16, 16}));  // [16, 16, 1, 1] in the file
    // Both halves, parameters in the file's dtype: equal to the folder's rounded to it.
    Graph g;
    Builder b(&g);
    CF_ASSERT_OK(BuildVaeEncodeGraph(b, config, {.height = 16, .width = 16, .dtype = dtype}).status());
    CF_ASSERT_OK(BuildVaeDecodeGraph(b, config, {.height = 16, .width = 16, .dtype = dtype}).status());
    CF_ASSERT_OK(b.Finish().status());
    CF_ASSERT_OK_AND_ASSIGN(LoadedWeights ws, LoadWeights(g, single));
    CF_ASSERT_OK_AND_ASSIGN(LoadedWeights wf, LoadWeights(g, folder));
    ExpectSameParameters(ws, wf);
    if (dtype != DType::f32) continue;
    Graph d;
    Builder bd(&d);
    CF_ASSERT_OK(BuildVaeDecodeGraph(bd, config,
                                         {.batch = latents.shape()[0], .height = latents.shape()[2] * 4,
                                          .width = latents.shape()[3] * 4})
                     .status());
    CF_ASSERT_OK(bd.Finish().status());
    LoadWeightsOptions lo;
    lo.allow_unexpected = true;  // the encoder
    CF_ASSERT_OK_AND_ASSIGN(LoadedWeights w, LoadWeights(d, single, lo));
    CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(d));
    for (const auto& [pn, t] : w.parameters) CF_ASSERT_OK(exec->SetParameter(pn, t));
    CF_ASSERT_OK_AND_ASSIGN(auto outs, exec->RunNamed({{"latents", latents}}));
    CF_ASSERT_OK_AND_ASSIGN(Tensor want, io.Read("output"));
    const double rel = RelativeError(ToDoubles(outs.at("output")), ToDoubles(want));
    EXPECT_LE(rel, 1e-4);
    std::printf("%s VAE decode from the single file: relative error %.2e\n", name, rel);
  }
}

// CLIP-L under transformers' names as it is; OpenCLIP's q/k/v rows of
// in_proj, ln_*, c_fc / c_proj and the transposed text_projection: every
// presented tensor equals the diffusers-named reference.
TEST(LdmCheckpoint, TextEncodersGiveDiffusersNames) {
  for (const auto& [file, component, ref] :
       {std::tuple{"tiny_sd15", "text_encoder", "tiny_sd15_text_encoder"},
        std::tuple{"tiny_sdxl", "text_encoder", "tiny_sdxl_text_encoder"},
        std::tuple{"tiny_sdxl", "text_encoder_2", "tiny_sdxl_text_encoder_2"}}) {
    SCOPED_TRACE(absl::StrCat(file, " ", component));
    CF_ASSERT_OK_AND_ASSIGN(WeightFiles single, OpenLdmComponent(Ldm(file), component));
    CF_ASSERT_OK_AND_ASSIGN(WeightFiles want, WeightFiles::Open(Ldm(ref)));
    EXPECT_EQ(single.names(), want.names());  // position_ids and logit_scale left out
    for (const std::string& n : want.names()) {
      CF_ASSERT_OK_AND_ASSIGN(Tensor a, single.Get(n));
      CF_ASSERT_OK_AND_ASSIGN(Tensor b, want.Get(n));
      CF_ASSERT_OK_AND_ASSIGN(auto info, single.Info(n));
      EXPECT_EQ(info.shape, a.shape()) << n;
      EXPECT_EQ(a.shape(), b.shape()) << n;
      EXPECT_EQ(ToDoubles(a), ToDoubles(b)) << n;
    }
    if (std::string(component) == "text_encoder_2") {
      EXPECT_EQ(single.SourceKey("text_model.encoder.layers.1.self_attn.v_proj.bias"),
                "conditioner.embedders.1.model.transformer.resblocks.1.attn.in_proj_bias");
      EXPECT_EQ(single.SourceKey("text_projection.weight"), "conditioner.embedders.1.model.text_projection");
      // A rename of a transposed alias is that alias.
      std::map<std::string, WeightAlias> again;
      again["proj"].source = "text_projection.weight";
      CF_ASSERT_OK_AND_ASSIGN(WeightFiles renamed, single.WithAliases(again));
      CF_ASSERT_OK_AND_ASSIGN(Tensor a, renamed.Get("proj"));
      CF_ASSERT_OK_AND_ASSIGN(Tensor b, want.Get("text_projection.weight"));
      EXPECT_EQ(ToDoubles(a), ToDoubles(b));
      again["proj"].transpose = true;  // a transpose of a transpose is not composed
      ExpectError(single.WithAliases(again).status(), {"'proj' reshapes 'text_projection.weight'"});
    }
  }
}

// The released SD1.5 and SDXL UNets and VAE at full size: the LDM key sets
// (tests/data/ldm/<family>_keys.txt, checked against diffusers' converters)
// present exactly the names the shape-only graphs declare.
TEST(LdmCheckpoint, ReleasedKeySetsGiveTheGraphsParameters) {
  TempDir dir;
  for (const char* family : {"sd15", "sdxl"}) {
    SCOPED_TRACE(family);
    std::ifstream in(Data(std::string("ldm/") + family + "_keys.txt"));
    std::vector<std::pair<std::string, Tensor>> ts;
    for (std::string k; std::getline(in, k);) ts.push_back({k, FromDoubles({0}, Shape{1}, DType::f16)});
    ASSERT_GT(ts.size(), 900u);
    const std::string file = dir / (std::string(family) + ".safetensors");
    CF_ASSERT_OK(WriteSafetensors(file, ts));
    CF_ASSERT_OK_AND_ASSIGN(SafetensorsFile f, SafetensorsFile::Open(file));
    CF_ASSERT_OK_AND_ASSIGN(LdmCheckpointInfo info, InspectLdmCheckpoint(f));
    EXPECT_EQ(info.family, std::string(family) == "sd15" ? LdmFamily::kSd15 : LdmFamily::kSdxl);
    const bool xl = std::string(family) == "sdxl";
    Graph gu, gv;
    Builder bu(&gu), bv(&gv);
    const auto unet = xl ? UNet2DConditionConfig::StableDiffusionXL() : UNet2DConditionConfig::StableDiffusion15();
    CF_ASSERT_OK(BuildUNet2DConditionGraph(bu, unet, {.height = 64, .width = 64}).status());
    const auto vae = AutoencoderKLConfig::StableDiffusion15();
    CF_ASSERT_OK(BuildVaeEncodeGraph(bv, vae, {.height = 64, .width = 64}).status());
    CF_ASSERT_OK(BuildVaeDecodeGraph(bv, vae, {.height = 64, .width = 64}).status());
    for (const auto& [component, g] : {std::pair<const char*, Graph*>{"unet", &gu}, {"vae", &gv}}) {
      SCOPED_TRACE(component);
      CF_ASSERT_OK_AND_ASSIGN(LdmComponentMap m, MapLdmComponent(f, component));
      std::set<std::string> presented, declared;
      for (const auto& [name, _] : m.aliases) presented.insert(name);
      for (int id : g->Parameters()) declared.insert(g->value(id).name);
      EXPECT_EQ(presented, declared);
      // Every declared name maps back to the key it was read from.
      for (const auto& [name, a] : m.aliases) EXPECT_EQ(m.source_of(name), a.source) << name;
      std::printf("%s %s: %zu keys -> %zu parameters\n", family, component, m.aliases.size(), declared.size());
    }
  }
}

// A copy of the SD1.5 file with `drop` removed and `add` added.
std::string Edited(const TempDir& dir, const std::string& out, const std::vector<std::string>& drop,
                   const std::vector<std::pair<std::string, Tensor>>& add) {
  auto f = SafetensorsFile::Open(Ldm("tiny_sd15"));
  EXPECT_TRUE(f.ok());
  std::vector<std::pair<std::string, Tensor>> ts;
  for (const std::string& n : f->names()) {
    bool replaced = std::find(drop.begin(), drop.end(), n) != drop.end();
    for (const auto& [an, _] : add) replaced |= an == n;
    if (!replaced) ts.push_back({n, *f->Read(n)});
  }
  for (const auto& a : add) ts.push_back(a);
  EXPECT_TRUE(WriteSafetensors(dir / out, ts).ok());
  return dir / out;
}

// Missing, mis-shaped and unexpected keys in one report, by diffusers name,
// LDM key and shape.
TEST(LdmCheckpoint, BadKeysAreReportedAllAtOnce) {
  TempDir dir;
  const std::string p = Edited(
      dir, "bad.safetensors",
      {"model.diffusion_model.input_blocks.1.0.in_layers.2.weight", "first_stage_model.decoder.up.0.block.1.conv2.bias"},
      {{"model.diffusion_model.out.2.weight", FromDoubles(std::vector<double>(4 * 8 * 3 * 3, 0.5), Shape{4, 8, 3, 3},
                                                          DType::f32)},
       {"model.diffusion_model.input_blocks.1.0.extra.weight", FromDoubles({1, 2}, Shape{2}, DType::f16)}});
  auto c = BuildUNet("tiny_sd15");
  ASSERT_NE(c, nullptr);
  CF_ASSERT_OK_AND_ASSIGN(WeightFiles w, OpenLdmComponent(p, "unet"));
  const Status s = LoadWeights(c->g, w).status();
  ExpectError(s, {"1 mis-shaped", "conv_out.weight: file F32[4, 8, 3, 3] (key 'model.diffusion_model.out.2.weight')", "expected [4, 16, 3, 3]",
                  "1 missing", "down_blocks.0.resnets.0.conv1.weight f32[16, 3, 3, 16]",
                  "(file key 'model.diffusion_model.input_blocks.1.0.in_layers.2.weight')", "1 unexpected",
                  "model.diffusion_model.input_blocks.1.0.extra.weight F16[2]"});
  std::printf("%s\n", std::string(s.message()).c_str());
  // The VAE's missing key names its LDM key too (up.0 is diffusers' last up block).
  Graph g;
  Builder b(&g);
  CF_ASSERT_OK_AND_ASSIGN(auto vc, AutoencoderKLConfig::Load(Data("vae/tiny_vae/vae")));
  CF_ASSERT_OK(BuildVaeDecodeGraph(b, vc, {.height = 16, .width = 16}).status());
  CF_ASSERT_OK(b.Finish().status());
  CF_ASSERT_OK_AND_ASSIGN(WeightFiles v, OpenLdmComponent(p, "vae"));
  LoadWeightsOptions lo;
  lo.allow_unexpected = true;
  ExpectError(LoadWeights(g, v, lo).status(),
              {"decoder.up_blocks.2.resnets.1.conv2.bias f32[8]",
               "(file key 'first_stage_model.decoder.up.0.block.1.conv2.bias')"});
}

TEST(LdmCheckpoint, OtherFilesAreClearErrors) {
  TempDir dir;
  // Truncated: the header promises more bytes than the file has.
  {
    std::ifstream in(Ldm("tiny_sd15"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(dir / "cut.safetensors", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
    const Status s = OpenLdmComponent(dir / "cut.safetensors", "unet").status();
    ExpectError(s, {"cut.safetensors"});
    ExpectError(OpenComponentWeights(dir / "cut.safetensors", "unet").status(), {"cut.safetensors"});
  }
  // A diffusers component file is not a single-file checkpoint...
  const std::string diffusers_unet = Data("unet/tiny_sd15/unet/diffusion_pytorch_model.safetensors");
  ExpectError(OpenLdmComponent(diffusers_unet, "unet").status(),
              {"not a single-file Stable Diffusion checkpoint", "model.diffusion_model."});
  // ... but is what OpenComponentWeights reads it as, as the folder and the pipeline folder are.
  for (const std::string& p : {diffusers_unet, Data("unet/tiny_sd15/unet"), Data("unet/tiny_sd15")}) {
    CF_ASSERT_OK_AND_ASSIGN(WeightFiles w, OpenComponentWeights(p, "unet"));
    EXPECT_TRUE(w.contains("conv_in.weight")) << p;
  }
  CF_ASSERT_OK_AND_ASSIGN(WeightFiles w, OpenComponentWeights(Ldm("tiny_sdxl"), "unet"));
  EXPECT_TRUE(w.contains("add_embedding.linear_1.weight"));
  // A component the file lacks, an unknown one.
  ExpectError(OpenLdmComponent(Ldm("tiny_sd15"), "text_encoder_2").status(),
              {"(sd15) has no component 'text_encoder_2'", "unet (model.diffusion_model.*)",
               "text_encoder (cond_stage_model.transformer.*)"});
  ExpectError(OpenLdmComponent(Ldm("tiny_sd15"), "transformer").status(), {"no component 'transformer'"});
  // Another model's weights in the graph: the SD1.5 UNet into the SDXL-like graph.
  auto xl = BuildUNet("tiny_sdxl");
  ASSERT_NE(xl, nullptr);
  CF_ASSERT_OK_AND_ASSIGN(WeightFiles sd15, OpenLdmComponent(Ldm("tiny_sd15"), "unet"));
  ExpectError(LoadWeights(xl->g, sd15).status(),
              {"missing", "add_embedding.linear_1.weight", "(file key 'model.diffusion_model.label_emb.0.0.weight')"});
  // A UNet whose block layout does not add up.
  const std::string odd = Edited(dir, "odd.safetensors", {},
                                 {{"model.diffusion_model.input_blocks.9.0.in_layers.0.weight",
                                   FromDoubles({1}, Shape{1}, DType::f32)}});
  ExpectError(OpenLdmComponent(odd, "unet").status(), {"cannot read the UNet's block layout", "10 input_blocks"});
  // Pickles are refused before reading.
  std::ofstream(dir / "model.ckpt") << "PK";
  ExpectError(OpenComponentWeights(dir / "model.ckpt", "unet").status(), {"pickle", "model.ckpt", ".safetensors"});
}

}  // namespace
}  // namespace cf::testing
