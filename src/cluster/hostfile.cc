// Hostfile parsing and validation with errors that name the host and field.
#include "cluster/hostfile.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace meshlm::cluster {
namespace {

using Json = nlohmann::json;

const char* TypeName(const Json& j) { return j.type_name(); }

Result<std::string> GetString(const Json& j, const std::string& where) {
  if (!j.is_string()) return Error("{}: expected a string, found {}", where, TypeName(j));
  return j.get<std::string>();
}

// A cell: null, "x", or ["x", "y"].
Result<std::vector<std::string>> GetCell(const Json& j, const std::string& where) {
  std::vector<std::string> out;
  if (j.is_null()) return out;
  if (j.is_string()) {
    out.push_back(j.get<std::string>());
    return out;
  }
  if (!j.is_array()) {
    return Error("{}: expected null, a string or a list of strings, found {}", where, TypeName(j));
  }
  for (size_t k = 0; k < j.size(); ++k) {
    MESHLM_ASSIGN_OR_RETURN(std::string s, GetString(j[k], fmt::format("{}[{}]", where, k)));
    if (s.empty()) return Error("{}[{}]: empty name", where, k);
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::vector<std::vector<std::string>>> GetRow(const Json& j, size_t self, size_t n,
                                                     const std::string& where) {
  if (!j.is_array())
    return Error("{}: expected a list of {} cells, found {}", where, n, TypeName(j));
  if (j.size() != n) {
    return Error("{}: has {} cells but the hostfile has {} hosts; one cell per host", where,
                 j.size(), n);
  }
  std::vector<std::vector<std::string>> row(n);
  for (size_t c = 0; c < n; ++c) {
    const std::string cell = fmt::format("{}[{}]", where, c);
    MESHLM_ASSIGN_OR_RETURN(row[c], GetCell(j[c], cell));
    if (c == self && !row[c].empty()) return Error("{}: the diagonal must be null", cell);
  }
  return row;
}

Result<HostEntry> GetHost(const Json& j, size_t i, size_t n, const std::string& src) {
  const std::string at = fmt::format("{}: hosts[{}]", src, i);
  if (!j.is_object()) return Error("{}: expected an object, found {}", at, TypeName(j));
  HostEntry h;
  if (j.contains("ssh")) {
    MESHLM_ASSIGN_OR_RETURN(h.ssh, GetString(j["ssh"], at + ".ssh"));
  }
  if (j.contains("ips")) {
    MESHLM_ASSIGN_OR_RETURN(h.ips, GetCell(j["ips"], at + ".ips"));
  }
  if (h.ssh.empty() && h.ips.empty()) return Error("{}: needs \"ssh\" or \"ips\"", at);
  if (j.contains("rdma") && !j["rdma"].is_null()) {
    MESHLM_ASSIGN_OR_RETURN(h.rdma, GetRow(j["rdma"], i, n, at + ".rdma"));
  }
  if (j.contains("links") && !j["links"].is_null()) {
    MESHLM_ASSIGN_OR_RETURN(h.links, GetRow(j["links"], i, n, at + ".links"));
  }
  if (j.contains("memory_gb")) {
    if (!j["memory_gb"].is_number() || j["memory_gb"].get<double>() <= 0) {
      return Error("{}.memory_gb: expected a positive number", at);
    }
    h.memory_gb = j["memory_gb"].get<double>();
  }
  return h;
}

}  // namespace

std::string Hostfile::Address(int i) const {
  const HostEntry& h = hosts[i];
  return h.ips.empty() ? h.ssh : h.ips[0];
}

Result<Hostfile> ParseHostfile(std::string_view text, const std::string& src) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error("{}: not valid JSON", src);
  Hostfile hf;
  const Json* hosts = &j;
  if (j.is_object()) {
    if (!j.contains("hosts")) return Error("{}: an object hostfile needs a \"hosts\" list", src);
    hosts = &j["hosts"];
    if (j.contains("backend")) {
      MESHLM_ASSIGN_OR_RETURN(hf.backend, GetString(j["backend"], src + ": backend"));
    }
    if (j.contains("envs")) {
      const Json& e = j["envs"];
      if (e.is_object()) {
        for (auto it = e.begin(); it != e.end(); ++it) {
          const std::string v =
              it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
          hf.envs.emplace_back(it.key(), v);
        }
      } else if (e.is_array()) {
        for (size_t k = 0; k < e.size(); ++k) {
          MESHLM_ASSIGN_OR_RETURN(std::string kv,
                                  GetString(e[k], fmt::format("{}: envs[{}]", src, k)));
          const size_t eq = kv.find('=');
          if (eq == std::string::npos || eq == 0) {
            return Error("{}: envs[{}] '{}' is not KEY=VALUE", src, k, kv);
          }
          hf.envs.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
        }
      } else {
        return Error("{}: envs must be an object or a list of \"KEY=VALUE\"", src);
      }
    }
  }
  if (!hosts->is_array()) return Error("{}: hosts must be a list, found {}", src, TypeName(*hosts));
  if (hosts->empty()) return Error("{}: the host list is empty", src);
  const size_t n = hosts->size();
  for (size_t i = 0; i < n; ++i) {
    MESHLM_ASSIGN_OR_RETURN(HostEntry h, GetHost((*hosts)[i], i, n, src));
    hf.hosts.push_back(std::move(h));
  }
  // Rails pair up by index, so both ends of a pair must list the same number.
  for (size_t i = 0; i < n; ++i) {
    for (size_t k = i + 1; k < n; ++k) {
      const auto& a = hf.hosts[i].links;
      const auto& b = hf.hosts[k].links;
      const size_t na = a.empty() ? 0 : a[k].size(), nb = b.empty() ? 0 : b[i].size();
      if (na != nb) {
        return Error(
            "{}: hosts[{}].links[{}] lists {} rails but hosts[{}].links[{}] lists {}; "
            "rail r on each side must be the two ends of one link",
            src, i, k, na, k, i, nb);
      }
    }
  }
  return hf;
}

Result<Hostfile> LoadHostfile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error("[hostfile] cannot open '{}'", path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto hf = ParseHostfile(ss.str(), "[hostfile] " + path);
  return hf;
}

}  // namespace meshlm::cluster
