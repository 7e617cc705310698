// The communication test: barrier smoke test, correctness of every op with inputs exact by
// construction, small-message latency, and a bandwidth sweep (nccl-tests' algbw/busbw).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
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

/// What a commtest run gives its caller to print.
struct CommtestReport {
  int exit_code = 0;  // 0: every element right; 1: wrong elements or a comm error; 2: no job
  std::string error;  // for stderr when not empty: what stopped the test
  std::string json;   // rank 0 with options.json: the whole report as one JSON object
  int64_t wrong_elements = 0;
};

/// Receives the text report piece by piece as it is measured (so a long sweep shows
/// progress); called on rank 0 only, and not with options.json.
using CommtestPrint = std::function<void(const std::string& text)>;

/// Runs the phases on `group` (collective); `print` may be null.
CommtestReport RunCommtest(comm::Group& group, const CommtestOptions& options,
                           const CommtestPrint& print);

/// The `meshlm commtest` entry point: inside a job (MESHLM_RANK or MLX_RANK set) joins and
/// runs; otherwise, when `launch` names ranks (-n, --hosts, --hostfile), starts
/// `self_argv` as a job through the launcher (whose ranks print their own reports, so the
/// report holds only the exit code); otherwise runs alone.
CommtestReport CommtestCommand(const CommtestOptions& options, LaunchOptions launch,
                               const std::vector<std::string>& self_argv,
                               const CommtestPrint& print);

}  // namespace meshlm::cluster
