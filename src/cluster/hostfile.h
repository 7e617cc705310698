// Hostfiles: MLX's JSON format read unchanged, plus meshlm's optional additions.
//
// Accepted shapes:
//   [{"ssh": "a", "ips": ["10.0.0.1"], "rdma": [null, "rdma_en3"]}, ...]
//   {"backend": "jaccl", "envs": {...} or ["K=V", ...], "hosts": [ ...as above... ]}
// Matrix cells (rdma, links) are null, a string, or a list of strings; the diagonal is null.
// meshlm's additions per host: "links" (a matrix like rdma whose cells list this host's
// IPv4 addresses or interface names toward each peer, one per rail; rail k on host i
// and rail k on host j are the two ends of one cable) and "memory_gb".
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace meshlm::cluster {

struct HostEntry {
  std::string ssh;               // how to reach the host; may be empty for local ranks
  std::vector<std::string> ips;  // first one is where others reach it
  /// rdma[j]: RDMA device names toward host j (empty for none or the diagonal).
  std::vector<std::vector<std::string>> rdma;
  /// links[j]: addresses or interface names toward host j, one per rail.
  std::vector<std::vector<std::string>> links;
  std::optional<double> memory_gb;
};

struct Hostfile {
  std::string backend;  // "" when absent
  std::vector<std::pair<std::string, std::string>> envs;
  std::vector<HostEntry> hosts;

  /// Address other hosts use to reach host i: ips[0], else the ssh name.
  std::string Address(int i) const;
};

/// Parses hostfile JSON; `source` (a path) prefixes error messages. Errors name the host
/// index and field: "hosts[2].rdma[2]: the diagonal must be null".
Result<Hostfile> ParseHostfile(std::string_view json, const std::string& source);
Result<Hostfile> LoadHostfile(const std::string& path);

}  // namespace meshlm::cluster
