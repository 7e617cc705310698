// Runs a driver against one process and against an in-process tp x pp job of the same
// model, recording the tokens and logits of every step, for sharding tests.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "comm/loopback.h"
#include "engine/executor.h"
#include "model/gguf_model.h"
#include "model/model.h"
#include "parallel/plan.h"

namespace meshlm::testing {

struct Trace {
  std::vector<std::vector<int32_t>> tokens;  // per step
  std::vector<std::vector<float>> logits;    // per step that asked for them
};

/// Rank 0's side of a test: runs steps on `ex` and records them.
using Driver = std::function<Status(engine::Executor& ex, Trace* trace)>;

/// The whole model (a folder or a .gguf file) in one process.
inline Trace RunLocal(const std::string& path, const Driver& drive) {
  ThreadPool pool(1);
  auto m = model::Model::Load(path, {});
  EXPECT_TRUE(m.ok()) << m.status().message();
  Trace trace;
  if (!m.ok()) return trace;
  auto ex = engine::Executor::CreateLocal(std::move(m).value(), pool);
  EXPECT_TRUE(ex.ok());
  const Status s = drive(**ex, &trace);
  EXPECT_TRUE(s.ok()) << s.message();
  return trace;
}

/// tp x pp x ep ranks, one thread each, joined by an in-process group; rank 0 runs
/// `drive`. A rank that fails is marked dead so the others fail instead of waiting.
inline Trace RunSharded(const std::string& path, size_t tp, size_t pp, const Driver& drive,
                        size_t ep = 1) {
  const size_t world = tp * pp * ep;
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
        req.ep = ep;
        MESHLM_ASSIGN_OR_RETURN(auto plan, parallel::MakePlan(config, req));
        model::LoadOptions opt;
        opt.shard = plan.ranks[r].shard;
        MESHLM_ASSIGN_OR_RETURN(auto m, model::Model::Load(path, opt));
        MESHLM_ASSIGN_OR_RETURN(auto ex,
                                engine::Executor::Create(*lw.groups[r], std::move(m), plan, pool));
        if (r != 0) return ex->RunWorker();
        const Status s = drive(*ex, &trace);
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

}  // namespace meshlm::testing
