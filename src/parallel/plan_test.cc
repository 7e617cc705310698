// Tests for shard planning.
#include "parallel/plan.h"

#include <gtest/gtest.h>

namespace meshlm::parallel {
namespace {

model::ModelConfig Qwen3() {
  model::ModelConfig c;
  c.hidden_size = 1024;
  c.intermediate_size = 3072;
  c.num_layers = 28;
  c.num_heads = 16;
  c.num_heads_kv = 8;
  c.head_dim = 128;
  c.vocab_size = 151936;
  c.max_position_embeddings = 40960;
  return c;
}

TEST(Plan, TensorParallelSplitsHeadsAndRefusesBadTp) {
  PlanRequest req;
  req.world_size = 2;
  auto p = MakePlan(Qwen3(), req);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->tp, 2u);
  EXPECT_EQ(p->pp, 1u);
  ASSERT_EQ(p->ranks.size(), 2u);
  EXPECT_EQ(p->ranks[1].shard.tp_rank, 1u);
  EXPECT_TRUE(p->ranks[1].shard.first_stage && p->ranks[1].shard.last_stage);

  req.world_size = 3;
  auto bad = MakePlan(Qwen3(), req);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "[plan] num_heads_kv=8 is not divisible by tp=3; valid tp: 1, 2, 4, 8");
}

TEST(Plan, PipelineSplitsLayersEvenlyOrAsAsked) {
  PlanRequest req;
  req.world_size = 3;
  req.pp = 3;
  auto p = MakePlan(Qwen3(), req);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->ranks[0].shard.layer_end - p->ranks[0].shard.layer_begin, 10u);
  EXPECT_EQ(p->ranks[1].shard.layer_begin, 10u);
  EXPECT_EQ(p->ranks[2].shard.layer_end, 28u);
  EXPECT_TRUE(p->ranks[0].shard.first_stage);
  EXPECT_FALSE(p->ranks[0].shard.last_stage);
  EXPECT_TRUE(p->ranks[2].shard.last_stage);
  // Only the last stage pays for the LM head.
  EXPECT_GT(p->ranks[2].weight_bytes, p->ranks[1].weight_bytes);

  req.layers = {20, 8, 0};
  EXPECT_FALSE(MakePlan(Qwen3(), req).ok());
  req.layers = {20, 4, 4};
  p = MakePlan(Qwen3(), req);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->ranks[1].shard.layer_begin, 20u);
}

TEST(Plan, MemoryProportionalAndRefusesWhatDoesNotFit) {
  PlanRequest req;
  req.world_size = 4;
  req.tp = 2;
  req.pp = 2;
  req.context = 4096;
  const size_t gib = size_t{1} << 30;
  req.memory = {3 * gib, 3 * gib, 1 * gib, 1 * gib};
  auto p = MakePlan(Qwen3(), req);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->ranks[2].shard.layer_begin, 21u);  // 3:1 of 28 layers
  EXPECT_EQ(p->ranks[3].shard.tp_rank, 1u);
  req.memory = {gib / 8, gib / 8, gib / 8, gib / 8};
  auto bad = MakePlan(Qwen3(), req);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("rank 0 needs"), std::string::npos) << bad.status().message();
  req.memory.clear();
  req.tp = 3;
  req.pp = 2;
  EXPECT_NE(MakePlan(Qwen3(), req).status().message().find("6 ranks, but the job has 4"),
            std::string::npos);
}

TEST(Plan, KvCacheGrowsWithContextAndShrinksWithTp) {
  PlanRequest req;
  req.world_size = 1;
  req.context = 1000;
  auto one = MakePlan(Qwen3(), req);
  req.world_size = 2;
  auto two = MakePlan(Qwen3(), req);
  ASSERT_TRUE(one.ok() && two.ok());
  EXPECT_EQ(one->ranks[0].kv_bytes, 28u * 2 * 8 * 128 * 4 * 1000);
  EXPECT_EQ(two->ranks[0].kv_bytes * 2, one->ranks[0].kv_bytes);
  EXPECT_NE(FormatPlan(Qwen3(), *two).find("tp=2"), std::string::npos);
}

}  // namespace
}  // namespace meshlm::parallel
