// Tests for config.json parsing and RoPE frequencies.
#include "model/config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

namespace meshlm::model {
namespace {

nlohmann::json Qwen3() {
  return {{"architectures", {"Qwen3ForCausalLM"}},
          {"hidden_size", 1024},
          {"intermediate_size", 3072},
          {"num_hidden_layers", 28},
          {"num_attention_heads", 16},
          {"num_key_value_heads", 8},
          {"head_dim", 128},
          {"vocab_size", 151936},
          {"rope_theta", 1000000.0},
          {"rms_norm_eps", 1e-6},
          {"tie_word_embeddings", true},
          {"max_position_embeddings", 40960},
          {"eos_token_id", 151645}};
}

TEST(Config, ParsesQwen3) {
  auto c = ParseModelConfig(Qwen3().dump(), "config.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->arch, Arch::kQwen3);
  EXPECT_TRUE(c->qk_norm);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->num_heads_kv, 8);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->eos_token_ids, std::vector<int32_t>{151645});
  EXPECT_FLOAT_EQ(c->rope_theta, 1e6f);
}

TEST(Config, HeadDimDefaultsToHiddenOverHeads) {
  auto j = Qwen3();
  j.erase("head_dim");
  j["architectures"] = {"LlamaForCausalLM"};
  j["eos_token_id"] = {128001, 128008, 128009};
  auto c = ParseModelConfig(j.dump(), "config.json");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->eos_token_ids.size(), 3u);
}

TEST(Config, ErrorsNameTheField) {
  struct Case {
    std::function<void(nlohmann::json&)> edit;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {[](auto& j) { j["architectures"] = {"GPTNeoXForCausalLM"}; }, "GPTNeoXForCausalLM"},
      {[](auto& j) { j.erase("hidden_size"); }, "missing field 'hidden_size'"},
      {[](auto& j) { j["num_key_value_heads"] = 5; }, "num_key_value_heads=5"},
      {[](auto& j) { j["vocab_size"] = "big"; }, "'vocab_size' must be an integer"},
      {[](auto& j) {
         j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4}};
       },
       "yarn"},
      {[](auto& j) { j["eos_token_id"] = "x"; }, "eos_token_id"},
  };
  for (const auto& cs : cases) {
    auto j = Qwen3();
    cs.edit(j);
    auto c = ParseModelConfig(j.dump(), "dir/config.json");
    ASSERT_FALSE(c.ok()) << cs.expect;
    EXPECT_NE(c.status().message().find(cs.expect), std::string::npos) << c.status().message();
    EXPECT_NE(c.status().message().find("dir/config.json"), std::string::npos);
  }
  EXPECT_FALSE(ParseModelConfig("{not json", "c.json").ok());
  EXPECT_FALSE(ParseModelConfig("[1,2]", "c.json").ok());
}

TEST(Config, Llama3RopeScalingMatchesDefinition) {
  auto j = Qwen3();
  j["architectures"] = {"LlamaForCausalLM"};
  j["head_dim"] = 64;
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 32.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  auto c = ParseModelConfig(j.dump(), "config.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  const auto inv = RopeInvFreq(*c);
  ASSERT_EQ(inv.size(), 32u);
  for (int i = 0; i < 32; ++i) {
    const double base = std::pow(500000.0, -2.0 * i / 64);
    const double wavelen = 2 * M_PI / base;
    double expect = base;
    if (wavelen > 8192.0) {
      expect = base / 32;
    } else if (wavelen >= 8192.0 / 4) {
      const double s = (8192.0 / wavelen - 1) / 3;
      expect = (1 - s) * base / 32 + s * base;
    }
    EXPECT_NEAR(inv[i], expect, 1e-5 * expect) << i;
  }
  EXPECT_LT(inv[31], inv[0] / 1000);  // the slowest frequencies were scaled down
}

}  // namespace
}  // namespace meshlm::model
