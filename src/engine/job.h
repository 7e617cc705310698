// Job start-up: join the job the environment describes (or run alone), check the group,
// plan the shards, load this rank's shard and build the Executor; and the run that
// follows (rank 0 drives, the other ranks serve steps).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/thread_pool.h"
#include "comm/group.h"
#include "engine/executor.h"

namespace meshlm::engine {

struct JobOptions {
  std::string model;   // folder or .gguf file
  size_t threads = 0;  // per rank; 0: the host's cores / its ranks
  size_t ctx = 0;      // context limit in tokens; 0: the caller's default
  size_t tp = 0;       // tensor-parallel ranks per stage; 0: world / pp
  size_t pp = 0;       // pipeline stages; 0: 1
  size_t ep = 0;       // expert-parallel groups per stage; 0: 1
  std::string layers;  // layers per stage, "10,18"; "": even split
};

struct Job {
  std::unique_ptr<comm::Group> world;
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<Executor> executor;
  /// Seconds from the join to a ready executor on the slowest rank: the start checks
  /// (hashing the model), the plan, loading, packing and reading in the weights.
  double load_seconds = 0;
  /// Every rank's peak resident set size, filled on rank 0 by RunJob at the end.
  std::vector<size_t> peak_rss;
};

/// Runs on every rank right after the join, before any weight is read (the start gate:
/// links, versions, model copies). Collective; an error stops the start.
using JobCheck = std::function<Status(comm::Group& world)>;

/// Joins, runs `check` (may be null), plans (before reading weights) and loads.
/// `default_ctx` applies when options.ctx is 0 (0 = the model's).
Result<Job> StartJob(const JobOptions& options, size_t default_ctx, const JobCheck& check);

/// Rank 0 runs `drive` and then stops the workers; other ranks serve steps. At the end
/// every rank's peak RSS is gathered to rank 0.
Status RunJob(Job& job, const std::function<Status()>& drive);

}  // namespace meshlm::engine
