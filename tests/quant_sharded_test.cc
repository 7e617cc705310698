// Sharded inference of quantized models: tensor- and pipeline-parallel runs (in-process
// groups) of GGUF and MLX models give the tokens and logits of one process. Splits fall
// on block / group boundaries, so every rank quantizes the same activation blocks.
#include <gtest/gtest.h>

#include <thread>

#include "comm/loopback.h"
#include "engine/executor.h"
#include "model/gguf_model.h"
#include "model/model.h"
#include "parallel/plan.h"
#include "test_util.h"

namespace meshlm {
namespace {

using testing::RelErr;

std::string Path(const std::string& name) {
  const char* b = std::getenv("MESHLM_BUILD_DIR");
  return std::string(b ? b : ".") + "/quantmodels/" + name;
}

struct Trace {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<std::vector<float>> logits;
};

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

Trace RunLocal(const std::string& path) {
  ThreadPool pool(1);
  auto m = model::Model::Load(path, {});
  EXPECT_TRUE(m.ok()) << m.status().message();
  auto ex = engine::Executor::CreateLocal(std::move(m).value(), pool);
  EXPECT_TRUE(ex.ok());
  Trace trace;
  const Status s = Drive(**ex, &trace);
  EXPECT_TRUE(s.ok()) << s.message();
  return trace;
}

Trace RunSharded(const std::string& path, size_t tp, size_t pp) {
  const size_t world = tp * pp;
  auto lw = comm::MakeLoopbackWorld(static_cast<int>(world));
  Trace trace;
  std::vector<Status> status(world);
  std::vector<std::thread> threads;
  for (size_t r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      status[r] = [&]() -> Status {
        ThreadPool pool(1);
        MESHLM_ASSIGN_OR_RETURN(auto config, model::LoadModelConfigOfPath(path));
        parallel::PlanRequest req;
        req.world_size = world;
        req.tp = tp;
        req.pp = pp;
        MESHLM_ASSIGN_OR_RETURN(auto plan, parallel::MakePlan(config, req));
        model::LoadOptions opt;
        opt.shard = plan.ranks[r].shard;
        MESHLM_ASSIGN_OR_RETURN(auto m, model::Model::Load(path, opt));
        MESHLM_ASSIGN_OR_RETURN(auto ex, engine::Executor::Create(*lw.groups[r], std::move(m),
                                                                  plan, pool));
        if (r != 0) return ex->RunWorker();
        const Status s = Drive(*ex, &trace);
        const Status stop = ex->Shutdown();
        return s.ok() ? stop : s;
      }();
      if (!status[r].ok()) lw.Kill(static_cast<int>(r));
    });
  }
  for (auto& t : threads) t.join();
  for (size_t r = 0; r < world; ++r) {
    EXPECT_TRUE(status[r].ok()) << "rank " << r << ": " << status[r].message();
  }
  return trace;
}

struct Layout {
  std::string model;
  size_t tp, pp;
};

class QuantShardedTest : public ::testing::TestWithParam<Layout> {};

TEST_P(QuantShardedTest, SameTokensAndLogitsAsOneProcess) {
  const Layout& l = GetParam();
  const Trace one = RunLocal(Path(l.model));
  const Trace many = RunSharded(Path(l.model), l.tp, l.pp);
  ASSERT_EQ(one.tokens.size(), many.tokens.size());
  for (size_t s = 0; s < one.tokens.size(); ++s) {
    EXPECT_EQ(one.tokens[s], many.tokens[s]) << "step " << s;
    ASSERT_FALSE(one.logits[s].empty()) << "step " << s;
    ASSERT_EQ(one.logits[s].size(), many.logits[s].size());
    EXPECT_LE(RelErr(many.logits[s], one.logits[s]), 1e-4) << "step " << s;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, QuantShardedTest,
    ::testing::Values(Layout{"small-qwen3-q4_0.gguf", 2, 1}, Layout{"small-qwen3-q4_0.gguf", 1, 2},
                      Layout{"small-qwen3-mlx4", 2, 1}, Layout{"small-llama-mlx8", 2, 2},
                      Layout{"tiny-llama-q8_0.gguf", 1, 2}),
    [](const auto& info) {
      std::string n = info.param.model + "_tp" + std::to_string(info.param.tp) + "_pp" +
                      std::to_string(info.param.pp);
      for (char& c : n) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
      return n;
    });

}  // namespace
}  // namespace meshlm
