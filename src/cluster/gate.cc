// The start gate: group health, version and model identity before weights load.
#include "cluster/gate.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "base/clock.h"
#include "base/log.h"
#include "cluster/manifest.h"

namespace meshlm::cluster {
namespace {

// What each rank tells the others, fixed-size so that one all_gather carries it.
struct Identity {
  char host[64];
  char version[32];
  char digest[65];  // model manifest digest, or "" when it could not be built
  char pad[7];
  uint64_t json_bytes;  // size of this rank's manifest JSON
};

void Copy(char* dst, size_t n, const std::string& s) {
  std::memset(dst, 0, n);
  std::memcpy(dst, s.data(), std::min(n - 1, s.size()));
}

std::string Field(const char* s, size_t n) { return std::string(s, strnlen(s, n)); }

std::string HostOf(const Identity& id, int r) {
  return fmt::format("rank {} ({})", r, Field(id.host, sizeof(id.host)));
}

int HostfileHosts(const std::string& path) {
  std::ifstream in(path);
  if (!in) return 0;
  std::stringstream ss;
  ss << in.rdbuf();
  const auto j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_array()) return static_cast<int>(j.size());
  if (j.is_object() && j.contains("hosts") && j["hosts"].is_array()) {
    return static_cast<int>(j["hosts"].size());
  }
  return 0;
}

}  // namespace

Status CheckNotSplit(int world_size) {
  if (world_size != 1) return OkStatus();
  for (const char* var : {"MESHLM_HOSTFILE", "MLX_HOSTFILE"}) {
    const char* path = std::getenv(var);
    if (!path || !*path) continue;
    const int hosts = HostfileHosts(path);
    if (hosts > 1) {
      return Error(
          "[gate] this process runs alone (a group of 1), but {}={} lists {} hosts: each host "
          "would run its own copy of the model as a separate group. Start the job with "
          "`meshlm launch --hostfile {} -- meshlm ...` (it sets MESHLM_RANK, "
          "MESHLM_WORLD_SIZE and MESHLM_COORDINATOR for every rank), or unset {} to run alone",
          var, path, hosts, path, var);
    }
  }
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"}) {
    const char* v = std::getenv(var);
    if (v && std::atoi(v) > 1) {
      return Error(
          "[gate] started as one of {}={} processes, but this process joined a group of 1: "
          "each would run the model alone. meshlm's ranks join through MESHLM_RANK, "
          "MESHLM_WORLD_SIZE and MESHLM_COORDINATOR; start the job with `meshlm launch`",
          var, v);
    }
  }
  return OkStatus();
}

// Every pair (a < b) in one order on every rank, so that no two ranks wait on each other
// in a cycle; ranks outside a pair go on to their next one.
Status ProbeLinks(comm::Group& g, std::vector<LinkProbe>* out) {
  const int n = g.size(), me = g.rank();
  if (n < 2 || n > kMaxProbedRanks) return OkStatus();
  constexpr size_t kBytes = 1 << 20;
  constexpr int kTrips = 10;
  std::vector<std::pair<int, int>> pairs;
  for (int a = 0; a < n; ++a) {
    for (int b = a + 1; b < n; ++b) pairs.push_back({a, b});
  }
  std::vector<float> vals(2 * pairs.size(), 0.0f);  // latency µs, GB/s; summed below
  std::vector<uint8_t> big(kBytes, 0x5a);
  for (size_t p = 0; p < pairs.size(); ++p) {
    const auto [a, b] = pairs[p];
    if (me != a && me != b) continue;
    uint64_t word = 0;
    uint8_t ack = 0;
    std::vector<double> rtt;
    for (int i = 0; i < kTrips; ++i) {
      const double t = NowSeconds();
      if (me == a) {
        MESHLM_RETURN_IF_ERROR(g.Send(&word, sizeof(word), b));
        MESHLM_RETURN_IF_ERROR(g.Recv(&word, sizeof(word), b));
        rtt.push_back(NowSeconds() - t);
      } else {
        MESHLM_RETURN_IF_ERROR(g.Recv(&word, sizeof(word), a));
        MESHLM_RETURN_IF_ERROR(g.Send(&word, sizeof(word), a));
      }
    }
    if (me == a) {
      const double t = NowSeconds();
      MESHLM_RETURN_IF_ERROR(g.Send(big.data(), big.size(), b));
      MESHLM_RETURN_IF_ERROR(g.Recv(&ack, 1, b));
      std::sort(rtt.begin(), rtt.end());
      vals[2 * p] = static_cast<float>(rtt[rtt.size() / 2] / 2 * 1e6);
      vals[2 * p + 1] = static_cast<float>(kBytes / std::max(NowSeconds() - t, 1e-9) / 1e9);
    } else {
      MESHLM_RETURN_IF_ERROR(g.Recv(big.data(), big.size(), a));
      MESHLM_RETURN_IF_ERROR(g.Send(&ack, 1, a));
    }
  }
  MESHLM_RETURN_IF_ERROR(g.AllSum(std::span<float>(vals)));
  for (size_t p = 0; p < pairs.size(); ++p) {
    out->push_back({pairs[p].first, pairs[p].second, vals[2 * p], vals[2 * p + 1]});
  }
  return OkStatus();
}

Result<GateReport> RunStartGate(comm::Group& g, const std::string& model,
                                const std::string& version) {
  MESHLM_RETURN_IF_ERROR(CheckNotSplit(g.size()));
  GateReport rep;
  const int n = g.size(), me = g.rank();
  if (n == 1) return rep;
  auto fail = [&](const Status& s, const char* what) {
    return Error("[gate] rank {}: {} failed before loading the model: {}", me, what, s.message());
  };

  // Links: everyone arrives, sums are exact, small ops are quick.
  const double t0 = NowSeconds();
  if (Status s = g.Barrier(); !s.ok()) return fail(s, "the barrier");
  std::vector<float> x(4096);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((me + 1) * (i % 251));
  if (Status s = g.AllSum(std::span<float>(x)); !s.ok()) return fail(s, "the all_sum check");
  int64_t wrong[1] = {0};
  for (size_t i = 0; i < x.size(); ++i) {
    wrong[0] += x[i] != static_cast<float>(n * (n + 1) / 2 * (i % 251));
  }
  if (Status s = g.AllSum(std::span<int64_t>(wrong, 1)); !s.ok()) return fail(s, "all_sum");
  if (wrong[0] != 0) {
    return Error(
        "[gate] all_sum over {} ranks gave {} wrong elements of {}: the links corrupt "
        "data; run `meshlm commtest` on this hostfile",
        n, wrong[0], x.size() * n);
  }
  std::vector<double> lat;
  float one[1] = {1.0f};
  for (int i = 0; i < 20; ++i) {
    const double a = NowSeconds();
    if (Status s = g.AllSum(std::span<float>(one, 1)); !s.ok()) return fail(s, "latency");
    lat.push_back(NowSeconds() - a);
  }
  std::sort(lat.begin(), lat.end());
  rep.latency_us = lat[lat.size() / 2] * 1e6;
  if (Status s = ProbeLinks(g, &rep.links); !s.ok()) return fail(s, "the link probe");
  rep.comm_ms = (NowSeconds() - t0) * 1e3;

  // Model identity: each rank's cached manifest, compared by digest.
  const double t1 = NowSeconds();
  std::string json, local_error;
  Identity mine{};
  char host[64] = {};
  gethostname(host, sizeof(host) - 1);
  Copy(mine.host, sizeof(mine.host), host);
  Copy(mine.version, sizeof(mine.version), version);
  auto man = BuildManifest(model, {.show_progress = me == 0});
  if (man.ok()) {
    rep.hashed_files = man->hashed_files;
    rep.hashed_bytes = man->hashed_bytes;
    if (man->hashed_bytes > (uint64_t{256} << 20) || !man->note.empty()) {
      MESHLM_LOG_INFO("[gate] rank {}: hashed {:.1f} GB of model files in {:.1f} s{}{}", me,
                      man->hashed_bytes / 1e9, NowSeconds() - t1,
                      man->cache_path.empty() ? "" : "; cached in " + man->cache_path,
                      man->note.empty() ? "" : "; " + man->note);
    }
    Copy(mine.digest, sizeof(mine.digest), man->digest);
    json = ManifestToJson(*man);
  } else {
    local_error = man.status().message();
  }
  mine.json_bytes = json.size();
  std::vector<Identity> all(n);
  // A rank hashing a large model for the first time keeps the others waiting here.
  const double timeout = g.op_timeout();
  if (timeout > 0) g.SetOpTimeout(std::max(timeout, 600.0));
  Status s = g.AllGather(&mine, sizeof(Identity), all.data());
  if (!s.ok()) {
    g.SetOpTimeout(timeout);
    return fail(s, "exchanging model manifests");
  }
  std::vector<std::string> problems;
  const std::string ref_digest = Field(all[0].digest, sizeof(mine.digest));
  std::vector<int> differ;
  for (int r = 0; r < n; ++r) {
    const std::string v = Field(all[r].version, sizeof(mine.version));
    if (v != Field(all[0].version, sizeof(mine.version))) {
      problems.push_back(
          fmt::format("{} runs meshlm {} but rank 0 runs {}: install the same "
                      "build everywhere",
                      HostOf(all[r], r), v, Field(all[0].version, 32)));
    }
    const std::string d = Field(all[r].digest, sizeof(mine.digest));
    if (d.empty()) {
      problems.push_back(fmt::format("{} cannot read the model at '{}'{}", HostOf(all[r], r), model,
                                     r == me ? ": " + local_error : ""));
    } else if (d != ref_digest && !ref_digest.empty()) {
      differ.push_back(r);
    }
  }
  if (!differ.empty()) {
    // Share the manifests of rank 0 and the differing ranks to say which files differ.
    std::vector<std::string> jsons(n);
    for (int r : [&] {
           std::vector<int> v{0};
           v.insert(v.end(), differ.begin(), differ.end());
           return v;
         }()) {
      std::string buf = r == me ? json : std::string(all[r].json_bytes, '\0');
      if (Status b = g.Broadcast(buf.data(), buf.size(), r); !b.ok()) {
        g.SetOpTimeout(timeout);
        return fail(b, "exchanging model manifests");
      }
      jsons[r] = std::move(buf);
    }
    auto ref = ManifestFromJson(jsons[0], "rank 0's manifest");
    for (int r : differ) {
      auto other = ManifestFromJson(jsons[r], fmt::format("rank {}'s manifest", r));
      std::string what;
      if (ref.ok() && other.ok()) {
        const auto diff = ManifestDifferences(*ref, *other);
        for (size_t k = 0; k < diff.size() && k < 3; ++k) what += (k ? "; " : "") + diff[k];
        if (diff.size() > 3) what += fmt::format("; and {} more", diff.size() - 3);
      }
      problems.push_back(
          fmt::format("{} has a different copy of the model at '{}' than rank "
                      "0: {}; run `meshlm sync --hostfile HOSTFILE --model {}`",
                      HostOf(all[r], r), model, what, model));
    }
  }
  g.SetOpTimeout(timeout);
  rep.manifest_ms = (NowSeconds() - t1) * 1e3;
  if (!problems.empty()) {
    std::string msg = fmt::format("[gate] refusing to start on {} ranks:", n);
    for (const std::string& p : problems) msg += "\n  " + p;
    return Status::Error(msg);
  }
  return rep;
}

}  // namespace meshlm::cluster
