// Tests for shard planning.
#include "parallel/plan.h"

#include <fmt/format.h>
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
  EXPECT_NE(bad.status().message().find("rank 0 needs"), std::string::npos)
      << bad.status().message();
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

// Qwen3-235B-A22B's config.json numbers.
model::ModelConfig Qwen3_235B() {
  model::ModelConfig c;
  c.arch = model::Arch::kQwen3Moe;
  c.hidden_size = 4096;
  c.intermediate_size = 12288;
  c.num_layers = 94;
  c.num_heads = 64;
  c.num_heads_kv = 4;
  c.head_dim = 128;
  c.vocab_size = 151936;
  c.max_position_embeddings = 40960;
  c.num_experts = 128;
  c.num_experts_per_tok = 8;
  c.moe_intermediate_size = 1536;
  c.moe_layers.assign(94, true);
  return c;
}

TEST(Plan, ExpertParallelSplitsExpertsAndMemory) {
  PlanRequest req;
  req.world_size = 4;
  req.ep = 4;
  req.context = 8192;
  // Column slices of the output projection must hold whole blocks of the stored weights:
  // 4 heads of 128 over 4 ranks is 128 columns, less than one 256-weight K-quant block.
  model::ModelConfig narrow = Qwen3_235B();
  narrow.num_heads = 4;
  narrow.column_unit = 256;
  auto p = MakePlan(narrow, req);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_FALSE(p->dense_over_stage);
  narrow.column_unit = 32;
  EXPECT_TRUE(MakePlan(narrow, req)->dense_over_stage);
  p = MakePlan(Qwen3_235B(), req);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->ep, 4u);
  EXPECT_EQ(p->tp, 1u);
  EXPECT_EQ(p->ranks[3].shard.ep_rank, 3u);
  EXPECT_EQ(p->ranks[3].shard.ep_size, 4u);
  // 4 KV heads divide by 4 ranks: each rank holds a quarter of attention (16 heads, 1 KV
  // head), the routers, 32 experts of every layer and a quarter of the LM head.
  EXPECT_TRUE(p->dense_over_stage);
  EXPECT_EQ(p->ranks[3].shard.dense_rank(), 3u);
  const double D = 4096, experts = 32 * 3.0 * D * 1536;
  const double attn = D * 64 * 128 * 2 + D * 4 * 128 * 2;
  const double expect = 94 * (attn / 4 + D * 128 + experts) + 151936 * D / 4;
  EXPECT_NEAR(p->ranks[0].weight_bytes, 2 * expect, 1e6);
  // One KV head per rank: 2 (K, V) x 128 x 4 bytes x 94 layers x 8192 positions.
  EXPECT_EQ(p->ranks[3].kv_bytes, size_t{2} * 128 * 4 * 94 * 8192);
  std::string table = FormatPlan(Qwen3_235B(), *p);
  EXPECT_NE(table.find("ep=4"), std::string::npos) << table;
  EXPECT_NE(table.find("96-127"), std::string::npos) << table;  // rank 3's experts
  EXPECT_NE(table.find("48-63"), std::string::npos) << table;   // and heads
  EXPECT_NE(table.find("split over each stage's 4 ranks"), std::string::npos) << table;
  // 8 ranks cannot split 4 KV heads: each of the 8 expert groups repeats attention.
  req.world_size = 8;
  req.ep = 8;
  p = MakePlan(Qwen3_235B(), req);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_FALSE(p->dense_over_stage);
  const double expect8 = 94 * (attn + D * 128 + experts / 2) + 151936 * D;
  EXPECT_NEAR(p->ranks[7].weight_bytes, 2 * expect8, 1e6);
  table = FormatPlan(Qwen3_235B(), *p);
  EXPECT_NE(table.find("repeated in each of the 8 expert groups"), std::string::npos) << table;
  req.world_size = 4;
  // tp within expert groups: tp=2 x ep=2, experts' widths halved.
  req.tp = 2;
  req.ep = 2;
  p = MakePlan(Qwen3_235B(), req);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->ranks[1].shard.tp_rank, 1u);
  EXPECT_EQ(p->ranks[1].shard.ep_rank, 0u);
  EXPECT_EQ(p->ranks[2].shard.ep_rank, 1u);
  req.tp = 0;
  req.ep = 3;
  EXPECT_NE(MakePlan(Qwen3_235B(), req).status().message().find("not divisible by ep=3"),
            std::string::npos);
  req.ep = 8;
  EXPECT_NE(MakePlan(Qwen3_235B(), req).status().message().find("x ep=8 = 8 ranks"),
            std::string::npos);
}

TEST(Plan, MoeThatDoesNotFitNamesWhatWould) {
  // Four hosts of 192, 192, 128 and 64 GiB; the model in bf16 is ~470 GB.
  const size_t gib = size_t{1} << 30;
  PlanRequest req;
  req.world_size = 4;
  req.ep = 4;
  req.context = 8192;
  req.memory = {192 * gib, 192 * gib, 128 * gib, 64 * gib};
  auto bad = MakePlan(Qwen3_235B(), req);
  ASSERT_FALSE(bad.ok());
  const std::string e = bad.status().message();
  EXPECT_NE(e.find("rank 3 needs"), std::string::npos) << e;
  // Pipeline stages sized by memory fit where an even expert split cannot.
  EXPECT_NE(e.find("tp=1 pp=4 ep=1"), std::string::npos) << e;
  req.pp = 4;
  req.ep = 1;
  auto p = MakePlan(Qwen3_235B(), req);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_GT(p->ranks[0].shard.layer_end, 94u / 4);  // more layers on the bigger hosts
  // At 4.5 bits per weight the even expert split fits too.
  req.pp = 0;
  req.ep = 4;
  req.weight_bytes_per_element = 0.5625;
  EXPECT_TRUE(MakePlan(Qwen3_235B(), req).ok());
  // Nothing fits in 4 x 32 GiB of bf16.
  req.weight_bytes_per_element = 2;
  req.memory.assign(4, 32 * gib);
  bad = MakePlan(Qwen3_235B(), req);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("No split of these 4 ranks fits"), std::string::npos)
      << bad.status().message();
}

}  // namespace
}  // namespace meshlm::parallel

namespace meshlm::parallel {
namespace {

// Qwen3-0.6B has 596,049,920 parameters (tied embeddings); less its norms (two of width
// 1024 and two of 128 per layer, and the final one) that is its matrices' elements.
TEST(Plan, WeightElementsCountsTheMatrices) {
  model::ModelConfig c = Qwen3();
  c.tie_word_embeddings = true;
  const double norms = 28 * (2 * 1024 + 2 * 128) + 1024;
  EXPECT_DOUBLE_EQ(WeightElements(c), 596049920.0 - norms);
  c.tie_word_embeddings = false;
  EXPECT_DOUBLE_EQ(WeightElements(c), 596049920.0 - norms + 151936.0 * 1024);
}

// Without --tp/--pp, ranks on several TCP-joined hosts get one stage per host, and the
// plan says why; over fast links, with ranks of a host not consecutive, with --ep or with
// an explicit layout, tensor parallelism stays the default.
TEST(Plan, PrefersAStagePerHostOverTcp) {
  PlanRequest req;
  req.world_size = 4;
  req.host_of = {0, 0, 2, 2};
  auto p = MakePlan(Qwen3(), req);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->pp, 2u);
  EXPECT_EQ(p->tp, 2u);
  EXPECT_NE(p->why.find("joined by TCP"), std::string::npos) << p->why;
  EXPECT_EQ(p->ranks[2].shard.layer_begin, 14u);

  req.host_of = {0, 1, 2, 3};
  p = MakePlan(Qwen3(), req);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->pp, 4u);
  EXPECT_EQ(p->tp, 1u);

  auto tp_everywhere = [&](PlanRequest r, const char* what) {
    auto q = MakePlan(Qwen3(), r);
    ASSERT_TRUE(q.ok()) << what << ": " << q.status().message();
    EXPECT_EQ(q->pp, 1u) << what;
    EXPECT_EQ(q->tp, 4u) << what;
    EXPECT_EQ(q->why, "") << what;
  };
  PlanRequest fast = req;
  fast.fast_links = true;
  tp_everywhere(fast, "fast links");
  PlanRequest interleaved = req;
  interleaved.host_of = {0, 1, 0, 1};
  tp_everywhere(interleaved, "a host's ranks not consecutive");
  PlanRequest one_host = req;
  one_host.host_of = {0, 0, 0, 0};
  tp_everywhere(one_host, "one host");
  PlanRequest asked = req;
  asked.tp = 4;
  tp_everywhere(asked, "--tp 4");
}

// With memory per rank, the table shows each rank's memory and headroom (memory less
// weights and KV cache) and a line naming the tightest rank.
TEST(Plan, FormatShowsHeadroomPerRank) {
  PlanRequest req;
  req.world_size = 2;
  req.pp = 2;
  req.memory = {size_t{8} << 30, size_t{6} << 30};
  req.context = 4096;
  auto p = MakePlan(Qwen3(), req);
  ASSERT_TRUE(p.ok()) << p.status().message();
  const std::string text = FormatPlan(Qwen3(), *p, req.memory);
  EXPECT_NE(text.find("headroom"), std::string::npos) << text;
  size_t tight = 0;
  double least = 1e30;
  for (size_t i = 0; i < 2; ++i) {
    const double room = static_cast<double>(req.memory[i]) - p->ranks[i].total_bytes();
    const std::string cell = fmt::format("{:.1f} MiB", room / 1048576.0);
    EXPECT_NE(text.find(cell), std::string::npos) << cell << "\n" << text;
    if (room < least) least = room, tight = i;
  }
  EXPECT_NE(text.find(fmt::format("fits: every rank keeps at least {:.1f} MiB free (rank {} is "
                                  "the tightest",
                                  least / 1048576.0, tight)),
            std::string::npos)
      << text;
  EXPECT_EQ(FormatPlan(Qwen3(), *p).find("headroom"), std::string::npos);
}

}  // namespace
}  // namespace meshlm::parallel
