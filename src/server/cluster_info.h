// ClusterInfo: what the server tells about its cluster at /v1/cluster — each rank's host,
// shard (stage, layers, heads, experts) and memory, the links between hosts, and the start
// gate's measurements — gathered once when the job starts, joined at answer time with the
// live health and scheduler counters.
//
// Goals: one collective at start (a fixed-size record per rank, checked before use, since
// it comes from peers); the answer is built from what the server holds, without asking
// the workers. Non-goals: live per-rank memory (each rank's resident size is as of the
// start), links probed for jobs above the start gate's kMaxProbedRanks.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/status.h"
#include "comm/group.h"
#include "engine/scheduler.h"
#include "model/model.h"

namespace meshlm::server {

struct Metrics;

/// A half-open range [begin, end) of layers, heads or experts.
struct Span {
  size_t begin = 0;
  size_t end = 0;
};

struct RankInfo {
  int rank = 0;
  std::string host;
  size_t stage = 0;
  size_t tp_rank = 0, tp_size = 1;
  size_t ep_rank = 0, ep_size = 1;
  Span layers, heads, heads_kv;
  Span experts;                    // empty for a dense model
  size_t rss_bytes = 0;            // resident set size once loaded
  size_t mem_available_bytes = 0;  // the host's MemAvailable once loaded
  size_t mem_total_bytes = 0;      // the host's physical memory
};

/// A link between the hosts of two ranks (a < b); one rail per cable.
struct LinkInfo {
  size_t a = 0, b = 0;
  std::vector<std::string> rails;  // the interfaces, addresses or RDMA devices of a's end
  std::string kind;                // "rdma", "tcp" or "local" (both ranks on one host)
  double latency_us = -1;          // the start gate's probe; negative when not measured
  double gbytes_per_s = -1;
};

struct ClusterInfo {
  std::string model_name;
  int64_t num_layers = 0, num_heads = 0, num_heads_kv = 0, num_experts = 0;
  size_t context = 0;
  std::vector<RankInfo> ranks;     // by rank
  std::vector<std::string> hosts;  // in order of first rank
  std::string backend;             // "" when not known
  std::vector<LinkInfo> links;
  /// The start gate's measurements; negative when the gate did not run (--no-gate).
  double gate_latency_us = -1;  // median one-element all_sum
  double gate_comm_ms = -1;     // barrier, correctness check and latency together
};

/// Collective: every rank sends its host name, shard and memory; rank 0 returns them all
/// (with `hosts`, and a "local" link between every two ranks of one host; links between
/// hosts come from the hostfile, added by the caller), the other ranks an empty info.
/// `shard` is this rank's loaded model. Errors name the rank whose record is malformed.
Result<ClusterInfo> GatherClusterInfo(comm::Group& world, const model::Model& shard);

/// One hostfile entry as far as links go: toward each other host, its RDMA devices and
/// its link addresses or interfaces (either may be empty); and where others reach it.
struct HostLinks {
  std::vector<std::vector<std::string>> rdma, links;
  std::string address;
};

/// Adds a link for each pair of ranks on different hosts, rank i on hostfile host i (the
/// launcher starts one rank per host, in order): "rdma" with its devices, else "tcp" with
/// the hostfile's links, else "tcp" over the peer's address.
void AddHostfileLinks(const std::vector<HostLinks>& hosts, ClusterInfo* info);

/// The /v1/cluster answer: `info`, the health and the live counters of `metrics`.
nlohmann::json ClusterJson(const ClusterInfo& info, const engine::Health& health,
                           const Metrics& metrics, double uptime_s);

}  // namespace meshlm::server
