// ClusterInfo: the start-up gather of every rank's shard and memory, and /v1/cluster's JSON.
#include "server/cluster_info.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <type_traits>

#include "base/meminfo.h"
#include "server/metrics.h"

namespace meshlm::server {
namespace {

constexpr uint32_t kMagic = 0x4d434931;  // "MCI1"
constexpr size_t kHostBytes = 64;

// One rank's record on the wire. Every rank runs the same binary (the start gate checks
// the version), so the layout is the same everywhere; the values are still checked.
struct WireRecord {
  uint32_t magic = kMagic;
  char host[kHostBytes] = {};
  uint64_t rss = 0, mem_available = 0, mem_total = 0;
  uint64_t layer_begin = 0, layer_end = 0;
  uint64_t tp_rank = 0, tp_size = 1, ep_rank = 0, ep_size = 1, dense_over_stage = 0;
};
static_assert(std::is_trivially_copyable_v<WireRecord>);

size_t ResidentBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  return n == 2 ? static_cast<size_t>(resident) * static_cast<size_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

size_t PhysicalBytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : 0;
}

Span ToSpan(model::Range r) { return {r.begin, r.end}; }

nlohmann::json SpanJson(const Span& s) { return nlohmann::json::array({s.begin, s.end}); }

}  // namespace

Result<ClusterInfo> GatherClusterInfo(comm::Group& world, const model::Model& shard) {
  const model::ShardSpec& spec = shard.shard();
  const model::ModelConfig& config = shard.config();
  WireRecord mine;
  ::gethostname(mine.host, kHostBytes - 1);
  mine.rss = ResidentBytes();
  mine.mem_available = MemAvailableBytes();
  mine.mem_total = PhysicalBytes();
  mine.layer_begin = spec.layer_begin;
  mine.layer_end = spec.layer_end == 0 ? static_cast<size_t>(config.num_layers) : spec.layer_end;
  mine.tp_rank = spec.tp_rank;
  mine.tp_size = spec.tp_size;
  mine.ep_rank = spec.ep_rank;
  mine.ep_size = spec.ep_size;
  mine.dense_over_stage = spec.dense_over_stage ? 1 : 0;
  const size_t n = static_cast<size_t>(world.size());
  std::vector<WireRecord> all(n);
  MESHLM_RETURN_IF_ERROR(world.AllGather(&mine, sizeof(mine), all.data()));
  ClusterInfo info;
  if (world.rank() != 0) return info;
  info.num_layers = config.num_layers;
  info.num_heads = config.num_heads;
  info.num_heads_kv = config.num_heads_kv;
  info.num_experts = config.num_experts;
  const size_t layers = static_cast<size_t>(config.num_layers);
  for (size_t r = 0; r < n; ++r) {
    WireRecord& w = all[r];
    w.host[kHostBytes - 1] = '\0';
    if (w.magic != kMagic || w.layer_begin > w.layer_end || w.layer_end > layers ||
        w.tp_size == 0 || w.tp_rank >= w.tp_size || w.ep_size == 0 || w.ep_rank >= w.ep_size) {
      return Error(
          "[cluster] rank {}'s shard record is malformed (layers {}..{} of {}, tp {}/{}, ep "
          "{}/{})",
          r, w.layer_begin, w.layer_end, layers, w.tp_rank, w.tp_size, w.ep_rank, w.ep_size);
    }
    RankInfo ri;
    ri.rank = static_cast<int>(r);
    ri.host = w.host;
    ri.tp_rank = w.tp_rank;
    ri.tp_size = w.tp_size;
    ri.ep_rank = w.ep_rank;
    ri.ep_size = w.ep_size;
    ri.stage = r / (w.tp_size * w.ep_size);
    ri.layers = {w.layer_begin, w.layer_end};
    // The dense part (attention, dense FFN) is split over tp, or over the whole stage.
    const size_t parts = w.dense_over_stage ? w.tp_size * w.ep_size : w.tp_size;
    const size_t part = w.dense_over_stage ? w.ep_rank * w.tp_size + w.tp_rank : w.tp_rank;
    ri.heads = ToSpan(model::SplitEven(static_cast<size_t>(config.num_heads), parts, part));
    ri.heads_kv = ToSpan(model::SplitEven(static_cast<size_t>(config.num_heads_kv), parts, part));
    if (config.num_experts > 0) {
      ri.experts =
          ToSpan(model::SplitEven(static_cast<size_t>(config.num_experts), w.ep_size, w.ep_rank));
    }
    ri.rss_bytes = w.rss;
    ri.mem_available_bytes = w.mem_available;
    ri.mem_total_bytes = w.mem_total;
    if (std::find(info.hosts.begin(), info.hosts.end(), ri.host) == info.hosts.end()) {
      info.hosts.push_back(ri.host);
    }
    info.ranks.push_back(std::move(ri));
  }
  for (size_t a = 0; a < n; ++a) {
    for (size_t b = a + 1; b < n; ++b) {
      if (info.ranks[a].host == info.ranks[b].host) info.links.push_back({a, b, {}, "local"});
    }
  }
  return info;
}

void AddHostfileLinks(const std::vector<HostLinks>& hosts, ClusterInfo* info) {
  const size_t n = std::min(hosts.size(), info->ranks.size());
  for (size_t a = 0; a < n; ++a) {
    for (size_t b = a + 1; b < n; ++b) {
      if (info->ranks[a].host == info->ranks[b].host) continue;  // a "local" link already
      const HostLinks& h = hosts[a];
      LinkInfo link{a, b, {}, "tcp"};
      if (b < h.rdma.size() && !h.rdma[b].empty()) {
        link.kind = "rdma";
        link.rails = h.rdma[b];
      } else if (b < h.links.size() && !h.links[b].empty()) {
        link.rails = h.links[b];
      } else {
        link.rails = {hosts[b].address};
      }
      info->links.push_back(std::move(link));
    }
  }
}

nlohmann::json ClusterJson(const ClusterInfo& info, const engine::Health& health,
                           const Metrics& metrics, double uptime_s) {
  using nlohmann::json;
  const bool ok = health.state == engine::Health::State::kOk;
  const char* status = ok                                                 ? "ok"
                       : health.state == engine::Health::State::kDegraded ? "degraded"
                                                                          : "error";
  json j;
  j["status"] = status;
  if (!ok) j["error"] = health.reason;
  if (health.waiting_s > 0) j["waiting_on_ranks_s"] = health.waiting_s;
  if (!health.waiting_on.empty()) j["waiting_on"] = health.waiting_on;
  j["model"] = {{"name", info.model_name},     {"layers", info.num_layers},
                {"heads", info.num_heads},     {"heads_kv", info.num_heads_kv},
                {"experts", info.num_experts}, {"context", info.context}};
  const std::vector<std::array<double, 2>> times = metrics.RankTimes();
  json ranks = json::array();
  for (const RankInfo& r : info.ranks) {
    json jr = {{"rank", r.rank},
               {"host", r.host},
               {"stage", r.stage},
               {"tp_rank", r.tp_rank},
               {"tp_size", r.tp_size},
               {"ep_rank", r.ep_rank},
               {"ep_size", r.ep_size},
               {"layers", SpanJson(r.layers)},
               {"heads", SpanJson(r.heads)},
               {"heads_kv", SpanJson(r.heads_kv)},
               {"rss_bytes", r.rss_bytes}};
    if (info.num_experts > 0) jr["experts"] = SpanJson(r.experts);
    const size_t idx = static_cast<size_t>(r.rank);
    if (idx < times.size()) {
      jr["compute_s"] = times[idx][0];
      jr["comm_s"] = times[idx][1];
    }
    ranks.push_back(std::move(jr));
  }
  j["ranks"] = std::move(ranks);
  json hosts = json::array();
  for (const std::string& h : info.hosts) {
    json jh = {{"name", h}, {"ranks", json::array()}};
    for (const RankInfo& r : info.ranks) {
      if (r.host != h) continue;
      jh["ranks"].push_back(r.rank);
      // Ranks on one host see the same memory; the last one to report wins.
      jh["mem_available_bytes"] = r.mem_available_bytes;
      jh["mem_total_bytes"] = r.mem_total_bytes;
    }
    hosts.push_back(std::move(jh));
  }
  j["hosts"] = std::move(hosts);
  json links = json::array();
  for (const LinkInfo& l : info.links) {
    json link = {{"a", l.a}, {"b", l.b}, {"kind", l.kind}, {"rails", l.rails}};
    if (l.latency_us >= 0) link["latency_us"] = l.latency_us;
    if (l.gbytes_per_s >= 0) link["gbps"] = l.gbytes_per_s;
    links.push_back(std::move(link));
  }
  j["links"] = std::move(links);
  if (!info.backend.empty()) j["backend"] = info.backend;
  if (info.gate_latency_us >= 0) {
    j["gate"] = {{"all_sum_latency_us", info.gate_latency_us}, {"comm_ms", info.gate_comm_ms}};
  }
  j["stats"] = {{"running", metrics.running.load()},
                {"queued", metrics.queue_depth.load()},
                {"requests_total", metrics.requests_total.load()},
                {"requests_failed", metrics.requests_failed.load()},
                {"prompt_tokens_total", metrics.prompt_tokens_total.load()},
                {"completion_tokens_total", metrics.completion_tokens_total.load()},
                {"steps_total", metrics.steps_total.load()},
                {"prefix_cache_tokens", metrics.cached_tokens.load()},
                {"prompt_tokens_cached_total", metrics.cached_prompt_tokens_total.load()},
                {"uptime_s", uptime_s}};
  return j;
}

}  // namespace meshlm::server
