// Sharded inference: tensor- and pipeline-parallel runs of the Executor on in-process
// groups give the same tokens and logits as one process.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "comm/loopback.h"
#include "engine/executor.h"
#include "model/model.h"
#include "parallel/plan.h"
#include "sharded_util.h"
#include "test_util.h"

namespace meshlm {
namespace {

using testing::ModelsDir;
using testing::RelErr;

using testing::Trace;

// Two sequences: A prefills, then B joins while A decodes, then both decode greedily;
// the last step samples A with a temperature (the full-row path).
Status Drive(engine::Executor& ex, Trace* trace) {
  engine::SeqWork a;
  a.id = 10;
  a.start = true;
  a.tokens = {3, 17, 42, 5, 99, 123, 7};
  std::vector<float> logits;
  MESHLM_ASSIGN_OR_RETURN(auto t, ex.Step({a}, &logits));
  trace->tokens.push_back(t);
  trace->logits.push_back(logits);
  int32_t next_a = t[0], next_b = 0;
  engine::SeqWork b;
  b.id = 11;
  b.start = true;
  b.tokens = {250, 1, 64};
  for (int step = 0; step < 4; ++step) {
    engine::SeqWork wa;
    wa.id = 10;
    wa.tokens = {next_a};
    std::vector<engine::SeqWork> work = {wa};
    if (step == 0) {
      work.push_back(b);
    } else {
      engine::SeqWork wb;
      wb.id = 11;
      wb.tokens = {next_b};
      work.push_back(wb);
    }
    MESHLM_ASSIGN_OR_RETURN(t, ex.Step(work, &logits));
    trace->tokens.push_back(t);
    trace->logits.push_back(logits);
    next_a = t[0];
    next_b = t[1];
  }
  engine::SeqWork c;
  c.id = 12;
  c.start = true;
  c.params.temperature = 0.9f;
  c.params.top_k = 20;
  c.params.seed = 99;
  c.tokens = {5, 6, 7};
  engine::SeqWork end_a, end_b;
  end_a.id = 10;
  end_a.release = true;
  end_b.id = 11;
  end_b.release = true;
  MESHLM_ASSIGN_OR_RETURN(t, ex.Step({end_a, c, end_b}));
  trace->tokens.push_back(t);
  return OkStatus();
}

struct Layout {
  std::string model;
  size_t tp, pp, ep = 1;
};
void PrintTo(const Layout& l, std::ostream* os) {
  *os << l.model << " tp" << l.tp << " pp" << l.pp << " ep" << l.ep;
}

class ShardedTest : public ::testing::TestWithParam<Layout> {};

TEST_P(ShardedTest, SameTokensAndLogitsAsOneProcess) {
  const Layout& l = GetParam();
  const std::string dir = ModelsDir() + "/" + l.model;
  const Trace one = testing::RunLocal(dir, Drive);
  const Trace many = testing::RunSharded(dir, l.tp, l.pp, Drive, l.ep);
  ASSERT_EQ(one.tokens.size(), many.tokens.size());
  for (size_t s = 0; s < one.tokens.size(); ++s) {
    EXPECT_EQ(one.tokens[s], many.tokens[s]) << "step " << s;
  }
  ASSERT_EQ(one.logits.size(), many.logits.size());
  for (size_t s = 0; s < one.logits.size(); ++s) {
    ASSERT_EQ(one.logits[s].size(), many.logits[s].size());
    EXPECT_LE(RelErr(many.logits[s], one.logits[s]), 1e-4) << "step " << s;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, ShardedTest,
    ::testing::Values(Layout{"tiny-llama-deep-f32", 2, 1}, Layout{"tiny-llama-deep-f32", 4, 1},
                      Layout{"tiny-llama-deep-f32", 1, 2}, Layout{"tiny-llama-deep-f32", 1, 3},
                      Layout{"tiny-llama-deep-f32", 2, 2}, Layout{"tiny-qwen3-deep-f32", 2, 1},
                      Layout{"tiny-qwen3-deep-f32", 4, 1}, Layout{"tiny-qwen3-deep-f32", 1, 2},
                      Layout{"tiny-qwen3-deep-f32", 1, 3}, Layout{"tiny-qwen3-deep-f32", 2, 2},
                      Layout{"tiny-qwen2-f32", 2, 1},
                      // Mixtures of experts: 12 experts (a dense layer between sparse ones)
                      // and 4 experts.
                      Layout{"tiny-qwen3moe-f32", 1, 1, 2}, Layout{"tiny-qwen3moe-f32", 1, 1, 3},
                      Layout{"tiny-qwen3moe-f32", 1, 1, 4}, Layout{"tiny-qwen3moe-f32", 2, 1, 1},
                      Layout{"tiny-qwen3moe-f32", 2, 1, 2}, Layout{"tiny-qwen3moe-f32", 1, 2, 1},
                      Layout{"tiny-qwen3moe-f32", 1, 3, 2}, Layout{"tiny-qwen3moe-f32", 2, 2, 2},
                      Layout{"tiny-mixtral-f32", 1, 1, 2}, Layout{"tiny-mixtral-f32", 1, 1, 4},
                      Layout{"tiny-mixtral-f32", 2, 1, 2}, Layout{"tiny-mixtral-f32", 1, 2, 2}),
    [](const auto& info) {
      std::string n = info.param.model + "_tp" + std::to_string(info.param.tp) + "_pp" +
                      std::to_string(info.param.pp) +
                      (info.param.ep > 1 ? "_ep" + std::to_string(info.param.ep) : "");
      for (char& c : n) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
      return n;
    });

TEST(Sharded, UnevenTpIsRefusedBeforeLoading) {
  auto config = model::LoadModelConfig(ModelsDir() + "/tiny-qwen3-deep-f32");
  ASSERT_TRUE(config.ok());
  parallel::PlanRequest req;
  req.world_size = 3;
  auto plan = parallel::MakePlan(*config, req);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("valid tp: 1, 2, 4"), std::string::npos)
      << plan.status().message();
}

TEST(Sharded, ShardReadsOnlyItsSlices) {
  model::LoadOptions whole, half;
  half.shard.tp_size = 2;
  half.shard.tp_rank = 1;
  auto a = model::Model::Load(ModelsDir() + "/tiny-qwen3-deep-f32", whole);
  auto b = model::Model::Load(ModelsDir() + "/tiny-qwen3-deep-f32", half);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*b)->vocab_range().begin, 150u);
  EXPECT_LT((*b)->weight_bytes(), (*a)->weight_bytes() * 0.6);
}

TEST(Sharded, ExpertGroupsSplitAttentionWhenTheHeadsDivide) {
  const std::string dir = ModelsDir() + "/tiny-qwen3moe-f32";
  auto config = model::LoadModelConfig(dir);
  ASSERT_TRUE(config.ok());
  parallel::PlanRequest req;
  req.world_size = 2;
  req.ep = 2;
  // 4 heads and 2 KV heads over 2 ranks: each expert group holds half of attention too.
  auto two = parallel::MakePlan(*config, req);
  ASSERT_TRUE(two.ok()) << two.status().message();
  EXPECT_TRUE(two->dense_over_stage);
  model::LoadOptions whole, half;
  half.shard = two->ranks[1].shard;
  auto a = model::Model::Load(dir, whole);
  auto b = model::Model::Load(dir, half);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*b)->vocab_range().begin, 150u);
  EXPECT_LT((*b)->weight_bytes(), (*a)->weight_bytes() * 0.6);
  // 2 KV heads cannot split 4 ways: the 4 expert groups each repeat all of attention.
  req.world_size = 4;
  req.ep = 4;
  auto four = parallel::MakePlan(*config, req);
  ASSERT_TRUE(four.ok()) << four.status().message();
  EXPECT_FALSE(four->dense_over_stage);
  EXPECT_EQ(four->ranks[3].shard.dense_size(), 1u);
}

}  // namespace
}  // namespace meshlm
