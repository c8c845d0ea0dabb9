// nn/weights.h: folders, shards and several sources; the layout conversions
// (OIHW -> [O, kh, kw, I], [O, I, 1, 1] -> [O, I], [C, 1, K, K] -> [K, K, C])
// and dtype conversions; every missing, unexpected and mis-shaped key
// reported at once.
#include "nn/weights.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "graph/builder.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() : path(fs::temp_directory_path() / ("cf_weights_test_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& f) const { return (path / f).string(); }
};

// A graph declaring one parameter of each layout kind.
void Declare(Graph* g) {
  Builder b(g);
  b.Parameter("conv.weight", Shape{3, 2, 2, 5}, DType::f32);      // [O, kh, kw, I]
  b.Parameter("proj.weight", Shape{4, 5}, DType::f32);           // [O, I]
  b.Parameter("dw.weight", Shape{3, 3, 6}, DType::f64);          // [K, K, C]
  b.Parameter("norm.bias", Shape{5}, DType::f16);
}

std::vector<double> Iota(int64_t n) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<double>(i) * 0.5 - 3.0;
  return v;
}

TEST(Weights, ConvertsPyTorchLayoutsAndDtypes) {
  TempDir dir;
  const auto conv = Iota(3 * 5 * 2 * 2), proj = Iota(20), dw = Iota(6 * 9), bias = Iota(5);
  CF_ASSERT_OK(WriteSafetensors(dir / "diffusion_pytorch_model.safetensors",
                                {{"conv.weight", FromDoubles(conv, Shape{3, 5, 2, 2}, DType::f32)},   // OIHW
                                 {"proj.weight", FromDoubles(proj, Shape{4, 5, 1, 1}, DType::bf16)},  // 1x1 conv
                                 {"dw.weight", FromDoubles(dw, Shape{6, 1, 3, 3}, DType::f16)},       // nn.Conv2d groups=C
                                 {"norm.bias", FromDoubles(bias, Shape{5}, DType::f32)}}));
  Graph g;
  Declare(&g);
  CF_ASSERT_OK_AND_ASSIGN(WeightFiles files, WeightFiles::Open(dir.path.string()));
  CF_ASSERT_OK_AND_ASSIGN(LoadedWeights w, LoadWeights(g, files));
  ASSERT_EQ(w.parameters.size(), 4u);
  std::map<std::string, Tensor> got(w.parameters.begin(), w.parameters.end());
  EXPECT_EQ(got["conv.weight"].shape(), (Shape{3, 2, 2, 5}));
  EXPECT_EQ(got["dw.weight"].dtype(), DType::f64);
  EXPECT_EQ(got["norm.bias"].dtype(), DType::f16);
  const auto c = ToDoubles(got["conv.weight"]);
  for (int64_t o = 0; o < 3; ++o)
    for (int64_t y = 0; y < 2; ++y)
      for (int64_t x = 0; x < 2; ++x)
        for (int64_t i = 0; i < 5; ++i)
          ASSERT_EQ(c[((o * 2 + y) * 2 + x) * 5 + i], conv[((o * 5 + i) * 2 + y) * 2 + x]);
  EXPECT_EQ(ToDoubles(got["proj.weight"]), proj);  // exact in bf16
  const auto d = ToDoubles(got["dw.weight"]);
  for (int64_t k = 0; k < 9; ++k)
    for (int64_t ch = 0; ch < 6; ++ch) ASSERT_EQ(d[k * 6 + ch], dw[ch * 9 + k]);
  EXPECT_NE(w.Summary().find("loaded 4 tensors"), std::string::npos) << w.Summary();
}

TEST(Weights, ReportsEveryMissingUnexpectedAndMisShapedKeyAtOnce) {
  TempDir dir;
  CF_ASSERT_OK(WriteSafetensors(dir / "model.safetensors",
                                {{"conv.weight", FromDoubles(Iota(60), Shape{3, 2, 2, 5}, DType::f32)},  // not OIHW
                                 {"proj.weight", FromDoubles(Iota(20), Shape{5, 4}, DType::f32)},        // transposed
                                 {"dw.weight", FromDoubles(Iota(54), Shape{3, 3, 6}, DType::f32)},
                                 {"extra.bias", FromDoubles(Iota(2), Shape{2}, DType::f32)}}));
  Graph g;
  Declare(&g);
  CF_ASSERT_OK_AND_ASSIGN(WeightFiles files, WeightFiles::Open(dir.path.string()));
  ExpectError(LoadWeights(g, files).status(),
              {"2 mis-shaped", "conv.weight: file F32[3, 2, 2, 5]", "expected [3, 5, 2, 2] (PyTorch's OIHW)",
               "proj.weight: file F32[5, 4]", "expected [4, 5] or [4, 5, 1, 1]", "1 missing", "norm.bias f16[5]",
               "1 unexpected", "extra.bias F32[2]", "model.safetensors"});
}

TEST(Weights, AllowedMissingAndUnexpectedKeysAreListed) {
  TempDir dir;
  CF_ASSERT_OK(WriteSafetensors(dir / "a.safetensors",
                                {{"unet.proj.weight", FromDoubles(Iota(20), Shape{4, 5}, DType::f32)},
                                 {"unet.attn1.to_q.weight", FromDoubles(Iota(4), Shape{2, 2}, DType::f32)}}));
  Graph g;
  Declare(&g);
  CF_ASSERT_OK_AND_ASSIGN(WeightFiles files, WeightFiles::Open(dir / "a.safetensors"));
  LoadWeightsOptions o;
  o.allow_missing = o.allow_unexpected = true;
  CF_ASSERT_OK_AND_ASSIGN(LoadedWeights w, LoadWeights(g, files, o));  // the file's keys carry "unet."
  EXPECT_EQ(w.parameters.size(), 0u);
  EXPECT_EQ(w.missing.size(), 4u);
  EXPECT_EQ(w.unexpected.size(), 2u);
}

TEST(Weights, ShardsAndLaterSourcesOverride) {
  TempDir dir;
  CF_ASSERT_OK(WriteSafetensors(dir / "s-1.safetensors", {{"proj.weight", FromDoubles(Iota(20), Shape{4, 5}, DType::f32)}}));
  CF_ASSERT_OK(WriteSafetensors(dir / "s-2.safetensors", {{"norm.bias", FromDoubles(Iota(5), Shape{5}, DType::f32)}}));
  std::ofstream(dir / "diffusion_pytorch_model.safetensors.index.json")
      << R"({"metadata": {}, "weight_map": {"proj.weight": "s-1.safetensors", "norm.bias": "s-2.safetensors"}})";
  CF_ASSERT_OK_AND_ASSIGN(WeightFiles files, WeightFiles::Open(dir.path.string()));
  EXPECT_EQ(files.files().size(), 2u);
  EXPECT_EQ(files.names(), (std::vector<std::string>{"norm.bias", "proj.weight"}));
  // A second source overrides key by key.
  fs::create_directories(dir.path / "over");
  CF_ASSERT_OK(WriteSafetensors(dir / "over/x.safetensors", {{"norm.bias", FromDoubles(std::vector<double>(5, 7.0), Shape{5}, DType::f32)}}));
  CF_ASSERT_OK_AND_ASSIGN(WeightFiles both, WeightFiles::Open(std::vector<std::string>{dir.path.string(), dir / "over"}));
  EXPECT_NE(both.FileOf("norm.bias").find("over/x.safetensors"), std::string::npos);
  EXPECT_NE(both.FileOf("proj.weight").find("s-1.safetensors"), std::string::npos);
  // Broken indexes name what is wrong.
  std::ofstream(dir / "bad.safetensors.index.json") << R"({"weight_map": {"a": "../etc/passwd"}})";
  ExpectError(WeightFiles::Open(dir / "bad.safetensors.index.json").status(), {"outside its folder"});
  std::ofstream(dir / "gone.safetensors.index.json") << R"({"weight_map": {"a": "nope.safetensors"}})";
  ExpectError(WeightFiles::Open(dir / "gone.safetensors.index.json").status(), {"nope.safetensors"});
  ExpectError(WeightFiles::Open(dir / "none").status(), {"does not exist"});
  // Two shards holding one key is an error within one source.
  CF_ASSERT_OK(WriteSafetensors(dir / "s-3.safetensors", {{"norm.bias", FromDoubles(Iota(5), Shape{5}, DType::f32)}}));
  std::ofstream(dir / "dup.safetensors.index.json")
      << R"({"weight_map": {"proj.weight": "s-1.safetensors", "x": "s-2.safetensors", "y": "s-3.safetensors"}})";
  ExpectError(WeightFiles::Open(dir / "dup.safetensors.index.json").status(), {"'norm.bias' is in both"});
}

}  // namespace
}  // namespace cf::testing
