// Job: what `generate` and `bench` share — join the job the environment describes (or
// run alone), plan the shards, load this rank's shard, and build the Executor.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "base/thread_pool.h"
#include "comm/group.h"
#include "engine/executor.h"

namespace meshlm::cli {

struct JobFlags {
  std::string model;
  size_t threads = 0;
  size_t ctx = 0;
  size_t tp = 0;
  size_t pp = 0;
  size_t ep = 0;
  std::string layers;  // "10,18"
  bool no_gate = false;  // skip the start gate (cluster/gate.h)
};

/// Adds --model, --threads, --ctx, --tp, --pp, --ep, --layers, --no-gate to a subcommand.
void AddJobFlags(CLI::App* cmd, JobFlags* flags);

struct Job {
  std::unique_ptr<comm::Group> world;
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<engine::Executor> executor;
  /// Every rank's peak resident set size, filled on rank 0 by RunJob at the end.
  std::vector<size_t> peak_rss;
};

/// Joins, checks the group and the model copies (the start gate), plans (before reading
/// weights) and loads. `default_ctx` applies when --ctx
/// is not given (0 = the model's).
Result<Job> StartJob(const JobFlags& flags, size_t default_ctx);

/// Rank 0 runs `drive` and then stops the workers; other ranks serve steps. At the end
/// every rank's peak RSS is gathered to rank 0. Returns the process exit code; errors
/// are printed with `what` and the rank.
int RunJob(Job& job, const char* what, const std::function<Status()>& drive);

}  // namespace meshlm::cli
