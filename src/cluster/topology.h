// Topology discovery, the pure part: what the hosts' interfaces are (parsed from `ip -j addr`,
// macOS `ifconfig` and `networksetup`), which interfaces are cables between which hosts,
// whether that makes the mesh or ring a backend needs, and the hostfile, Graphviz drawing
// and address plan that follow. The ssh side (running the scripts) is in config.h.
//
// Rules:
// - A cable is an IPv4 subnet that holds addresses of exactly two hosts, one interface on
//   each, both up, confirmed by a probe: host a resolves b's address over its interface and
//   the link-layer address that answers must be b's interface (so a cable plugged into the
//   wrong port is caught even when the addresses look right).
// - A subnet holding more than two hosts is a switch, never a rail: rails are cables. A
//   switch still carries traffic: "ips" (where ranks meet, and the tcp backend's fallback
//   link) is the address ssh reached a host at. When no subnet joins exactly two hosts,
//   the cluster is a switched one and the check passes if every host shares one switch
//   (not with --over thunderbolt or the jaccl backend, which need cables).
// - The subnet of the address ssh reached a host at is that host's management network,
//   never a rail; so are loopback and 169.254/16 link-local addresses.
// - Rails of a pair are ordered by subnet address, so rail k is the same cable on both
//   hosts, whatever the interfaces are called.
// - Interfaces with no IPv4 yet (a fresh Thunderbolt cable) are paired by probing the
//   peer's IPv6 link-local address over them; the address plan gives each such cable its
//   own /30 from 10.250.0.0/16.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace meshlm::cluster {

/// --over: which interfaces may be rails.
enum class LinkKind { kAll, kEthernet, kThunderbolt };
Result<LinkKind> ParseLinkKind(std::string_view s);

struct Ipv4Addr {
  uint32_t addr = 0;  // host byte order
  int prefix = 0;     // 0..32
  std::string Text() const;
  uint32_t Network() const;
  std::string SubnetText() const;  // "10.50.1.0/24"
};
/// "10.0.0.1" -> address; false when not a dotted quad.
bool ParseIpv4(std::string_view s, uint32_t* out);
std::string FormatIpv4(uint32_t a);

struct NetInterface {
  std::string name;
  std::string mac;  // lower case "aa:bb:cc:dd:ee:ff"; "" when none
  bool up = false;
  bool loopback = false;
  std::string port;                  // macOS hardware port ("Thunderbolt 1"); "" elsewhere
  std::vector<std::string> members;  // bridge members (macOS bridge0)
  std::vector<Ipv4Addr> ipv4;
  std::vector<std::string> link_local6;  // fe80:: addresses, without the %scope
};

struct RdmaDevice {
  std::string name;                  // "rdma_en3", "mlx5_0"
  std::vector<std::string> netdevs;  // interfaces it drives, when known
};

struct HostInfo {
  std::string dest;  // ssh destination, as given
  std::string os;    // uname -s: "Linux", "Darwin"
  std::string hostname;
  std::string ssh_address;  // the address ssh reached it at (SSH_CONNECTION); "" if unknown
  bool root = false;
  std::vector<NetInterface> interfaces;
  std::vector<RdmaDevice> rdma;
  /// IPv6 neighbours seen per interface: interface -> link-layer addresses.
  std::map<std::string, std::vector<std::string>> neighbours;
  const NetInterface* Find(const std::string& name) const;
};

/// Lower-case, zero-padded MAC ("0:1c:42:a:b:c" -> "00:1c:42:0a:0b:0c"); "" when not one.
std::string NormalizeMac(std::string_view s);

/// `ip -j addr` (iproute2 JSON).
Result<std::vector<NetInterface>> ParseIpJsonAddr(std::string_view json);
/// macOS `ifconfig` text (netmask in 0xffffff00 form).
Result<std::vector<NetInterface>> ParseIfconfig(std::string_view text);
/// macOS `networksetup -listallhardwareports`: device -> hardware port name.
std::map<std::string, std::string> ParseHardwarePorts(std::string_view text);
/// Lines "device [netdev ...]" (from /sys/class/infiniband) or `ibv_devices` table output.
std::vector<RdmaDevice> ParseRdmaDevices(std::string_view text);
/// Neighbour tables (`ip -6 neigh`, macOS `ndp -an`): interface -> link-layer addresses.
std::map<std::string, std::vector<std::string>> ParseNeighbours(std::string_view text);

/// The POSIX sh script that prints a host's discovery sections, and its parser. `dest`
/// names the host in errors.
std::string DiscoveryScript();
Result<HostInfo> ParseDiscovery(std::string_view out, const std::string& dest);

/// Whether an interface may be a rail under --over.
bool IsKind(const NetInterface& ifc, LinkKind kind);

/// One end of a link: interface `iface` of host `host` with address `ip`.
struct Endpoint {
  int host = -1;
  std::string iface;
  Ipv4Addr ip;
  std::string mac;
  bool up = true;
};

/// A cable between hosts a.host < b.host, on one subnet.
struct Cable {
  Endpoint a, b;
  bool confirmed = false;
};

struct Topology {
  int num_hosts = 0;
  LinkKind over = LinkKind::kAll;
  std::vector<std::string> names;  // ssh destinations, for messages
  /// Candidate cables before probing; only confirmed ones after ApplyProbes. Sorted by
  /// (a.host, b.host, subnet), so a pair's rails are in a fixed order.
  std::vector<Cable> cables;
  /// Switched subnets: "10.99.0.0/24 (a, b, c)".
  std::vector<std::string> switches;
  std::vector<std::string> switch_subnets;  // the same subnets, one set of hosts each
  std::vector<std::vector<int>> switch_hosts;
  /// Whether any subnet joins exactly two hosts (a cable, working or not). Without one the
  /// cluster is a switched one.
  bool any_point_to_point = false;
  /// Subnets where ssh reached the hosts that join exactly two of them: taken as the
  /// management network (listed in `switches`), or as a cable with ssh_link_as_rail.
  struct SshLink {
    std::string subnet;
    int a = 0, b = 0;  // the two hosts
  };
  std::vector<SshLink> ssh_links;
  /// Why pairs lack links ("a: r0p1 is down"), by (lower, higher) host.
  std::map<std::pair<int, int>, std::vector<std::string>> link_notes;
  /// Ends of two-host subnets (candidate cables) whose interface is down.
  int down_ends = 0;
  /// Addresses with no peer host.
  std::vector<Endpoint> unpaired;
  /// What is wrong with the links found, in words naming hosts and interfaces.
  std::vector<std::string> problems;

  /// Cables between hosts i and j (either order), rail order.
  std::vector<const Cable*> Rails(int i, int j) const;
};

/// Groups usable addresses by subnet into candidate cables, switches and unpaired ends;
/// names asymmetries ("a has 2 links to b but b lists 1"). The subnet ssh uses is the
/// management network, not a rail, unless `ssh_link_as_rail` and it joins exactly two
/// hosts (one cable that carries ssh too, the hosts' only link).
Topology MatchSubnets(const std::vector<HostInfo>& hosts, LinkKind over,
                      bool ssh_link_as_rail = false);

/// A probe: from host `cable.a.host`, resolve `cable.b`'s address over `cable.a.iface`.
/// The script prints "probe <index> <mac or ->" per probe; probes run in parallel.
std::string ProbeScript(const HostInfo& from,
                        const std::vector<std::pair<int, const Cable*>>& probes);
/// Parses a probe script's output: index -> answering MAC ("" when no answer).
std::map<int, std::string> ParseProbeOutput(std::string_view out);
/// Keeps the cables whose probe answered with the peer's MAC; names the others. `answers`
/// maps cable index -> MAC; a cable with no entry was not probed (host unreachable) and
/// is dropped with a problem.
void ApplyProbes(Topology* t, const std::map<int, std::string>& answers,
                 const std::vector<HostInfo>& hosts);

/// What the backend needs that is missing: "no link between b and c". Backends: tcp, jaccl,
/// mpi ("" too; full mesh), ring (each host to the next); jaccl also needs an RDMA device
/// on every rail. `reachable[i]` false for hosts that
/// could not be discovered (named elsewhere).
std::vector<std::string> CheckTopology(const Topology& t, const std::vector<HostInfo>& hosts,
                                       std::string_view backend,
                                       const std::vector<bool>& reachable);
/// The pairs CheckTopology found without a link, as (i, j) with i < j.
std::vector<std::pair<int, int>> MissingPairs(const Topology& t, std::string_view backend,
                                              const std::vector<bool>& reachable);

/// The hostfile: {"backend", "hosts": [{"ssh", "ips", "rdma", "links"}]} (MLX-compatible).
std::string HostfileJson(const std::vector<HostInfo>& hosts, const Topology& t,
                         std::string_view backend);
/// Graphviz: one node per host, one edge per cable labelled with both interface names
/// (taillabel on the lower-index host); missing pairs as dashed red edges.
std::string TopologyDot(const Topology& t, const std::vector<std::pair<int, int>>& missing);
/// Human table: host, interface, address, peer.
std::string TopologyTable(const std::vector<HostInfo>& hosts, const Topology& t);

/// A probe between two interfaces with no usable IPv4 (so no subnet tells whether they are
/// one cable): from `from`:`from_iface`, reach `to`'s IPv6 link-local address over that
/// interface and see whether `to_iface`'s MAC answers.
struct BareProbe {
  int from = -1, to = -1;
  std::string from_iface, to_iface, to_addr, to_mac;
};
std::vector<BareProbe> BareLinkProbes(const std::vector<HostInfo>& hosts, LinkKind over);
/// The script for host `from`'s probes (index into BareLinkProbes' list, probe); prints
/// "probe <index> <mac or ->" per probe, as ProbeScript does.
std::string BareProbeScript(const HostInfo& from,
                            const std::vector<std::pair<int, const BareProbe*>>& probes);
/// Records each answered probe as a neighbour of both ends (for PlanSetup).
void ApplyBareProbes(std::vector<HostInfo>* hosts, const std::vector<BareProbe>& probes,
                     const std::map<int, std::string>& answers);

/// One setup command for one host.
struct SetupCommand {
  int host = -1;
  std::string command;
};
/// Cables with no IPv4 on either end, found by IPv6 neighbour link-layer addresses, each
/// given its own /30 (10.250.x.y, avoiding subnets in use). Commands use sudo unless the
/// host logs in as root; on macOS, interfaces are taken out of bridge0 first.
std::vector<SetupCommand> PlanSetup(const std::vector<HostInfo>& hosts, LinkKind over);

}  // namespace meshlm::cluster
