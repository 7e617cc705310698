// The start gate: checks a job's group before any weight is read, so that a broken link,
// a wrong hostfile or a host with another copy of the model stops the job at once with a
// report, instead of a hang or garbage tokens later.
//
// Checks: not a split launch (a process alone while its hostfile lists several hosts, or
// one of several mpirun/srun processes); barrier; an all_sum whose result is exact by
// construction; ~20 one-element all_sums (latency); the same meshlm version and the same
// model manifest digest on every rank (each rank's cached manifest, so a start costs
// stat calls, not hashing); for jobs of up to kMaxProbedRanks ranks, each pair of ranks'
// latency (8-byte round trips) and bandwidth (1 MiB one way). Costs a few ms for a local
// 2-rank job.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "comm/group.h"

namespace meshlm::cluster {

/// Jobs above this many ranks skip the pairwise link probe (it grows as ranks²).
constexpr int kMaxProbedRanks = 8;

/// One pair of ranks as the gate measured it.
struct LinkProbe {
  int a = 0, b = 0;         // a < b
  double latency_us = 0;    // half the median 8-byte round trip
  double gbytes_per_s = 0;  // 1 MiB from a to b, until b's 1-byte reply
};

struct GateReport {
  double comm_ms = 0;      // barrier + correctness + latency
  double latency_us = 0;   // median 1-element all_sum
  double manifest_ms = 0;  // building this rank's manifest and comparing
  int hashed_files = 0;    // files this rank hashed (not taken from the cache)
  uint64_t hashed_bytes = 0;
  std::vector<LinkProbe> links;  // every pair, up to kMaxProbedRanks ranks
};

/// Errors when the environment shows this process was meant to join several others but
/// runs alone (`world_size` 1): MESHLM_HOSTFILE/MLX_HOSTFILE listing several hosts, or
/// mpirun/srun's process count above 1. The message says how to start the job.
Status CheckNotSplit(int world_size);

/// Runs the checks on every rank of `group` (collective). `model` is the path every rank
/// loads; `version` this binary's. On failure every rank returns an error naming the ranks,
/// hosts and files at fault; rank 0's lists them all.
Result<GateReport> RunStartGate(comm::Group& group, const std::string& model,
                                const std::string& version);

}  // namespace meshlm::cluster
