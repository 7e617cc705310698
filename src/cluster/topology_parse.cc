// Parsers for what hosts print about their interfaces: `ip -j addr`, macOS `ifconfig` and
// `networksetup`, RDMA device lists, neighbour tables, and the discovery script's sections.
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cluster/topology.h"

namespace meshlm::cluster {

namespace {

std::vector<std::string> Tokens(std::string_view line) {
  std::vector<std::string> out;
  std::istringstream in{std::string(line)};
  std::string t;
  while (in >> t) out.push_back(t);
  return out;
}

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
    if (end == text.size()) break;
    start = end + 1;
  }
  return out;
}

std::string Trim(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return std::string(s.substr(a, b - a));
}

/// j[key] when it is a string, else "" (never throws).
std::string Str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

/// Interface names and link-local addresses end up in shell commands run on other hosts,
/// so only plain ones are taken: letters, digits and _ . - @ (names), hex and ':' (IPv6).
bool SafeName(std::string_view s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' ||
           c == '@';
  });
}
bool SafeIpv6(std::string_view s) {
  return !s.empty() && s.size() <= 45 && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isxdigit(static_cast<unsigned char>(c)) || c == ':';
  });
}

int PrefixFromMask(uint32_t mask) {
  int n = 0;
  while (n < 32 && (mask & (0x80000000u >> n))) ++n;
  return n;
}

}  // namespace

bool ParseIpv4(std::string_view s, uint32_t* out) {
  uint32_t v = 0;
  int parts = 0;
  size_t i = 0;
  while (parts < 4) {
    if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    uint32_t octet = 0;
    int digits = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) && digits < 4) {
      octet = octet * 10 + static_cast<uint32_t>(s[i] - '0');
      ++i, ++digits;
    }
    if (octet > 255 || digits > 3) return false;
    v = (v << 8) | octet;
    ++parts;
    if (parts < 4) {
      if (i >= s.size() || s[i] != '.') return false;
      ++i;
    }
  }
  if (i != s.size()) return false;
  *out = v;
  return true;
}

std::string FormatIpv4(uint32_t a) {
  return fmt::format("{}.{}.{}.{}", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

std::string Ipv4Addr::Text() const { return FormatIpv4(addr); }
uint32_t Ipv4Addr::Network() const {
  return prefix <= 0 ? 0 : addr & (0xffffffffu << (32 - std::min(prefix, 32)));
}
std::string Ipv4Addr::SubnetText() const {
  return fmt::format("{}/{}", FormatIpv4(Network()), prefix);
}

std::string NormalizeMac(std::string_view s) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : s) {
    if (c == ':') {
      parts.push_back(cur);
      cur.clear();
    } else if (std::isxdigit(static_cast<unsigned char>(c)) && cur.size() < 2) {
      cur += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else {
      return "";
    }
  }
  parts.push_back(cur);
  if (parts.size() != 6) return "";
  std::string out;
  for (auto& p : parts) {
    if (p.empty()) return "";
    if (!out.empty()) out += ':';
    out += p.size() == 1 ? "0" + p : p;
  }
  return out == "00:00:00:00:00:00" ? "" : out;
}

Result<std::vector<NetInterface>> ParseIpJsonAddr(std::string_view json) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_array()) {
    return Error("`ip -j addr` output is not a JSON list");
  }
  std::vector<NetInterface> out;
  for (const auto& e : j) {
    if (!e.is_object() || !e.contains("ifname") || !e["ifname"].is_string()) continue;
    NetInterface ifc;
    ifc.name = e["ifname"].get<std::string>();
    if (!SafeName(ifc.name)) continue;
    bool flag_up = false, lower_up = false;
    if (e.contains("flags") && e["flags"].is_array()) {
      for (const auto& f : e["flags"]) {
        if (!f.is_string()) continue;
        if (f == "UP") flag_up = true;
        if (f == "LOWER_UP") lower_up = true;
        if (f == "LOOPBACK") ifc.loopback = true;
      }
    }
    const std::string oper = Str(e, "operstate");
    ifc.up = flag_up && (lower_up || oper == "UP") && oper != "DOWN" && oper != "LOWERLAYERDOWN";
    if (e.contains("address") && e["address"].is_string()) {
      ifc.mac = NormalizeMac(e["address"].get<std::string>());
    }
    if (e.contains("addr_info") && e["addr_info"].is_array()) {
      for (const auto& a : e["addr_info"]) {
        if (!a.is_object()) continue;
        if (Str(a, "family") == "inet6" && Str(a, "local").rfind("fe80:", 0) == 0 &&
            SafeIpv6(Str(a, "local"))) {
          ifc.link_local6.push_back(Str(a, "local"));
        }
        if (Str(a, "family") != "inet") continue;
        Ipv4Addr ip;
        if (!a.contains("local") || !a["local"].is_string() ||
            !ParseIpv4(a["local"].get<std::string>(), &ip.addr)) {
          continue;
        }
        ip.prefix = a.contains("prefixlen") && a["prefixlen"].is_number_integer()
                        ? std::clamp(a["prefixlen"].get<int>(), 0, 32)
                        : 32;
        ifc.ipv4.push_back(ip);
      }
    }
    out.push_back(std::move(ifc));
  }
  return out;
}

Result<std::vector<NetInterface>> ParseIfconfig(std::string_view text) {
  std::vector<NetInterface> out;
  bool skipping = false;  // the detail lines of an interface not taken
  for (std::string_view line : Lines(text)) {
    if (line.empty()) continue;
    if (!std::isspace(static_cast<unsigned char>(line[0]))) {
      // "en2: flags=8963<UP,BROADCAST,SMART,RUNNING,...> mtu 1500"
      const size_t colon = line.find(": ");
      skipping = colon == std::string_view::npos || !SafeName(line.substr(0, colon));
      if (skipping) continue;
      NetInterface ifc;
      ifc.name = std::string(line.substr(0, colon));
      const size_t lt = line.find('<'), gt = line.find('>');
      if (lt != std::string_view::npos && gt != std::string_view::npos && gt > lt) {
        std::string flags(line.substr(lt + 1, gt - lt - 1));
        std::stringstream ss(flags);
        std::string f;
        bool up = false, running = false;
        while (std::getline(ss, f, ',')) {
          up |= f == "UP";
          running |= f == "RUNNING";
          ifc.loopback |= f == "LOOPBACK";
        }
        ifc.up = up && running;
      }
      out.push_back(std::move(ifc));
      continue;
    }
    if (out.empty() || skipping) continue;
    NetInterface& ifc = out.back();
    const auto t = Tokens(line);
    if (t.empty()) continue;
    if (t[0] == "ether" && t.size() >= 2) {
      ifc.mac = NormalizeMac(t[1]);
    } else if (t[0] == "inet" && t.size() >= 2) {
      Ipv4Addr ip;
      if (!ParseIpv4(t[1], &ip.addr)) {
        return Error("ifconfig: {}: bad inet address '{}'", ifc.name, t[1]);
      }
      ip.prefix = 32;
      for (size_t k = 2; k + 1 < t.size(); ++k) {
        if (t[k] != "netmask") continue;
        const std::string& m = t[k + 1];
        uint32_t mask = 0;
        if (m.rfind("0x", 0) == 0) {
          char* end = nullptr;
          mask = static_cast<uint32_t>(std::strtoul(m.c_str() + 2, &end, 16));
          if (*end != '\0') return Error("ifconfig: {}: bad netmask '{}'", ifc.name, m);
        } else if (!ParseIpv4(m, &mask)) {
          return Error("ifconfig: {}: bad netmask '{}'", ifc.name, m);
        }
        ip.prefix = PrefixFromMask(mask);
      }
      ifc.ipv4.push_back(ip);
    } else if (t[0] == "inet6" && t.size() >= 2 && t[1].rfind("fe80:", 0) == 0) {
      const std::string ll = t[1].substr(0, t[1].find('%'));
      if (SafeIpv6(ll)) ifc.link_local6.push_back(ll);
    } else if (t[0] == "member:" && t.size() >= 2 && SafeName(t[1])) {
      ifc.members.push_back(t[1]);
    } else if (t[0] == "status:" && t.size() >= 2 && t[1] == "inactive") {
      ifc.up = false;
    }
  }
  return out;
}

std::map<std::string, std::string> ParseHardwarePorts(std::string_view text) {
  std::map<std::string, std::string> out;
  std::string port;
  for (std::string_view line : Lines(text)) {
    const std::string l = Trim(line);
    if (l.rfind("Hardware Port:", 0) == 0) {
      port = Trim(l.substr(14));
    } else if (l.rfind("Device:", 0) == 0 && !port.empty()) {
      out[Trim(l.substr(7))] = port;
      port.clear();
    }
  }
  return out;
}

std::vector<RdmaDevice> ParseRdmaDevices(std::string_view text) {
  std::vector<RdmaDevice> out;
  for (std::string_view line : Lines(text)) {
    const auto t = Tokens(line);
    if (t.empty() || t[0] == "device" || t[0].rfind("---", 0) == 0) continue;
    RdmaDevice d;
    d.name = t[0];
    for (size_t k = 1; k < t.size(); ++k) {
      // ibv_devices prints a 16-digit node GUID beside each device.
      const bool guid = t[k].size() == 16 && std::all_of(t[k].begin(), t[k].end(), [](char c) {
                          return std::isxdigit(static_cast<unsigned char>(c));
                        });
      if (!guid) d.netdevs.push_back(t[k]);
    }
    // macOS names Thunderbolt RDMA devices after their interface: rdma_en3 drives en3.
    if (d.netdevs.empty() && d.name.rfind("rdma_", 0) == 0) d.netdevs.push_back(d.name.substr(5));
    out.push_back(std::move(d));
  }
  return out;
}

std::map<std::string, std::vector<std::string>> ParseNeighbours(std::string_view text) {
  std::map<std::string, std::vector<std::string>> out;
  for (std::string_view line : Lines(text)) {
    const auto t = Tokens(line);
    std::string iface, mac;
    for (size_t k = 0; k < t.size(); ++k) {
      if (t[k] == "dev" && k + 1 < t.size()) iface = t[k + 1];
      if (t[k] == "lladdr" && k + 1 < t.size()) mac = NormalizeMac(t[k + 1]);
    }
    // macOS `ndp -an`: "fe80::1%en2  1e:42:a:b:c:d  en2  23h59m58s S R"
    if (iface.empty() && t.size() >= 3 && !NormalizeMac(t[1]).empty()) {
      mac = NormalizeMac(t[1]);
      iface = t[2];
    }
    if (iface.empty() || mac.empty()) continue;
    auto& v = out[iface];
    if (std::find(v.begin(), v.end(), mac) == v.end()) v.push_back(mac);
  }
  return out;
}

std::string DiscoveryScript() {
  // One ssh round trip: sections marked "@@ name". The IPv6 all-nodes ping fills the
  // neighbour tables, so interfaces with no IPv4 yet can still be matched by MAC.
  return R"sh(PATH="$PATH:/usr/sbin:/sbin"
os=$(uname -s)
echo "@@ uname"; echo "$os"
echo "@@ hostname"; hostname 2>/dev/null
echo "@@ ssh"; echo "$SSH_CONNECTION"
echo "@@ uid"; id -u
if [ "$os" = Darwin ]; then
  echo "@@ ifconfig"; ifconfig
  echo "@@ ports"; networksetup -listallhardwareports 2>/dev/null
  echo "@@ rdma"; ibv_devices 2>/dev/null
  for i in $(ifconfig -l); do (ping6 -c1 "ff02::1%$i" >/dev/null 2>&1 &); done
  sleep 1
  echo "@@ neigh"; ndp -an 2>/dev/null
else
  echo "@@ ipaddr"; ip -j addr
  echo "@@ rdma"
  for d in /sys/class/infiniband/*; do
    [ -e "$d" ] && echo "$(basename "$d") $(ls "$d/device/net" 2>/dev/null | tr '\n' ' ')"
  done
  if command -v ping >/dev/null 2>&1; then
    for i in $(ls /sys/class/net); do ping -6 -c1 -w1 "ff02::1%$i" >/dev/null 2>&1 & done
    wait
  fi
  echo "@@ neigh"; ip -6 neigh 2>/dev/null
fi
echo "@@ end"
)sh";
}

Result<HostInfo> ParseDiscovery(std::string_view out, const std::string& dest) {
  std::map<std::string, std::string> sec;
  std::string cur;
  for (std::string_view line : Lines(out)) {
    if (line.rfind("@@ ", 0) == 0) {
      cur = Trim(line.substr(3));
      sec[cur];
      continue;
    }
    if (!cur.empty()) sec[cur].append(line).append("\n");
  }
  if (!sec.count("end")) {
    return Error("host {}: discovery output is incomplete (no end marker); got: {}", dest,
                 Trim(out.substr(0, 200)));
  }
  HostInfo h;
  h.dest = dest;
  h.os = Trim(sec["uname"]);
  h.hostname = Trim(sec["hostname"]);
  h.root = Trim(sec["uid"]) == "0";
  const auto ssh = Tokens(sec["ssh"]);  // client_ip client_port server_ip server_port
  if (ssh.size() >= 3) h.ssh_address = ssh[2];
  if (h.os == "Darwin") {
    auto ifs = ParseIfconfig(sec["ifconfig"]);
    if (!ifs.ok()) return ifs.status().With("host " + dest);
    h.interfaces = std::move(ifs.value());
    const auto ports = ParseHardwarePorts(sec["ports"]);
    for (auto& ifc : h.interfaces) {
      auto it = ports.find(ifc.name);
      if (it != ports.end()) ifc.port = it->second;
    }
  } else {
    auto ifs = ParseIpJsonAddr(sec["ipaddr"]);
    if (!ifs.ok()) {
      return Error("host {} ({}): {}; is iproute2 installed?", dest,
                   h.os.empty() ? "unknown OS" : h.os, ifs.status().message());
    }
    h.interfaces = std::move(ifs.value());
  }
  h.rdma = ParseRdmaDevices(sec["rdma"]);
  h.neighbours = ParseNeighbours(sec["neigh"]);
  return h;
}

}  // namespace meshlm::cluster
