// Environment variables (meshlm's, then MLX's) to a TcpConfig.
#include "comm/env.h"

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/log.h"

namespace meshlm::comm {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string FirstEnv(std::initializer_list<const char*> names, std::string* which) {
  for (const char* n : names) {
    std::string v = Env(n);
    if (!v.empty()) {
      if (which) *which = n;
      return v;
    }
  }
  return "";
}

Result<long> ParseInt(const std::string& s, const std::string& name, long lo, long hi) {
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || v < lo || v > hi) {
    return Error("[comm] {}='{}' is not an integer in {}..{}", name, s, lo, hi);
  }
  return v;
}

Result<double> ParseSeconds(const std::string& s, const std::string& name) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !(v > 0) || v > 1e6) {
    return Error("[comm] {}='{}' is not a positive number of seconds", name, s);
  }
  return v;
}

// Ranks in a hostfile (MLX list form or {"hosts": [...]}) or an MLX devices matrix, and
// for MLX ring hostfiles (a list of lists of "ip:port") rank 0's first address. The full
// parser with field checks lives in the cluster layer.
struct HostfileFacts {
  int ranks = 0;
  std::string first_address;
};

Result<HostfileFacts> ReadHostfileFacts(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error("[comm] cannot open hostfile '{}'", path);
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error("[comm] hostfile '{}' is not valid JSON", path);
  HostfileFacts f;
  if (j.is_object() && j.contains("hosts") && j["hosts"].is_array()) {
    f.ranks = static_cast<int>(j["hosts"].size());
    return f;
  }
  if (!j.is_array()) {
    return Error("[comm] hostfile '{}': expected a list of hosts or an object with \"hosts\"",
                 path);
  }
  f.ranks = static_cast<int>(j.size());
  if (!j.empty() && j[0].is_array() && !j[0].empty() && j[0][0].is_string()) {
    f.first_address = j[0][0].get<std::string>();
  }
  return f;
}

}  // namespace

std::string FormatRails(const std::vector<std::vector<std::string>>& rails) {
  std::string out;
  for (size_t j = 0; j < rails.size(); ++j) {
    if (rails[j].empty()) continue;
    if (!out.empty()) out += ';';
    out += std::to_string(j) + '=';
    for (size_t k = 0; k < rails[j].size(); ++k) out += (k ? "," : "") + rails[j][k];
  }
  return out;
}

Result<std::vector<std::vector<std::string>>> ParseRails(const std::string& s, int world_size) {
  std::vector<std::vector<std::string>> rails(world_size);
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ';')) {
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string::npos) return Error("[comm] MESHLM_RAILS item '{}' lacks '='", item);
    MESHLM_ASSIGN_OR_RETURN(long peer,
                            ParseInt(item.substr(0, eq), "MESHLM_RAILS peer", 0, world_size - 1));
    std::stringstream as(item.substr(eq + 1));
    std::string a;
    while (std::getline(as, a, ',')) {
      if (a.empty()) return Error("[comm] MESHLM_RAILS item '{}' has an empty address", item);
      rails[peer].push_back(a);
    }
  }
  return rails;
}

Result<TcpConfig> TcpConfigFromEnv() {
  TcpConfig cfg;
  std::string rank_var = "MESHLM_RANK";
  const std::string rank = FirstEnv({"MESHLM_RANK", "MLX_RANK"}, &rank_var);
  if (rank.empty()) return cfg;  // alone
  const std::string hostfile = FirstEnv({"MESHLM_HOSTFILE", "MLX_HOSTFILE"}, nullptr);
  const std::string world = Env("MESHLM_WORLD_SIZE");
  std::string ring_address;  // rank 0's "ip:port" in an MLX ring hostfile
  if (!world.empty()) {
    MESHLM_ASSIGN_OR_RETURN(long w, ParseInt(world, "MESHLM_WORLD_SIZE", 1, 4096));
    cfg.world_size = static_cast<int>(w);
  } else if (!hostfile.empty()) {
    MESHLM_ASSIGN_OR_RETURN(HostfileFacts f, ReadHostfileFacts(hostfile));
    cfg.world_size = f.ranks;
    ring_address = f.first_address;
  } else if (!Env("MLX_IBV_DEVICES").empty()) {
    MESHLM_ASSIGN_OR_RETURN(HostfileFacts f, ReadHostfileFacts(Env("MLX_IBV_DEVICES")));
    cfg.world_size = f.ranks;
  } else {
    return Error(
        "[comm] {} is set but neither MESHLM_WORLD_SIZE nor a hostfile "
        "(MESHLM_HOSTFILE, MLX_HOSTFILE) says how many ranks there are",
        rank_var);
  }
  MESHLM_ASSIGN_OR_RETURN(long r, ParseInt(rank, rank_var, 0, cfg.world_size - 1));
  cfg.rank = static_cast<int>(r);
  cfg.coordinator = FirstEnv({"MESHLM_COORDINATOR", "MLX_JACCL_COORDINATOR"}, nullptr);
  if (cfg.coordinator.empty()) cfg.coordinator = ring_address;
  if (cfg.coordinator.empty() && cfg.world_size > 1) {
    return Error("[comm] rank {} of {}: set MESHLM_COORDINATOR=host:port (rank 0's address)",
                 cfg.rank, cfg.world_size);
  }
  cfg.secret = Env("MESHLM_SECRET");
  if (cfg.secret.empty() && cfg.world_size > 1) {
    MESHLM_LOG_WARN(
        "[comm] rank {}: MESHLM_SECRET is not set; any process that can reach the "
        "coordinator can join. Start jobs with `meshlm launch`, which sets one.",
        cfg.rank);
  }
  const std::string rails = Env("MESHLM_RAILS");
  if (!rails.empty()) {
    MESHLM_ASSIGN_OR_RETURN(cfg.rails, ParseRails(rails, cfg.world_size));
  }
  if (std::string t = Env("MESHLM_OP_TIMEOUT"); !t.empty()) {
    MESHLM_ASSIGN_OR_RETURN(cfg.options.op_timeout_s, ParseSeconds(t, "MESHLM_OP_TIMEOUT"));
  }
  if (std::string t = Env("MESHLM_CONNECT_TIMEOUT"); !t.empty()) {
    MESHLM_ASSIGN_OR_RETURN(cfg.options.connect_timeout_s,
                            ParseSeconds(t, "MESHLM_CONNECT_TIMEOUT"));
  }
  // Algorithm thresholds, for tuning and benchmarks.
  const std::pair<const char*, size_t*> sizes[] = {
      {"MESHLM_SMALL_BYTES", &cfg.options.small_bytes},
      {"MESHLM_CHUNK_BYTES", &cfg.options.chunk_bytes},
      {"MESHLM_STRIPE_BYTES", &cfg.options.stripe_bytes}};
  for (const auto& [name, field] : sizes) {
    if (std::string v = Env(name); !v.empty()) {
      MESHLM_ASSIGN_OR_RETURN(long b, ParseInt(v, name, name == sizes[1].first ? 64 : 0, 1l << 40));
      *field = static_cast<size_t>(b);
    }
  }
  if (std::string v = Env("MESHLM_SPIN_US"); !v.empty()) {
    MESHLM_ASSIGN_OR_RETURN(long us, ParseInt(v, "MESHLM_SPIN_US", 0, 1000000));
    cfg.options.spin_us = static_cast<double>(us);
  }
  cfg.host = Env("MESHLM_HOST");
  return cfg;
}

Result<std::unique_ptr<Group>> JoinFromEnv() {
  const std::string backend = Env("MESHLM_BACKEND");
  if (!backend.empty() && backend != "tcp" && backend != "ring") {
    return Error("[comm] MESHLM_BACKEND='{}' is not built into this binary; use tcp", backend);
  }
  MESHLM_ASSIGN_OR_RETURN(TcpConfig cfg, TcpConfigFromEnv());
  return ConnectTcpGroup(cfg);
}

}  // namespace meshlm::comm
