// Sharded inference of quantized models: tensor- and pipeline-parallel runs (in-process
// groups) of GGUF and MLX models give the tokens of one process, and its logits to within
// the activations' int8 rounding. Splits fall on block / group boundaries, so every rank
// quantizes the same activation blocks.
#include <gtest/gtest.h>

#include "comm/loopback.h"
#include "engine/executor.h"
#include "model/gguf_model.h"
#include "model/model.h"
#include "parallel/plan.h"
#include "sharded_util.h"
#include "test_util.h"

namespace meshlm {
namespace {

using testing::RelErr;

std::string Path(const std::string& name) {
  const char* b = std::getenv("MESHLM_BUILD_DIR");
  return std::string(b ? b : ".") + "/quantmodels/" + name;
}

using testing::Trace;

// A prefill, then greedy decode steps.
Status Drive(engine::Executor& ex, Trace* trace) {
  engine::SeqWork a;
  a.id = 1;
  a.start = true;
  a.tokens = {3, 17, 42, 5, 99, 123, 7};
  for (int step = 0; step < 5; ++step) {
    std::vector<float> logits;
    MESHLM_ASSIGN_OR_RETURN(auto t, ex.Step({a}, &logits));
    trace->tokens.push_back(t);
    trace->logits.push_back(logits);
    a.start = false;
    a.tokens = {t[0]};
  }
  return OkStatus();
}

struct Layout {
  std::string model;
  size_t tp, pp, ep = 1;
};

class QuantShardedTest : public ::testing::TestWithParam<Layout> {};

TEST_P(QuantShardedTest, SameTokensAndLogitsAsOneProcess) {
  const Layout& l = GetParam();
  const Trace one = testing::RunLocal(Path(l.model), Drive);
  const Trace many = testing::RunSharded(Path(l.model), l.tp, l.pp, Drive, l.ep);
  ASSERT_EQ(one.tokens.size(), many.tokens.size());
  for (size_t s = 0; s < one.tokens.size(); ++s) {
    EXPECT_EQ(one.tokens[s], many.tokens[s]) << "step " << s;
    ASSERT_FALSE(one.logits[s].empty()) << "step " << s;
    ASSERT_EQ(one.logits[s].size(), many.logits[s].size());
    // The integer dot products are exact, but partial sums added in another order (the
    // all-sum of tp shards) can move an activation across an int8 rounding step, which
    // shifts the next matmul by one step of that block: a fraction of a percent.
    EXPECT_LE(RelErr(many.logits[s], one.logits[s]), 1e-2) << "step " << s;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, QuantShardedTest,
    ::testing::Values(Layout{"small-qwen3-q4_0.gguf", 2, 1}, Layout{"small-qwen3-q4_0.gguf", 1, 2},
                      Layout{"small-qwen3-mlx4", 2, 1}, Layout{"small-llama-mlx8", 2, 2},
                      Layout{"tiny-llama-q8_0.gguf", 1, 2},
                      // Expert-parallel shards of stacked (GGUF) and switch_mlp (MLX) experts.
                      Layout{"small-qwen3moe-q4_k.gguf", 1, 1, 2},
                      Layout{"small-qwen3moe-f16.gguf", 2, 1, 2},
                      Layout{"tiny-qwen3moe-q8_0.gguf", 1, 1, 3},
                      Layout{"tiny-mixtral-q4_0.gguf", 1, 2, 2},
                      Layout{"tiny-qwen3moe-mlx4", 1, 2, 2},
                      // Files written by llama.cpp's gguf-py.
                      Layout{"tiny-qwen3moe-gguf_py-q8_0.gguf", 1, 1, 3},
                      Layout{"tiny-mixtral-gguf_py-q4_0.gguf", 1, 2, 2}),
    [](const auto& info) {
      std::string n = info.param.model + "_tp" + std::to_string(info.param.tp) + "_pp" +
                      std::to_string(info.param.pp) +
                      (info.param.ep > 1 ? "_ep" + std::to_string(info.param.ep) : "");
      for (char& c : n) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
      return n;
    });

}  // namespace
}  // namespace meshlm
