// nn/diffusers_config.h: typed getters, defaults, required keys, the note of
// unknown keys, and errors that name the file and the key.
#include "nn/diffusers_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

constexpr char kConfig[] = R"({
  "_class_name": "UNet2DConditionModel",
  "_diffusers_version": "0.6.0",
  "block_out_channels": [320, 640, 1280, 1280],
  "attention_head_dim": 8,
  "norm_eps": 1e-05,
  "center_input_sample": false,
  "act_fn": "silu",
  "layers_per_block": 2.0,
  "class_embed_type": null,
  "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
  "down_blocks_conv1_kernel_sizes": [7, null, 5],
  "some_future_key": 3
})";

TEST(DiffusersConfig, TypedGettersDefaultsAndTheUnknownKeysNote) {
  CF_ASSERT_OK_AND_ASSIGN(DiffusersConfig c, DiffusersConfig::Parse(kConfig, "unet/config.json"));
  EXPECT_EQ(c.class_name(), "UNet2DConditionModel");
  CF_ASSERT_OK_AND_ASSIGN(auto ch, c.IntList("block_out_channels", -1));
  EXPECT_EQ(ch, (std::vector<int64_t>{320, 640, 1280, 1280}));
  CF_ASSERT_OK_AND_ASSIGN(auto heads, c.IntList("attention_head_dim", 4));
  EXPECT_EQ(heads, (std::vector<int64_t>{8, 8, 8, 8}));  // a scalar is repeated
  CF_ASSERT_OK_AND_ASSIGN(int64_t layers, c.Int("layers_per_block"));
  EXPECT_EQ(layers, 2);  // 2.0 is an integer
  CF_ASSERT_OK_AND_ASSIGN(double eps, c.Double("norm_eps", 1.0));
  EXPECT_EQ(eps, 1e-5);
  CF_ASSERT_OK_AND_ASSIGN(double missing, c.Double("norm_missing", 0.25));
  EXPECT_EQ(missing, 0.25);
  CF_ASSERT_OK_AND_ASSIGN(bool center, c.Bool("center_input_sample", true));
  EXPECT_FALSE(center);
  CF_ASSERT_OK_AND_ASSIGN(auto cls, c.OptionalString("class_embed_type"));
  EXPECT_FALSE(cls.has_value());  // null
  CF_ASSERT_OK_AND_ASSIGN(auto act, c.String("act_fn"));
  EXPECT_EQ(act, "silu");
  CF_ASSERT_OK_AND_ASSIGN(auto types, c.StringList("down_block_types"));
  EXPECT_EQ(types.size(), 2u);
  CF_ASSERT_OK_AND_ASSIGN(auto ks, c.IntList("down_blocks_conv1_kernel_sizes", 3));
  EXPECT_EQ(ks, (std::vector<int64_t>{7, 0, 5}));  // null reads as 0
  EXPECT_EQ(c.UnknownKeys(), (std::vector<std::string>{"some_future_key"}));
  EXPECT_NE(c.UnknownKeysNote().find("unet/config.json: ignored unknown keys some_future_key"), std::string::npos)
      << c.UnknownKeysNote();
  c.Accept({"some_future_key"});
  EXPECT_TRUE(c.UnknownKeys().empty());
}

TEST(DiffusersConfig, ErrorsNameTheFileAndTheKey) {
  CF_ASSERT_OK_AND_ASSIGN(DiffusersConfig c, DiffusersConfig::Parse(kConfig, "unet/config.json"));
  ExpectError(c.Int("in_channels").status(), {"unet/config.json", "required key 'in_channels' is missing"});
  ExpectError(c.Int("class_embed_type").status(), {"'class_embed_type'", "missing"});  // null is absent
  ExpectError(c.Int("act_fn").status(), {"'act_fn' must be an integer", "\"silu\""});
  ExpectError(c.Double("act_fn", 1.0).status(), {"'act_fn' must be a number"});
  ExpectError(c.IntList("block_out_channels", 3).status(), {"'block_out_channels' must have 3 entries"});
  ExpectError(c.StringList("block_out_channels").status(), {"a list of strings"});
  ExpectError(DiffusersConfig::Parse("{\"a\": ", "x.json").status(), {"x.json", "not valid JSON"});
  ExpectError(DiffusersConfig::Parse("[1, 2]", "x.json").status(), {"x.json", "not a JSON object"});
  ExpectError(DiffusersConfig::Load("/nonexistent/unet").status(), {"/nonexistent/unet/config.json"});
}

TEST(DiffusersConfig, LoadsAFolderOrAFile) {
  const auto dir = std::filesystem::temp_directory_path() / ("cf_config_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "config.json") << kConfig;
  CF_ASSERT_OK_AND_ASSIGN(DiffusersConfig a, DiffusersConfig::Load(dir.string()));
  CF_ASSERT_OK_AND_ASSIGN(DiffusersConfig b, DiffusersConfig::Load((dir / "config.json").string()));
  EXPECT_EQ(a.source(), b.source());
  DiffusersConfig copy = a;  // copies carry their own record of read keys
  CF_ASSERT_OK(copy.Int("layers_per_block").status());
  EXPECT_EQ(copy.UnknownKeys().size() + 1, a.UnknownKeys().size());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace cf::testing
