// The communication test: barrier smoke test, correctness of every op with inputs exact by
// construction, small-message latency, and a bandwidth sweep (nccl-tests' algbw/busbw).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "base/status.h"
#include "cluster/launcher.h"
#include "comm/group.h"

namespace meshlm::cluster {

struct CommtestOptions {
  /// Timed iterations per size in the bandwidth sweep (after one warm-up).
  int rounds = 20;
  /// Timed 1-element all_sums for the latency phase.
  int latency_iters = 2000;
  /// Largest correctness and bandwidth size in bytes.
  size_t max_bytes = 256u << 20;
  /// Bandwidth sweep sizes in bytes; empty: powers of 4 from 1 KiB to max_bytes.
  std::vector<size_t> sizes;
  /// Phases to run (0..3).
  std::vector<int> phases = {0, 1, 2, 3};
  bool json = false;
};

/// Runs the phases on `group`; rank 0 prints a report (text or one JSON object) to stdout.
/// Returns 0 when every element was right, 1 otherwise or on a comm error.
int RunCommtest(comm::Group& group, const CommtestOptions& options);

/// The `meshlm commtest` entry point: inside a job (MESHLM_RANK or MLX_RANK set) joins and
/// runs; otherwise, when `launch` names ranks (-n, --hosts, --hostfile), starts
/// `self_argv` as a job through the launcher; otherwise runs alone.
int CommtestCommand(const CommtestOptions& options, LaunchOptions launch,
                    const std::vector<std::string>& self_argv);

}  // namespace meshlm::cluster
