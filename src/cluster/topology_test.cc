// Topology discovery: parsers on realistic samples, cable matching, rail order, the
// backend's check, probes, and what is written (dot, hostfile, address plan).
#include "cluster/topology.h"

#include <gtest/gtest.h>

#include <random>
#include <regex>
#include <set>
#include <tuple>

#include "cluster/hostfile.h"

namespace meshlm::cluster {
namespace {

// A Linux host as `ip -j addr` shows it: lo, the management veth, two cables to one peer.
const char kIpJson[] = R"([
{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue",
 "operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"loopback",
 "address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00","addr_info":[
  {"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo",
   "valid_life_time":4294967295,"preferred_life_time":4294967295},
  {"family":"inet6","local":"::1","prefixlen":128,"scope":"host","valid_life_time":4294967295,
   "preferred_life_time":4294967295}]},
{"ifindex":2,"link_index":7,"ifname":"mgmt","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],
 "mtu":1500,"qdisc":"noqueue","operstate":"UP","group":"default","txqlen":1000,
 "link_type":"ether","address":"9a:1f:2e:00:00:01","broadcast":"ff:ff:ff:ff:ff:ff",
 "link_netnsid":0,"addr_info":[{"family":"inet","local":"10.99.0.1","prefixlen":24,
 "broadcast":"10.99.0.255","scope":"global","label":"mgmt","valid_life_time":4294967295,
 "preferred_life_time":4294967295},{"family":"inet6","local":"fe80::981f:2eff:fe00:1",
 "prefixlen":64,"scope":"link","valid_life_time":4294967295,"preferred_life_time":4294967295}]},
{"ifindex":3,"link_index":4,"ifname":"r0p1","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],
 "mtu":1500,"qdisc":"noqueue","operstate":"UP","group":"default","txqlen":1000,
 "link_type":"ether","address":"c2:aa:00:00:00:01","broadcast":"ff:ff:ff:ff:ff:ff",
 "link_netnsid":1,"addr_info":[{"family":"inet","local":"10.50.1.1","prefixlen":24,
 "broadcast":"0.0.0.0","scope":"global","label":"r0p1","valid_life_time":4294967295,
 "preferred_life_time":4294967295}]},
{"ifindex":5,"link_index":6,"ifname":"r1p1","flags":["NO-CARRIER","BROADCAST","MULTICAST","UP"],
 "mtu":1500,"qdisc":"noqueue","operstate":"LOWERLAYERDOWN","group":"default","txqlen":1000,
 "link_type":"ether","address":"c2:aa:00:00:00:02","broadcast":"ff:ff:ff:ff:ff:ff",
 "link_netnsid":1,"addr_info":[{"family":"inet","local":"10.51.1.1","prefixlen":24,
 "scope":"global","label":"r1p1","valid_life_time":4294967295,"preferred_life_time":4294967295}]}
])";

// A Mac Studio: Ethernet on en0, Wi-Fi on en1, Thunderbolt ports en2..en5 (en2 configured,
// en3 plugged in with no address, en4/en5 empty), all in the Thunderbolt Bridge.
const char kIfconfig[] =
    "lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 16384\n"
    "\toptions=1203<RXCSUM,TXCSUM,TXSTATUS,SW_TIMESTAMP>\n"
    "\tinet 127.0.0.1 netmask 0xff000000\n"
    "\tinet6 ::1 prefixlen 128 \n"
    "\tinet6 fe80::1%lo0 prefixlen 64 scopeid 0x1 \n"
    "\tnd6 options=201<PERFORMNUD,DAD>\n"
    "en0: flags=8863<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST> mtu 1500\n"
    "\toptions=50b<RXCSUM,TXCSUM,VLAN_HWTAGGING,AV,CHANNEL_IO>\n"
    "\tether 3c:a6:f6:12:34:56\n"
    "\tinet6 fe80::1c8a:5e4f:2b1d:9a10%en0 prefixlen 64 secured scopeid 0xb \n"
    "\tinet 192.168.1.20 netmask 0xffffff00 broadcast 192.168.1.255\n"
    "\tnd6 options=201<PERFORMNUD,DAD>\n"
    "\tmedia: autoselect (10Gbase-T <full-duplex>)\n"
    "\tstatus: active\n"
    "en1: flags=8863<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST> mtu 1500\n"
    "\tether 3c:a6:f6:12:34:57\n"
    "\tinet 192.168.1.21 netmask 0xffffff00 broadcast 192.168.1.255\n"
    "\tstatus: active\n"
    "en2: flags=8963<UP,BROADCAST,SMART,RUNNING,PROMISC,SIMPLEX,MULTICAST> mtu 1500\n"
    "\toptions=460<TSO4,TSO6,CHANNEL_IO>\n"
    "\tether 36:2a:8b:c0:1:4\n"
    "\tinet 10.0.1.1 netmask 0xfffffffc broadcast 10.0.1.3\n"
    "\tmedia: autoselect <full-duplex>\n"
    "\tstatus: active\n"
    "en3: flags=8963<UP,BROADCAST,SMART,RUNNING,PROMISC,SIMPLEX,MULTICAST> mtu 1500\n"
    "\toptions=460<TSO4,TSO6,CHANNEL_IO>\n"
    "\tether 36:2a:8b:c0:01:05\n"
    "\tmedia: autoselect <full-duplex>\n"
    "\tstatus: active\n"
    "en4: flags=8963<UP,BROADCAST,SMART,RUNNING,PROMISC,SIMPLEX,MULTICAST> mtu 1500\n"
    "\tether 36:2a:8b:c0:01:06\n"
    "\tmedia: autoselect <full-duplex>\n"
    "\tstatus: inactive\n"
    "en5: flags=8963<UP,BROADCAST,SMART,RUNNING,PROMISC,SIMPLEX,MULTICAST> mtu 1500\n"
    "\tether 36:2a:8b:c0:01:07\n"
    "\tstatus: inactive\n"
    "bridge0: flags=8863<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST> mtu 1500\n"
    "\toptions=63<RXCSUM,TXCSUM,TSO4,TSO6>\n"
    "\tether 36:2a:8b:c0:01:00\n"
    "\tConfiguration:\n"
    "\t\tid 0:0:0:0:0:0 priority 0 hellotime 0 fwddelay 0\n"
    "\t\tmaxage 0 holdcnt 0 proto stp maxaddr 100 timeout 1200\n"
    "\tmember: en2 flags=3<LEARNING,DISCOVER>\n"
    "\t        ifmaxaddr 0 port 9 priority 0 path cost 0\n"
    "\tmember: en3 flags=3<LEARNING,DISCOVER>\n"
    "\t        ifmaxaddr 0 port 10 priority 0 path cost 0\n"
    "\tnd6 options=201<PERFORMNUD,DAD>\n"
    "\tmedia: <unknown type>\n"
    "\tstatus: inactive\n";

const char kPorts[] =
    "\nHardware Port: Ethernet\nDevice: en0\nEthernet Address: 3c:a6:f6:12:34:56\n"
    "\nHardware Port: Wi-Fi\nDevice: en1\nEthernet Address: 3c:a6:f6:12:34:57\n"
    "\nHardware Port: Thunderbolt Bridge\nDevice: bridge0\nEthernet Address: 36:2a:8b:c0:01:00\n"
    "\nHardware Port: Thunderbolt 1\nDevice: en2\nEthernet Address: 36:2a:8b:c0:01:04\n"
    "\nHardware Port: Thunderbolt 2\nDevice: en3\nEthernet Address: 36:2a:8b:c0:01:05\n"
    "\nHardware Port: Thunderbolt 3\nDevice: en4\nEthernet Address: 36:2a:8b:c0:01:06\n"
    "\nHardware Port: Thunderbolt 4\nDevice: en5\nEthernet Address: 36:2a:8b:c0:01:07\n"
    "\nVLAN Configurations\n===================\n";

const NetInterface* Find(const std::vector<NetInterface>& v, const std::string& name) {
  for (const auto& i : v) {
    if (i.name == name) return &i;
  }
  return nullptr;
}

TEST(TopologyParse, IpJsonAddr) {
  auto r = ParseIpJsonAddr(kIpJson);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 4u);
  const auto* lo = Find(*r, "lo");
  ASSERT_TRUE(lo);
  EXPECT_TRUE(lo->loopback);
  EXPECT_EQ(lo->mac, "");
  const auto* m = Find(*r, "mgmt");
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->up);
  EXPECT_EQ(m->mac, "9a:1f:2e:00:00:01");
  ASSERT_EQ(m->ipv4.size(), 1u);  // the inet6 address is not IPv4
  EXPECT_EQ(m->ipv4[0].Text(), "10.99.0.1");
  EXPECT_EQ(m->ipv4[0].SubnetText(), "10.99.0.0/24");
  const auto* r1 = Find(*r, "r1p1");
  ASSERT_TRUE(r1);
  EXPECT_FALSE(r1->up) << "NO-CARRIER / LOWERLAYERDOWN is not up";
  EXPECT_TRUE(Find(*r, "r0p1")->up);
  EXPECT_EQ(m->link_local6, (std::vector<std::string>{"fe80::981f:2eff:fe00:1"}));
  EXPECT_FALSE(ParseIpJsonAddr("Object \"addr\" is unknown").ok());
  EXPECT_FALSE(ParseIpJsonAddr("{}").ok());
}

TEST(TopologyParse, MacIfconfigAndHardwarePorts) {
  auto r = ParseIfconfig(kIfconfig);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->size(), 8u);
  const auto* en2 = Find(*r, "en2");
  ASSERT_TRUE(en2);
  EXPECT_EQ(en2->mac, "36:2a:8b:c0:01:04") << "zero-padded";
  ASSERT_EQ(en2->ipv4.size(), 1u);
  EXPECT_EQ(en2->ipv4[0].prefix, 30);
  EXPECT_EQ(en2->ipv4[0].SubnetText(), "10.0.1.0/30");
  EXPECT_EQ(Find(*r, "en0")->ipv4[0].prefix, 24);
  EXPECT_EQ(Find(*r, "en0")->link_local6, (std::vector<std::string>{"fe80::1c8a:5e4f:2b1d:9a10"}));
  EXPECT_TRUE(Find(*r, "en3")->up);
  EXPECT_TRUE(Find(*r, "en3")->ipv4.empty());
  EXPECT_FALSE(Find(*r, "en4")->up) << "status: inactive";
  EXPECT_TRUE(Find(*r, "lo0")->loopback);
  EXPECT_EQ(Find(*r, "bridge0")->members, (std::vector<std::string>{"en2", "en3"}));

  const auto ports = ParseHardwarePorts(kPorts);
  EXPECT_EQ(ports.at("en2"), "Thunderbolt 1");
  EXPECT_EQ(ports.at("bridge0"), "Thunderbolt Bridge");
  EXPECT_EQ(ports.at("en1"), "Wi-Fi");
  for (auto& ifc : *r) {
    if (ports.count(ifc.name)) ifc.port = ports.at(ifc.name);
  }
  std::set<std::string> tb, eth, all;
  for (const auto& ifc : *r) {
    if (IsKind(ifc, LinkKind::kThunderbolt)) tb.insert(ifc.name);
    if (IsKind(ifc, LinkKind::kEthernet)) eth.insert(ifc.name);
    if (IsKind(ifc, LinkKind::kAll)) all.insert(ifc.name);
  }
  EXPECT_EQ(tb, (std::set<std::string>{"en2", "en3", "en4", "en5"}));
  EXPECT_EQ(eth, (std::set<std::string>{"en0"}));
  EXPECT_EQ(all.count("bridge0"), 0u) << "the Thunderbolt Bridge is never a rail";
  EXPECT_EQ(all.count("lo0"), 0u);

  EXPECT_FALSE(ParseIfconfig("en0: flags=1<UP>\n\tinet 10.0.0.300 netmask 0xffffff00\n").ok());
  // Names and addresses that would reach a shell elsewhere are not taken.
  auto odd = ParseIfconfig(
      "en0;reboot: flags=8863<UP,RUNNING> mtu 1500\n\tinet 10.0.0.1 netmask 0xffffff00\n"
      "en9: flags=8863<UP,RUNNING> mtu 1500\n\tinet6 fe80::1$(reboot)%en9 prefixlen 64\n");
  ASSERT_TRUE(odd.ok()) << odd.status().message();
  ASSERT_EQ(odd->size(), 1u);
  EXPECT_EQ((*odd)[0].name, "en9");
  EXPECT_TRUE((*odd)[0].link_local6.empty());
  auto odd_json = ParseIpJsonAddr(
      R"([{"ifname":"x'y","flags":["UP"]},{"ifname":"eth0","flags":["UP","LOWER_UP"],)"
      R"("addr_info":[{"family":"inet6","local":"fe80::1 `reboot`","prefixlen":64}]}])");
  ASSERT_TRUE(odd_json.ok());
  ASSERT_EQ(odd_json->size(), 1u);
  EXPECT_TRUE((*odd_json)[0].link_local6.empty());
}

TEST(TopologyParse, RdmaAndNeighbours) {
  const auto ibv = ParseRdmaDevices(
      "    device          \t   node GUID\n    ------          \t----------------\n"
      "    rdma_en2        \t362a8bc00104abcd\n    rdma_en3        \t362a8bc00105abcd\n");
  ASSERT_EQ(ibv.size(), 2u);
  EXPECT_EQ(ibv[0].name, "rdma_en2");
  EXPECT_EQ(ibv[0].netdevs, (std::vector<std::string>{"en2"}));
  const auto sys = ParseRdmaDevices("mlx5_0 ens1f0 \nmlx5_1 ens1f1 \n");
  ASSERT_EQ(sys.size(), 2u);
  EXPECT_EQ(sys[1].netdevs, (std::vector<std::string>{"ens1f1"}));
  const auto nb = ParseNeighbours(
      "fe80::c0aa:ff:fe00:3 dev r0p1 lladdr c2:aa:00:00:00:03 REACHABLE\n"
      "fe80::1 dev r0p1 FAILED\n"
      "Neighbor                        Linklayer Address  Netif Expire    St Flgs Prbs\n"
      "fe80::342a:8bff:fec0:105%en3    36:2a:8b:c0:1:5    en3 23h59m58s S R\n");
  EXPECT_EQ(nb.at("r0p1"), (std::vector<std::string>{"c2:aa:00:00:00:03"}));
  EXPECT_EQ(nb.at("en3"), (std::vector<std::string>{"36:2a:8b:c0:01:05"}));
}

TEST(TopologyParse, DiscoverySections) {
  const std::string out = std::string("@@ uname\nLinux\n@@ hostname\nnode-a\n@@ ssh\n") +
                          "10.99.0.100 51234 10.99.0.1 22\n@@ uid\n0\n@@ ipaddr\n" + kIpJson +
                          "\n@@ rdma\nmlx5_0 r0p1 \n@@ neigh\n@@ end\n";
  auto h = ParseDiscovery(out, "a");
  ASSERT_TRUE(h.ok()) << h.status().message();
  EXPECT_EQ(h->os, "Linux");
  EXPECT_EQ(h->hostname, "node-a");
  EXPECT_EQ(h->ssh_address, "10.99.0.1");
  EXPECT_TRUE(h->root);
  EXPECT_EQ(h->interfaces.size(), 4u);
  ASSERT_EQ(h->rdma.size(), 1u);
  EXPECT_EQ(h->rdma[0].netdevs[0], "r0p1");
  auto cut = ParseDiscovery(out.substr(0, out.size() / 2), "c");
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.status().message().find("host c:"), std::string::npos);
  auto noip = ParseDiscovery("@@ uname\nLinux\n@@ ipaddr\nsh: ip: not found\n@@ end\n", "b");
  ASSERT_FALSE(noip.ok());
  EXPECT_NE(noip.status().message().find("host b (Linux)"), std::string::npos)
      << noip.status().message();
}

// Builds hosts like the netns test cluster: host i has mgmt 10.99.0.(i+1)/24; cable k of
// pair (i, j) is on 10.(50+k).(10i+j).0/24, i at .1 and j at .2.
struct Builder {
  std::vector<HostInfo> hosts;
  explicit Builder(int n) : hosts(n) {
    for (int i = 0; i < n; ++i) {
      hosts[i].dest = std::string(1, static_cast<char>('a' + i));
      hosts[i].os = "Linux";
      hosts[i].ssh_address = fmt::format("10.99.0.{}", i + 1);
      Add(i, "mgmt", hosts[i].ssh_address, 24);
    }
  }
  NetInterface& Add(int i, const std::string& name, const std::string& ip, int prefix) {
    NetInterface ifc;
    ifc.name = name;
    ifc.up = true;
    ifc.mac = fmt::format("02:00:00:00:{:02x}:{:02x}", i, hosts[i].interfaces.size());
    if (!ip.empty()) {
      Ipv4Addr a;
      EXPECT_TRUE(ParseIpv4(ip, &a.addr));
      a.prefix = prefix;
      ifc.ipv4.push_back(a);
    }
    hosts[i].interfaces.push_back(ifc);
    return hosts[i].interfaces.back();
  }
  /// Cable k between i < j; names "r<name_k>p<peer>" (crossed names use another k).
  void Cable(int i, int j, int k, int name_k_i, int name_k_j) {
    const int pair = 10 * i + j;
    Add(i, fmt::format("r{}p{}", name_k_i, j), fmt::format("10.{}.{}.1", 50 + k, pair), 24);
    Add(j, fmt::format("r{}p{}", name_k_j, i), fmt::format("10.{}.{}.2", 50 + k, pair), 24);
  }
  std::string Mac(int i, const std::string& iface) const { return hosts[i].Find(iface)->mac; }
  /// Answers every probe correctly (the peer's MAC).
  std::map<int, std::string> Truth(const Topology& t) const {
    std::map<int, std::string> m;
    for (size_t k = 0; k < t.cables.size(); ++k) m[static_cast<int>(k)] = t.cables[k].b.mac;
    return m;
  }
};

std::vector<bool> All(int n) { return std::vector<bool>(n, true); }

TEST(Topology, ThreeHostMeshWithCrossedNamesKeepsRailOrderBySubnet) {
  Builder b(3);
  // Pair (0,1) has 2 cables and host 1 names them the other way round; one cable elsewhere.
  b.Cable(0, 1, 1, 1, 0);  // added in reverse order, to show order is by subnet
  b.Cable(0, 1, 0, 0, 1);
  b.Cable(0, 2, 0, 0, 0);
  b.Cable(1, 2, 0, 0, 0);
  Topology t = MatchSubnets(b.hosts, LinkKind::kAll);
  EXPECT_TRUE(t.problems.empty()) << t.problems[0];
  ASSERT_EQ(t.cables.size(), 4u);
  ASSERT_EQ(t.switch_subnets, (std::vector<std::string>{"10.99.0.0/24"}))
      << "the management network is a switch, not a rail";
  ApplyProbes(&t, b.Truth(t), b.hosts);
  ASSERT_EQ(t.cables.size(), 4u);
  const auto rails = t.Rails(1, 0);
  ASSERT_EQ(rails.size(), 2u);
  for (int k = 0; k < 2; ++k) {
    EXPECT_EQ(rails[k]->a.ip.SubnetText(), fmt::format("10.{}.1.0/24", 50 + k));
    EXPECT_EQ(rails[k]->a.ip.SubnetText(), rails[k]->b.ip.SubnetText());
  }
  EXPECT_EQ(rails[0]->b.iface, "r1p0") << "host 1's end of cable 0 is its r1p0 (crossed)";
  EXPECT_TRUE(CheckTopology(t, b.hosts, "tcp", All(3)).empty());
}

TEST(Topology, MissingLinkAndRingNeighbours) {
  Builder b(4);
  // A ring 0-1-2-3-0, no diagonals.
  b.Cable(0, 1, 0, 0, 0);
  b.Cable(1, 2, 0, 0, 0);
  b.Cable(2, 3, 0, 0, 0);
  b.Cable(0, 3, 0, 0, 0);
  Topology t = MatchSubnets(b.hosts, LinkKind::kAll);
  ApplyProbes(&t, b.Truth(t), b.hosts);
  EXPECT_TRUE(CheckTopology(t, b.hosts, "ring", All(4)).empty());
  EXPECT_EQ(CheckTopology(t, b.hosts, "tcp", All(4)),
            (std::vector<std::string>{"no link between a and c", "no link between b and d"}));
  // An unreachable host is named elsewhere, not as missing links.
  std::vector<bool> reach = All(4);
  reach[2] = false;
  EXPECT_EQ(CheckTopology(t, b.hosts, "tcp", reach),
            (std::vector<std::string>{"no link between b and d"}));
  EXPECT_EQ(MissingPairs(t, "jaccl", All(4)), (std::vector<std::pair<int, int>>{{0, 2}, {1, 3}}));
}

TEST(Topology, OneEndDownIsNamedAsAsymmetric) {
  Builder b(2);
  b.Cable(0, 1, 0, 0, 0);
  b.Cable(0, 1, 1, 1, 1);
  b.hosts[1].interfaces.back().up = false;  // b's end of cable 1
  Topology t = MatchSubnets(b.hosts, LinkKind::kAll);
  ASSERT_EQ(t.problems.size(), 1u);
  EXPECT_EQ(t.problems[0], "a has 2 links to b but b lists 1 (b: r1p0 is down)");
  EXPECT_EQ(t.cables.size(), 1u);
  // Two of a's interfaces on one subnet facing one of b's.
  Builder c(2);
  c.Cable(0, 1, 0, 0, 0);
  c.Add(0, "eth9", "10.50.1.3", 24);
  Topology u = MatchSubnets(c.hosts, LinkKind::kAll);
  ASSERT_EQ(u.problems.size(), 1u);
  EXPECT_EQ(u.problems[0],
            "a has 2 links to b but b lists 1 (a: r0p1, eth9 are all on 10.50.1.0/24)");
  EXPECT_TRUE(u.cables.empty());
  EXPECT_EQ(CheckTopology(u, c.hosts, "tcp", All(2)),
            (std::vector<std::string>{
                "no link between a and b (a: r0p1, eth9 are all on 10.50.1.0/24)"}));
}

TEST(Topology, OneMachineListedTwiceIsNamed) {
  Builder b(2);
  b.Cable(0, 1, 0, 0, 0);
  HostInfo again = b.hosts[1];
  again.dest = "b.local";
  b.hosts.push_back(again);
  Topology t = MatchSubnets(b.hosts, LinkKind::kAll);
  ASSERT_FALSE(t.problems.empty());
  EXPECT_EQ(t.problems[0],
            "b and b.local are the same machine (mgmt has MAC 02:00:00:00:01:00 on both); list "
            "it once");
}

TEST(Topology, ProbesRejectWrongPortAndSilence) {
  Builder b(3);
  b.Cable(0, 1, 0, 0, 0);
  b.Cable(0, 1, 1, 1, 1);
  b.Cable(0, 2, 0, 0, 0);
  b.Cable(1, 2, 0, 0, 0);
  Topology t = MatchSubnets(b.hosts, LinkKind::kAll);
  ASSERT_EQ(t.cables.size(), 4u);
  auto answers = b.Truth(t);
  answers[0] = b.Mac(1, "r1p0");  // cable 0 of (a, b) answers from b's other port
  answers.erase(3);               // (b, c): no answer at all
  answers[2] = "";
  ApplyProbes(&t, answers, b.hosts);
  ASSERT_EQ(t.cables.size(), 1u);
  ASSERT_EQ(t.problems.size(), 3u);
  EXPECT_EQ(t.problems[0],
            "a:r0p1 (10.50.1.1) and b:r0p0 (10.50.1.2) share 10.50.1.0/24 but a reaches "
            "10.50.1.2 through b:r1p0, not b:r0p0: that cable is in the wrong port");
  EXPECT_NE(t.problems[1].find("got no answer from 10.50.2.2 over r0p2"), std::string::npos)
      << t.problems[1];
  EXPECT_NE(t.problems[2].find("the probe from b did not run"), std::string::npos);
  EXPECT_EQ(ParseProbeOutput("probe 0 C2:AA:0:0:0:1\nnoise\nprobe 3 -\n"),
            (std::map<int, std::string>{{0, "c2:aa:00:00:00:01"}, {3, ""}}));
  const std::string script = ProbeScript(b.hosts[0], {{0, &t.cables[0]}});
  EXPECT_NE(script.find("p 0 'r1p1' 10.51.1.2 &"), std::string::npos) << script;
}

TEST(Topology, SwitchedClusterWithoutCablesPasses) {
  Builder b(3);
  Topology t = MatchSubnets(b.hosts, LinkKind::kAll);
  EXPECT_TRUE(t.cables.empty());
  EXPECT_TRUE(CheckTopology(t, b.hosts, "tcp", All(3)).empty());
  EXPECT_EQ(CheckTopology(t, b.hosts, "jaccl", All(3)).size(), 3u) << "RDMA needs cables";
  Topology tb = MatchSubnets(b.hosts, LinkKind::kThunderbolt);
  EXPECT_EQ(CheckTopology(tb, b.hosts, "tcp", All(3)).size(), 3u)
      << "--over thunderbolt with no Thunderbolt cable is not a switched cluster";
  // With any cable present, the others are expected too.
  b.Cable(0, 1, 0, 0, 0);
  Topology u = MatchSubnets(b.hosts, LinkKind::kAll);
  ApplyProbes(&u, b.Truth(u), b.hosts);
  EXPECT_EQ(CheckTopology(u, b.hosts, "tcp", All(3)).size(), 2u);
}

// Parses `"x" -- "y" [taillabel="p", headlabel="q", ...]` edges back.
std::multiset<std::tuple<std::string, std::string, std::string, std::string>> DotEdges(
    const std::string& dot) {
  std::multiset<std::tuple<std::string, std::string, std::string, std::string>> out;
  std::regex edge(R"re("([^"]+)" -- "([^"]+)" \[taillabel="([^"]+)", headlabel="([^"]+)")re");
  for (std::sregex_iterator it(dot.begin(), dot.end(), edge), end; it != end; ++it) {
    out.insert({(*it)[1], (*it)[2], (*it)[3], (*it)[4]});
  }
  return out;
}

TEST(Topology, DotHasOneEdgePerCableWithBothInterfaceNames) {
  Builder b(3);
  b.Cable(0, 1, 0, 0, 1);
  b.Cable(0, 1, 1, 1, 0);
  b.Cable(1, 2, 0, 0, 0);
  Topology t = MatchSubnets(b.hosts, LinkKind::kAll);
  ApplyProbes(&t, b.Truth(t), b.hosts);
  const auto missing = MissingPairs(t, "tcp", All(3));
  const std::string dot = TopologyDot(t, missing);
  // The cables made above: (host, host, interface on the first, interface on the second).
  const std::multiset<std::tuple<std::string, std::string, std::string, std::string>> want = {
      {"a", "b", "r0p1", "r1p0"}, {"a", "b", "r1p1", "r0p0"}, {"b", "c", "r0p2", "r0p1"}};
  EXPECT_EQ(DotEdges(dot), want) << dot;
  EXPECT_NE(dot.find("\"a\" -- \"c\" [style=dashed, color=red"), std::string::npos) << dot;
  EXPECT_EQ(dot.rfind("graph meshlm {", 0), 0u);
}

TEST(Topology, HostfileRoundTripsThroughTheLauncherParser) {
  Builder b(3);
  b.Cable(0, 1, 0, 1, 0);
  b.Cable(0, 1, 1, 0, 1);
  b.Cable(0, 2, 0, 0, 0);
  b.Cable(1, 2, 0, 0, 0);
  b.hosts[0].rdma = {{"rdma_x", {"r0p2"}}};
  b.hosts[2].rdma = {{"mlx5_0", {"r0p0"}}};
  Topology t = MatchSubnets(b.hosts, LinkKind::kAll);
  ApplyProbes(&t, b.Truth(t), b.hosts);
  for (const char* backend : {"", "ring"}) {
    const std::string json = HostfileJson(b.hosts, t, backend);
    auto hf = ParseHostfile(json, "out.json");
    ASSERT_TRUE(hf.ok()) << hf.status().message() << "\n" << json;
    EXPECT_EQ(hf->backend, backend);
    ASSERT_EQ(hf->hosts.size(), 3u);
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(hf->hosts[i].ssh, b.hosts[i].dest);
      EXPECT_EQ(hf->Address(i), fmt::format("10.99.0.{}", i + 1));
      for (int j = 0; j < 3; ++j) {
        if (i == j) continue;
        const auto& mine = hf->hosts[i].links[j];
        const auto& theirs = hf->hosts[j].links[i];
        ASSERT_EQ(mine.size(), theirs.size());
        ASSERT_EQ(mine.size(), (i + j == 1) ? 2u : 1u);
        for (size_t k = 0; k < mine.size(); ++k) {
          Ipv4Addr x{0, 24}, y{0, 24};
          ASSERT_TRUE(ParseIpv4(mine[k], &x.addr) && ParseIpv4(theirs[k], &y.addr));
          EXPECT_EQ(x.Network(), y.Network()) << "rail " << k << " of " << i << "-" << j;
          EXPECT_NE(x.addr, y.addr);
        }
      }
    }
    EXPECT_EQ(hf->hosts[0].rdma[2], (std::vector<std::string>{"rdma_x"}));
    EXPECT_EQ(hf->hosts[2].rdma[0], (std::vector<std::string>{"mlx5_0"}));
    EXPECT_TRUE(hf->hosts[0].rdma[1].empty());
  }
}

TEST(Topology, SetupPlanGivesEachBareCableItsOwnSubnet) {
  Builder b(2);
  auto& x = b.Add(0, "en3", "", 0);
  x.ipv4.push_back(Ipv4Addr{0xa9fe0102, 16});  // self-assigned link-local only
  b.Add(1, "eth4", "", 0);
  b.Add(1, "eth5", "", 0);  // no neighbour: stays unplanned
  b.hosts[0].os = "Darwin";
  NetInterface bridge;
  bridge.name = "bridge0";
  bridge.up = true;
  bridge.members = {"en3"};
  b.hosts[0].interfaces.push_back(bridge);
  b.hosts[1].root = true;
  b.hosts[0].neighbours["en3"] = {b.Mac(1, "eth4")};
  // 10.250.0.0/30 is taken already.
  b.Add(1, "eth6", "10.250.0.1", 30);
  const auto plan = PlanSetup(b.hosts, LinkKind::kAll);
  std::vector<std::pair<int, std::string>> got;
  for (const auto& c : plan) got.push_back({c.host, c.command});
  EXPECT_EQ(got, (std::vector<std::pair<int, std::string>>{
                     {0, "sudo ifconfig bridge0 deletem en3"},
                     {0, "sudo ifconfig en3 inet 10.250.0.5 netmask 255.255.255.252 up"},
                     {1, "ip addr add 10.250.0.6/30 dev eth4"},
                     {1, "ip link set eth4 up"}}));
}

TEST(Topology, BareCablesAreFoundByLinkLocalProbesThenPlanned) {
  Builder b(3);
  b.Cable(0, 1, 0, 0, 0);
  b.Add(1, "r0p2", "", 0).link_local6 = {"fe80::1:2"};
  b.Add(2, "r0p1", "", 0).link_local6 = {"fe80::2:1"};
  b.Add(2, "eth7", "", 0).link_local6 = {"fe80::2:7"};  // up, bare, but cabled elsewhere
  const auto probes = BareLinkProbes(b.hosts, LinkKind::kAll);
  ASSERT_EQ(probes.size(), 2u);
  EXPECT_EQ(probes[0].from, 1);
  EXPECT_EQ(probes[0].to_addr, "fe80::2:1");
  std::vector<std::pair<int, const BareProbe*>> mine = {{0, &probes[0]}, {1, &probes[1]}};
  EXPECT_NE(BareProbeScript(b.hosts[1], mine).find("p 1 'r0p2' fe80::2:7 &"), std::string::npos);
  // Only r0p1 answers; eth7 stays silent.
  ApplyBareProbes(&b.hosts, probes, {{0, b.Mac(2, "r0p1")}, {1, ""}});
  EXPECT_EQ(b.hosts[2].neighbours["r0p1"], (std::vector<std::string>{b.Mac(1, "r0p2")}));
  const auto plan = PlanSetup(b.hosts, LinkKind::kAll);
  std::vector<std::pair<int, std::string>> got;
  for (const auto& c : plan) got.push_back({c.host, c.command});
  EXPECT_EQ(
      got, (std::vector<std::pair<int, std::string>>{{1, "sudo ip addr add 10.250.0.1/30 dev r0p2"},
                                                     {1, "sudo ip link set r0p2 up"},
                                                     {2, "sudo ip addr add 10.250.0.2/30 dev r0p1"},
                                                     {2, "sudo ip link set r0p1 up"}}));
}

TEST(TopologyParse, MutatedInputNeverCrashes) {
  std::mt19937 rng(7);
  const std::string bases[] = {kIpJson, kIfconfig};
  const char pieces[] = "[]{},:\"0x \t\nnetmask inet 255.";
  for (int i = 0; i < 4000; ++i) {
    std::string s = bases[i % 2];
    for (int m = 0; m < 4; ++m) {
      const size_t at = rng() % s.size();
      if (rng() % 2) {
        s[at] = pieces[rng() % (sizeof(pieces) - 1)];
      } else {
        s.erase(at, rng() % 8);
      }
    }
    (void)ParseIpJsonAddr(s);
    (void)ParseIfconfig(s);
    (void)ParseDiscovery("@@ uname\nDarwin\n@@ ifconfig\n" + s + "\n@@ end\n", "x");
  }
}

}  // namespace
}  // namespace meshlm::cluster
