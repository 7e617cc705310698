// Topology from discovered hosts: cables by shared subnet, probes, the backend's check,
// and what is written out (hostfile, Graphviz, table, address plan).
#include "cluster/topology.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

namespace meshlm::cluster {

namespace {

bool LinkLocal(uint32_t a) { return (a >> 16) == 0xa9fe; }  // 169.254/16
bool Loopback(uint32_t a) { return (a >> 24) == 127; }

/// Addresses that may be a rail end (kind permitting).
bool Usable(const Ipv4Addr& ip) {
  return !LinkLocal(ip.addr) && !Loopback(ip.addr) && ip.prefix > 0 && ip.prefix < 32;
}

std::string Join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

std::string Plural(int n, const char* word) {
  return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s");
}

}  // namespace

Result<LinkKind> ParseLinkKind(std::string_view s) {
  if (s == "all") return LinkKind::kAll;
  if (s == "ethernet") return LinkKind::kEthernet;
  if (s == "thunderbolt") return LinkKind::kThunderbolt;
  return Error("--over '{}': expected ethernet, thunderbolt or all", s);
}

const NetInterface* HostInfo::Find(const std::string& name) const {
  for (const auto& i : interfaces) {
    if (i.name == name) return &i;
  }
  return nullptr;
}

bool IsKind(const NetInterface& ifc, LinkKind kind) {
  if (ifc.loopback) return false;
  const bool tb =
      ifc.port.find("Thunderbolt") != std::string::npos || ifc.name.rfind("thunderbolt", 0) == 0;
  // macOS's "Thunderbolt Bridge" joins every Thunderbolt port into one network: never a rail.
  const bool bridge = !ifc.members.empty() || ifc.port.find("Bridge") != std::string::npos;
  const bool wifi = ifc.port == "Wi-Fi" || ifc.port == "AirPort";
  switch (kind) {
    case LinkKind::kAll:
      return !bridge || ifc.port.empty();
    case LinkKind::kThunderbolt:
      return tb && !bridge;
    case LinkKind::kEthernet:
      return !tb && !wifi && (!bridge || ifc.port.empty());
  }
  return false;
}

std::vector<const Cable*> Topology::Rails(int i, int j) const {
  const int a = std::min(i, j), b = std::max(i, j);
  std::vector<const Cable*> out;
  for (const auto& c : cables) {
    if (c.a.host == a && c.b.host == b) out.push_back(&c);
  }
  return out;
}

Topology MatchSubnets(const std::vector<HostInfo>& hosts, LinkKind over, bool ssh_link_as_rail) {
  Topology t;
  t.num_hosts = static_cast<int>(hosts.size());
  t.over = over;
  for (const auto& h : hosts) t.names.push_back(h.dest);
  // One machine listed twice (by name and by address) would look like a mesh with itself.
  std::map<std::string, int> mac_owner;
  for (int i = 0; i < t.num_hosts; ++i) {
    for (const auto& ifc : hosts[i].interfaces) {
      if (ifc.mac.empty() || ifc.loopback) continue;
      auto [it, fresh] = mac_owner.insert({ifc.mac, i});
      if (!fresh && it->second != i) {
        t.problems.push_back(
            fmt::format("{} and {} are the same machine ({} has MAC {} on both); list it once",
                        t.names[it->second], t.names[i], ifc.name, ifc.mac));
        it->second = i;
      }
    }
  }
  // Management subnets: where ssh reached each host.
  std::set<std::pair<uint32_t, int>> mgmt;
  for (const auto& h : hosts) {
    uint32_t a = 0;
    if (!ParseIpv4(h.ssh_address, &a)) continue;
    for (const auto& ifc : h.interfaces) {
      for (const auto& ip : ifc.ipv4) {
        if (ip.addr == a) mgmt.insert({ip.Network(), ip.prefix});
      }
    }
  }
  // (network, prefix) -> ends; one end per (host, interface).
  std::map<std::pair<uint32_t, int>, std::vector<Endpoint>> subnets;
  for (int i = 0; i < t.num_hosts; ++i) {
    for (const auto& ifc : hosts[i].interfaces) {
      for (const auto& ip : ifc.ipv4) {
        if (!Usable(ip) || ifc.loopback) continue;
        const std::pair<uint32_t, int> key{ip.Network(), ip.prefix};
        if (!mgmt.count(key) && !IsKind(ifc, over)) continue;
        auto& ends = subnets[key];
        const bool dup = std::any_of(ends.begin(), ends.end(), [&](const Endpoint& e) {
          return e.host == i && e.iface == ifc.name;
        });
        if (!dup) ends.push_back({i, ifc.name, ip, ifc.mac, ifc.up});
      }
    }
  }
  // view[i][j]: how many of i's interfaces (up) face j on a two-host subnet.
  std::vector<std::vector<int>> view(t.num_hosts, std::vector<int>(t.num_hosts, 0));
  std::map<std::pair<int, int>, std::vector<std::string>> notes;
  for (const auto& [key, ends] : subnets) {
    std::set<int> hs;
    for (const auto& e : ends) hs.insert(e.host);
    const std::string subnet = fmt::format("{}/{}", FormatIpv4(key.first), key.second);
    if (hs.size() == 2 && mgmt.count(key)) {
      t.ssh_links.push_back({subnet, *hs.begin(), *hs.rbegin()});
    }
    if (hs.size() > 2 || (mgmt.count(key) && !(ssh_link_as_rail && hs.size() == 2))) {
      if (hs.size() < 2) continue;
      std::vector<std::string> names;
      for (int h : hs) names.push_back(t.names[h]);
      t.switches.push_back(fmt::format("{} ({})", subnet, Join(names, ", ")));
      t.switch_subnets.push_back(subnet);
      t.switch_hosts.emplace_back(hs.begin(), hs.end());
      continue;
    }
    if (hs.size() == 1) {
      for (const auto& e : ends) t.unpaired.push_back(e);
      continue;
    }
    t.any_point_to_point = true;
    const int a = *hs.begin(), b = *hs.rbegin();
    std::vector<const Endpoint*> ea, eb;
    for (const auto& e : ends) {
      (e.host == a ? ea : eb).push_back(&e);
      if (e.up) ++view[e.host][e.host == a ? b : a];
    }
    for (const auto& e : ends) {
      if (e.up) continue;
      ++t.down_ends;
      notes[{a, b}].push_back(fmt::format("{}: {} is down", t.names[e.host], e.iface));
    }
    for (const auto* side : {&ea, &eb}) {
      if (side->size() > 1) {
        std::vector<std::string> ifs;
        for (const auto* e : *side) ifs.push_back(e->iface);
        notes[{a, b}].push_back(fmt::format("{}: {} are all on {}", t.names[(*side)[0]->host],
                                            Join(ifs, ", "), subnet));
      }
    }
    if (ea.size() == 1 && eb.size() == 1 && ea[0]->up && eb[0]->up) {
      t.cables.push_back({*ea[0], *eb[0], false});
    }
  }
  for (int i = 0; i < t.num_hosts; ++i) {
    for (int j = i + 1; j < t.num_hosts; ++j) {
      if (view[i][j] == view[j][i]) continue;
      const int more = view[i][j] > view[j][i] ? i : j, less = more == i ? j : i;
      std::string msg = fmt::format("{} has {} to {} but {} lists {}", t.names[more],
                                    Plural(view[more][less], "link"), t.names[less], t.names[less],
                                    view[less][more]);
      if (notes.count({i, j})) msg += " (" + Join(notes[{i, j}], "; ") + ")";
      t.problems.push_back(msg);
    }
  }
  t.link_notes = notes;
  std::sort(t.cables.begin(), t.cables.end(), [](const Cable& x, const Cable& y) {
    return std::make_tuple(x.a.host, x.b.host, x.a.ip.Network(), x.a.ip.prefix) <
           std::make_tuple(y.a.host, y.b.host, y.a.ip.Network(), y.a.ip.prefix);
  });
  return t;
}

std::string ProbeScript(const HostInfo& from,
                        const std::vector<std::pair<int, const Cable*>>& probes) {
  // Each probe sends one packet to the peer over the interface (ping, else a TCP connect
  // that is refused at once) and then reads which link-layer address answered.
  std::string s = "PATH=\"$PATH:/usr/sbin:/sbin\"\n";
  if (from.os == "Darwin") {
    s += "p() { ping -c1 -t1 -b \"$2\" \"$3\" >/dev/null 2>&1; "
         "m=$(arp -n \"$3\" 2>/dev/null | awk '{print $4}'); echo \"probe $1 ${m:--}\"; }\n";
  } else {
    // Up to three tries: a first packet can be lost while a link comes up, and the TCP
    // fallback (hosts without ping) left some neighbour entries unresolved when several
    // probes ran at once.
    s += "p() {\n"
         "  for i in 1 2 3; do\n"
         "    if command -v ping >/dev/null 2>&1; then ping -c1 -W1 -I \"$2\" \"$3\" >/dev/null "
         "2>&1\n"
         "    elif command -v bash >/dev/null 2>&1; then timeout 2 bash -c \"exec "
         "3<>/dev/tcp/$3/9\" >/dev/null 2>&1\n"
         "    fi\n"
         "    m=$(ip neigh show to \"$3\" dev \"$2\" 2>/dev/null | sed -n 's/.* lladdr "
         "\\([0-9a-fA-F:]*\\).*/\\1/p')\n"
         "    [ -n \"$m\" ] && break\n"
         "  done\n"
         "  echo \"probe $1 ${m:--}\"\n"
         "}\n";
  }
  for (const auto& [index, c] : probes) {
    s += fmt::format("p {} '{}' {} &\n", index, c->a.iface, c->b.ip.Text());
  }
  s += "wait\n";
  return s;
}

std::map<int, std::string> ParseProbeOutput(std::string_view out) {
  std::map<int, std::string> r;
  size_t start = 0;
  while (start < out.size()) {
    size_t end = out.find('\n', start);
    if (end == std::string_view::npos) end = out.size();
    const std::string line(out.substr(start, end - start));
    start = end + 1;
    char mac[64] = {};
    int index = -1;
    if (std::sscanf(line.c_str(), "probe %d %63s", &index, mac) == 2 && index >= 0) {
      r[index] = NormalizeMac(mac);
    }
  }
  return r;
}

void ApplyProbes(Topology* t, const std::map<int, std::string>& answers,
                 const std::vector<HostInfo>& hosts) {
  std::vector<Cable> kept;
  for (size_t k = 0; k < t->cables.size(); ++k) {
    Cable c = t->cables[k];
    const std::string a = t->names[c.a.host], b = t->names[c.b.host];
    const std::string both =
        fmt::format("{}:{} ({}) and {}:{} ({}) share {}", a, c.a.iface, c.a.ip.Text(), b, c.b.iface,
                    c.b.ip.Text(), c.a.ip.SubnetText());
    auto it = answers.find(static_cast<int>(k));
    if (it == answers.end()) {
      t->problems.push_back(both + " but the probe from " + a + " did not run");
      continue;
    }
    if (it->second.empty()) {
      t->problems.push_back(fmt::format(
          "{} but {} got no answer from {} over {}: is the cable plugged in at both ends?", both, a,
          c.b.ip.Text(), c.a.iface));
      continue;
    }
    if (!c.b.mac.empty() && it->second != c.b.mac) {
      std::string who = it->second;
      for (const auto& h : hosts) {
        for (const auto& ifc : h.interfaces) {
          if (ifc.mac == it->second) who = h.dest + ":" + ifc.name;
        }
      }
      t->problems.push_back(
          fmt::format("{} but {} reaches {} through {}, not {}:{}: that cable is in the wrong port",
                      both, a, c.b.ip.Text(), who, b, c.b.iface));
      continue;
    }
    c.confirmed = true;
    kept.push_back(c);
  }
  t->cables = std::move(kept);
}

std::vector<std::pair<int, int>> MissingPairs(const Topology& t, std::string_view backend,
                                              const std::vector<bool>& reachable) {
  std::vector<std::pair<int, int>> need;
  const int n = t.num_hosts;
  if (backend == "ring") {
    for (int i = 0; n > 1 && i < (n == 2 ? 1 : n); ++i) {
      need.push_back({std::min(i, (i + 1) % n), std::max(i, (i + 1) % n)});
    }
  } else {
    for (int i = 0; i < n; ++i) {
      for (int j = i + 1; j < n; ++j) need.push_back({i, j});
    }
  }
  // A cluster with no cables at all is a switched one: every pair talks over the switch.
  if (!t.any_point_to_point && t.over != LinkKind::kThunderbolt && backend != "jaccl") {
    for (const auto& hs : t.switch_hosts) {
      int covered = 0;
      for (int i = 0; i < n; ++i) {
        covered += (!reachable[i] || std::count(hs.begin(), hs.end(), i)) ? 1 : 0;
      }
      if (covered == n) return {};
    }
  }
  std::vector<std::pair<int, int>> missing;
  for (auto [i, j] : need) {
    if (!reachable[i] || !reachable[j]) continue;
    if (t.Rails(i, j).empty()) missing.push_back({i, j});
  }
  return missing;
}

std::vector<std::string> CheckTopology(const Topology& t, const std::vector<HostInfo>& hosts,
                                       std::string_view backend,
                                       const std::vector<bool>& reachable) {
  std::vector<std::string> out;
  for (auto [i, j] : MissingPairs(t, backend, reachable)) {
    const auto why = t.link_notes.find({std::min(i, j), std::max(i, j)});
    out.push_back(
        fmt::format("no link between {} and {}{}{}", t.names[i], t.names[j],
                    backend == "ring" ? " (neighbours in the ring)" : "",
                    why == t.link_notes.end() ? "" : " (" + Join(why->second, "; ") + ")"));
  }
  if (backend == "jaccl") {
    for (const auto& c : t.cables) {
      for (const Endpoint* e : {&c.a, &c.b}) {
        bool found = false;
        for (const auto& d : hosts[e->host].rdma) {
          found |= std::count(d.netdevs.begin(), d.netdevs.end(), e->iface) > 0;
        }
        if (!found) {
          out.push_back(fmt::format(
              "{}:{} has no RDMA device; jaccl needs one on every rail (macOS: rdma_ctl enable "
              "in Recovery)",
              t.names[e->host], e->iface));
        }
      }
    }
  }
  return out;
}

std::string HostfileJson(const std::vector<HostInfo>& hosts, const Topology& t,
                         std::string_view backend) {
  const int n = t.num_hosts;
  nlohmann::json list = nlohmann::json::array();
  for (int i = 0; i < n; ++i) {
    const HostInfo& h = hosts[i];
    nlohmann::json ips = nlohmann::json::array();
    if (!h.ssh_address.empty()) {
      ips.push_back(h.ssh_address);
    } else {
      for (const auto& ifc : h.interfaces) {
        for (const auto& ip : ifc.ipv4) {
          if (ips.empty() && Usable(ip) && !ifc.loopback) ips.push_back(ip.Text());
        }
      }
    }
    nlohmann::json rdma = nlohmann::json::array(), links = nlohmann::json::array();
    for (int j = 0; j < n; ++j) {
      const auto rails = t.Rails(i, j);
      if (i == j || rails.empty()) {
        rdma.push_back(nullptr);
        links.push_back(nullptr);
        continue;
      }
      nlohmann::json cell = nlohmann::json::array(), dev = nlohmann::json::array();
      for (const Cable* c : rails) {
        const Endpoint& mine = c->a.host == i ? c->a : c->b;
        cell.push_back(mine.ip.Text());
        for (const auto& d : h.rdma) {
          if (std::count(d.netdevs.begin(), d.netdevs.end(), mine.iface)) {
            dev.push_back(d.name);
            break;
          }
        }
      }
      links.push_back(cell);
      if (dev.size() == rails.size()) {
        rdma.push_back(dev);
      } else {
        rdma.push_back(nullptr);
      }
    }
    list.push_back({{"ssh", h.dest}, {"ips", ips}, {"rdma", rdma}, {"links", links}});
  }
  if (backend.empty()) return list.dump(2) + "\n";
  nlohmann::json obj = {{"backend", std::string(backend)}, {"hosts", list}};
  return obj.dump(2) + "\n";
}

std::string TopologyDot(const Topology& t, const std::vector<std::pair<int, int>>& missing) {
  auto q = [](const std::string& s) {
    std::string o = "\"";
    for (char c : s) o += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
    return o + "\"";
  };
  std::string s = "graph meshlm {\n  node [shape=box];\n";
  for (const auto& n : t.names) s += "  " + q(n) + ";\n";
  for (const auto& c : t.cables) {
    s += fmt::format("  {} -- {} [taillabel={}, headlabel={}, label={}];\n", q(t.names[c.a.host]),
                     q(t.names[c.b.host]), q(c.a.iface), q(c.b.iface), q(c.a.ip.SubnetText()));
  }
  for (auto [i, j] : missing) {
    s += fmt::format("  {} -- {} [style=dashed, color=red, label=\"missing\"];\n", q(t.names[i]),
                     q(t.names[j]));
  }
  return s + "}\n";
}

std::string TopologyTable(const std::vector<HostInfo>& hosts, const Topology& t) {
  std::vector<std::vector<std::string>> rows = {{"host", "interface", "address", "peer"}};
  for (int i = 0; i < static_cast<int>(hosts.size()); ++i) {
    for (const auto& ifc : hosts[i].interfaces) {
      for (const auto& ip : ifc.ipv4) {
        if (ifc.loopback || Loopback(ip.addr)) continue;
        std::string peer = "-";
        for (const auto& c : t.cables) {
          const Endpoint *mine = &c.a, *other = &c.b;
          if (c.b.host == i) std::swap(mine, other);
          if (mine->host != i || mine->iface != ifc.name) continue;
          const auto rails = t.Rails(c.a.host, c.b.host);
          const size_t k = std::find(rails.begin(), rails.end(), &c) - rails.begin();
          peer = fmt::format("{} {} (rail {})", t.names[other->host], other->iface, k);
        }
        for (size_t s = 0; s < t.switch_subnets.size(); ++s) {
          if (ip.SubnetText() == t.switch_subnets[s]) {
            peer = fmt::format("switch, {}",
                               Plural(static_cast<int>(t.switch_hosts[s].size()), "host"));
          }
        }
        if (ip.addr != 0 && hosts[i].ssh_address == ip.Text()) peer += " [ssh]";
        rows.push_back({hosts[i].dest, ifc.name + (ifc.up ? "" : " (down)"),
                        ip.Text() + "/" + std::to_string(ip.prefix), peer});
      }
    }
  }
  std::vector<size_t> w(4, 0);
  for (const auto& r : rows) {
    for (size_t k = 0; k < 4; ++k) w[k] = std::max(w[k], r[k].size());
  }
  std::string s;
  for (const auto& r : rows) {
    s += fmt::format("{:<{}}  {:<{}}  {:<{}}  {}\n", r[0], w[0], r[1], w[1], r[2], w[2], r[3]);
  }
  return s;
}

namespace {

/// Interfaces of the chosen kind, up, with a MAC and no usable IPv4.
bool Bare(const NetInterface& ifc, LinkKind over) {
  if (!ifc.up || ifc.mac.empty() || !IsKind(ifc, over)) return false;
  return std::none_of(ifc.ipv4.begin(), ifc.ipv4.end(), Usable);
}

}  // namespace

std::vector<BareProbe> BareLinkProbes(const std::vector<HostInfo>& hosts, LinkKind over) {
  std::vector<BareProbe> out;
  const int n = static_cast<int>(hosts.size());
  for (int i = 0; i < n; ++i) {
    for (const auto& x : hosts[i].interfaces) {
      if (!Bare(x, over)) continue;
      for (int j = i + 1; j < n; ++j) {
        for (const auto& y : hosts[j].interfaces) {
          if (!Bare(y, over) || y.link_local6.empty()) continue;
          out.push_back({i, j, x.name, y.name, y.link_local6[0], y.mac});
        }
      }
    }
  }
  return out;
}

std::string BareProbeScript(const HostInfo& from,
                            const std::vector<std::pair<int, const BareProbe*>>& probes) {
  std::string s = "PATH=\"$PATH:/usr/sbin:/sbin\"\n";
  if (from.os == "Darwin") {
    s += "p() { ping6 -c1 -i1 \"$3%$2\" >/dev/null 2>&1; "
         "m=$(ndp -n \"$3%$2\" 2>/dev/null | awk 'NR>1{print $2}'); echo \"probe $1 ${m:--}\"; "
         "}\n";
  } else {
    s += "p() {\n"
         "  if command -v ping >/dev/null 2>&1; then ping -6 -c1 -W1 -I \"$2\" \"$3\" >/dev/null "
         "2>&1\n"
         "  elif command -v bash >/dev/null 2>&1; then timeout 2 bash -c \"exec "
         "3<>/dev/tcp/$3%$2/9\" >/dev/null 2>&1\n"
         "  fi\n"
         "  m=$(ip -6 neigh show to \"$3\" dev \"$2\" 2>/dev/null | sed -n 's/.* lladdr "
         "\\([0-9a-fA-F:]*\\).*/\\1/p')\n"
         "  echo \"probe $1 ${m:--}\"\n"
         "}\n";
  }
  for (const auto& [index, p] : probes) {
    s += fmt::format("p {} '{}' {} &\n", index, p->from_iface, p->to_addr);
  }
  s += "wait\n";
  return s;
}

void ApplyBareProbes(std::vector<HostInfo>* hosts, const std::vector<BareProbe>& probes,
                     const std::map<int, std::string>& answers) {
  for (size_t k = 0; k < probes.size(); ++k) {
    auto it = answers.find(static_cast<int>(k));
    if (it == answers.end() || it->second.empty() || it->second != probes[k].to_mac) continue;
    const BareProbe& p = probes[k];
    const NetInterface* x = (*hosts)[p.from].Find(p.from_iface);
    auto add = [](std::vector<std::string>& v, const std::string& mac) {
      if (std::find(v.begin(), v.end(), mac) == v.end()) v.push_back(mac);
    };
    add((*hosts)[p.from].neighbours[p.from_iface], p.to_mac);
    if (x) add((*hosts)[p.to].neighbours[p.to_iface], x->mac);
  }
}

std::vector<SetupCommand> PlanSetup(const std::vector<HostInfo>& hosts, LinkKind over) {
  auto bare = [&](const NetInterface& ifc) { return Bare(ifc, over); };
  std::set<uint32_t> used;
  for (const auto& h : hosts) {
    for (const auto& ifc : h.interfaces) {
      for (const auto& ip : ifc.ipv4) used.insert(ip.addr & ~3u);
    }
  }
  std::set<std::tuple<int, std::string, int, std::string>> seen;
  std::vector<SetupCommand> out;
  uint32_t next = (10u << 24) | (250u << 16);  // 10.250.0.0, /30 steps
  const int n = static_cast<int>(hosts.size());
  for (int i = 0; i < n; ++i) {
    for (const auto& x : hosts[i].interfaces) {
      if (!bare(x)) continue;
      auto nb = hosts[i].neighbours.find(x.name);
      if (nb == hosts[i].neighbours.end()) continue;
      for (const auto& mac : nb->second) {
        for (int j = 0; j < n; ++j) {
          if (j == i) continue;
          for (const auto& y : hosts[j].interfaces) {
            if (y.mac != mac || !bare(y)) continue;
            const auto key = i < j ? std::make_tuple(i, x.name, j, y.name)
                                   : std::make_tuple(j, y.name, i, x.name);
            if (!seen.insert(key).second) continue;
            while (used.count(next)) next += 4;
            used.insert(next);
            const uint32_t base = next;
            for (auto [h, ifc, addr] :
                 {std::make_tuple(i, &x, base + 1), std::make_tuple(j, &y, base + 2)}) {
              const std::string sudo = hosts[h].root ? "" : "sudo ";
              if (hosts[h].os == "Darwin") {
                for (const auto& br : hosts[h].interfaces) {
                  if (std::count(br.members.begin(), br.members.end(), ifc->name)) {
                    out.push_back(
                        {h, fmt::format("{}ifconfig {} deletem {}", sudo, br.name, ifc->name)});
                  }
                }
                out.push_back({h, fmt::format("{}ifconfig {} inet {} netmask 255.255.255.252 up",
                                              sudo, ifc->name, FormatIpv4(addr))});
              } else {
                out.push_back({h, fmt::format("{}ip addr add {}/30 dev {}", sudo, FormatIpv4(addr),
                                              ifc->name)});
                out.push_back({h, fmt::format("{}ip link set {} up", sudo, ifc->name)});
              }
            }
          }
        }
      }
    }
  }
  return out;
}

}  // namespace meshlm::cluster
