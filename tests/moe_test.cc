// Mixture-of-experts models: routing against a brute-force reference, config and tensor
// errors, and expert-parallel runs against one process.
#include "model/moe.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "model/config.h"
#include "model/model.h"
#include "sharded_util.h"
#include "test_util.h"

namespace meshlm {
namespace {

namespace fs = std::filesystem;
using testing::ModelsDir;

// Brute force: every expert's softmax probability in f64, experts ranked by it.
void RouteReference(const float* logits, size_t E, size_t K, bool norm, std::vector<int>* ids,
                    std::vector<double>* w) {
  double mx = -1e300, sum = 0;
  for (size_t e = 0; e < E; ++e) mx = std::max(mx, static_cast<double>(logits[e]));
  std::vector<double> p(E);
  for (size_t e = 0; e < E; ++e) sum += p[e] = std::exp(logits[e] - mx);
  std::vector<int> order(E);
  for (size_t e = 0; e < E; ++e) order[e] = static_cast<int>(e);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
  ids->assign(order.begin(), order.begin() + K);
  double top = 0;
  for (int e : *ids) top += p[e] / sum;
  w->clear();
  for (int e : *ids) w->push_back(norm ? p[e] / sum / top : p[e] / sum);
}

TEST(MoeRoute, MatchesBruteForce) {
  std::mt19937 rng(std::random_device{}());
  std::normal_distribution<float> nd(0.0f, 2.0f);
  for (const auto [E, K] : {std::pair<size_t, size_t>{8, 2}, {12, 4}, {128, 8}, {3, 3}}) {
    for (bool norm : {false, true}) {
      const size_t T = 9;
      std::vector<float> logits(T * E);
      for (float& v : logits) v = nd(rng);
      model::Routing r;
      model::Route(logits.data(), T, E, K, norm, &r);
      ASSERT_EQ(r.expert.size(), T * K);
      for (size_t t = 0; t < T; ++t) {
        std::vector<int> ids;
        std::vector<double> w;
        RouteReference(&logits[t * E], E, K, norm, &ids, &w);
        for (size_t j = 0; j < K; ++j) {
          EXPECT_EQ(r.expert[t * K + j], ids[j]) << "E=" << E << " t=" << t << " j=" << j;
          EXPECT_NEAR(r.weight[t * K + j], w[j], 1e-6) << "E=" << E << " t=" << t;
        }
      }
    }
  }
}

TEST(MoeRoute, TiesGoToTheLowerExpert) {
  const std::vector<float> logits = {1.0f, 3.0f, 3.0f, 0.5f, 3.0f};
  model::Routing r;
  model::Route(logits.data(), 1, 5, 2, true, &r);
  EXPECT_EQ(r.expert, (std::vector<int32_t>{1, 2}));
  EXPECT_NEAR(r.weight[0], 0.5f, 1e-7);
}

nlohmann::json Qwen3Moe() {
  return {{"architectures", {"Qwen3MoeForCausalLM"}},
          {"hidden_size", 2048},
          {"intermediate_size", 6144},
          {"num_hidden_layers", 4},
          {"num_attention_heads", 32},
          {"num_key_value_heads", 4},
          {"head_dim", 128},
          {"vocab_size", 151936},
          {"moe_intermediate_size", 768},
          {"num_experts", 128},
          {"num_experts_per_tok", 8},
          {"norm_topk_prob", true},
          {"decoder_sparse_step", 1},
          {"mlp_only_layers", {2}}};
}

TEST(MoeConfig, ParsesQwen3MoeAndMixtral) {
  auto c = model::ParseModelConfig(Qwen3Moe().dump(), "config.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->arch, model::Arch::kQwen3Moe);
  EXPECT_TRUE(c->qk_norm);
  EXPECT_EQ(c->num_experts, 128);
  EXPECT_EQ(c->num_experts_per_tok, 8);
  EXPECT_EQ(c->moe_intermediate_size, 768);
  EXPECT_EQ(c->moe_layers, (std::vector<bool>{true, true, false, true}));
  auto j = Qwen3Moe();
  j["decoder_sparse_step"] = 2;
  j["mlp_only_layers"] = nlohmann::json::array();
  c = model::ParseModelConfig(j.dump(), "config.json");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->moe_layers, (std::vector<bool>{false, true, false, true}));

  nlohmann::json m = {{"architectures", {"MixtralForCausalLM"}},
                      {"hidden_size", 4096},
                      {"intermediate_size", 14336},
                      {"num_hidden_layers", 2},
                      {"num_attention_heads", 32},
                      {"num_key_value_heads", 8},
                      {"vocab_size", 32000},
                      {"num_local_experts", 8},
                      {"num_experts_per_tok", 2}};
  c = model::ParseModelConfig(m.dump(), "config.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->arch, model::Arch::kMixtral);
  EXPECT_EQ(c->moe_intermediate_size, 14336);
  EXPECT_TRUE(c->norm_topk_prob);
  EXPECT_EQ(c->moe_layers, (std::vector<bool>{true, true}));
}

TEST(MoeConfig, ErrorsNameTheField) {
  struct Case {
    std::function<void(nlohmann::json&)> edit;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {[](auto& j) { j.erase("num_experts"); }, "missing field 'num_experts'"},
      {[](auto& j) { j.erase("moe_intermediate_size"); }, "'moe_intermediate_size'"},
      {[](auto& j) { j["num_experts_per_tok"] = 200; }, "num_experts_per_tok=200"},
      {[](auto& j) { j["num_experts_per_tok"] = 0; }, "num_experts_per_tok=0"},
      {[](auto& j) { j["mlp_only_layers"] = {7}; }, "mlp_only_layers entry 7"},
      {[](auto& j) { j["norm_topk_prob"] = "yes"; }, "norm_topk_prob"},
      {[](auto& j) { j["decoder_sparse_step"] = 0; }, "decoder_sparse_step"},
  };
  for (const auto& cs : cases) {
    auto j = Qwen3Moe();
    cs.edit(j);
    auto c = model::ParseModelConfig(j.dump(), "dir/config.json");
    ASSERT_FALSE(c.ok()) << cs.expect;
    EXPECT_NE(c.status().message().find(cs.expect), std::string::npos) << c.status().message();
    EXPECT_NE(c.status().message().find("dir/config.json"), std::string::npos);
  }
}

TEST(MoeConfig, ExpertParallelMustDivideTheExperts) {
  auto c = model::ParseModelConfig(Qwen3Moe().dump(), "config.json");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(model::CheckExpertParallel(*c, 4).ok());
  const Status s = model::CheckExpertParallel(*c, 3);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("num_experts=128 is not divisible by ep=3"), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("valid ep: 1, 2, 4, 8, 16"), std::string::npos) << s.message();
}

// A copy of a tiny MoE model with one thing spoiled.
class BrokenMoeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("meshlm_moe_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::copy(ModelsDir() + "/tiny-qwen3moe-f32", dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void EditConfig(const std::function<void(nlohmann::json&)>& edit) {
    std::ifstream in(dir_ / "config.json");
    auto j = nlohmann::json::parse(in);
    edit(j);
    std::ofstream(dir_ / "config.json") << j.dump();
  }
  std::string LoadError(size_t ep = 1) {
    model::LoadOptions opt;
    opt.shard.ep_size = ep;
    auto m = model::Model::Load(dir_.string(), opt);
    EXPECT_FALSE(m.ok());
    return m.ok() ? "" : m.status().message();
  }
  fs::path dir_;
};

TEST_F(BrokenMoeTest, ExpertCountDisagreesWithTensors) {
  EditConfig([](auto& j) { j["num_experts"] = 16; });
  std::string e = LoadError();
  EXPECT_NE(e.find("mlp.gate.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[16, 64]"), std::string::npos) << e;
  // Fewer experts in the config than in the files: the extra expert is named.
  fs::remove_all(dir_);
  SetUp();
  EditConfig([](auto& j) { j["num_experts"] = 8; });
  e = LoadError();
  EXPECT_NE(e.find("mlp.gate.weight"), std::string::npos) << e;
}

TEST_F(BrokenMoeTest, MissingExpertTensor) {
  // Rename one expert's tensor in the header (same length, so offsets stay valid).
  const fs::path file = dir_ / "model.safetensors";
  std::ifstream in(file, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  in.close();
  const std::string name = "model.layers.2.mlp.experts.7.up_proj.weight";
  const size_t at = bytes.find(name);
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, name.size(), "model.layers.2.mlp.experts.7.uq_proj.weight");
  std::ofstream(file, std::ios::binary) << bytes;
  const std::string e = LoadError();
  EXPECT_NE(e.find(name), std::string::npos) << e;
}

TEST_F(BrokenMoeTest, TopKBeyondExperts) {
  EditConfig([](auto& j) { j["num_experts_per_tok"] = 13; });
  const std::string e = LoadError();
  EXPECT_NE(e.find("num_experts_per_tok=13"), std::string::npos) << e;
}

TEST_F(BrokenMoeTest, ExpertParallelThatDoesNotDivide) {
  const std::string e = LoadError(5);
  EXPECT_NE(e.find("num_experts=12 is not divisible by ep=5"), std::string::npos) << e;
}

}  // namespace
}  // namespace meshlm
