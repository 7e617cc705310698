// `meshlm config` against hosts in network namespaces (sshd in each): it must find the
// cables, order rails the same on both ends, name what is missing or unreachable, draw one
// dot edge per cable, and write a hostfile that a real commtest launches with.
// Skipped when not root or without sshd.
#include <gtest/gtest.h>

#include <set>
#include <tuple>

#include "netns_cluster.h"

namespace meshlm::testing {
namespace {

using Edges = std::multiset<std::tuple<std::string, std::string, std::string, std::string>>;

std::string Hosts(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += fmt::format("{}10.99.0.{}", i ? "," : "", i + 1);
  return s;
}

Sh Config(const NetnsCluster& c, const std::string& args, int timeout_s = 60) {
  return c.InHub(fmt::format("{}/src/cli/meshlm config --hosts {} {} {}", BuildDir(),
                             Hosts(c.hosts()), c.SshArgs(), args),
                 timeout_s);
}

Edges DotEdges(const std::string& out) {
  Edges e;
  std::regex edge(R"re("([^"]+)" -- "([^"]+)" \[taillabel="([^"]+)", headlabel="([^"]+)")re");
  for (std::sregex_iterator it(out.begin(), out.end(), edge), end; it != end; ++it) {
    e.insert({(*it)[1], (*it)[2], (*it)[3], (*it)[4]});
  }
  return e;
}

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str(), nullptr, false);
}

// The hostfile's rails for pair (i, j), as written on host i.
std::vector<std::string> Links(const nlohmann::json& hf, int i, int j) {
  const auto& cell = hf.is_object() ? hf["hosts"][i]["links"][j] : hf[i]["links"][j];
  std::vector<std::string> out;
  if (cell.is_array()) {
    for (const auto& x : cell) out.push_back(x.get<std::string>());
  }
  return out;
}

// Subnet /24 of an address: rail k on both ends must be the same cable.
std::string Subnet(const std::string& ip) { return ip.substr(0, ip.rfind('.')); }

// The cables NetnsCluster made, as dot edges: interface names r<k>p<peer>, with host 1's
// names toward host 0 swapped when crossed.
Edges Expected(const NetnsCluster& c, bool crossed) {
  Edges e;
  for (int i = 0; i < c.hosts(); ++i) {
    for (int j = i + 1; j < c.hosts(); ++j) {
      for (int k = 0; k < c.Rails(i, j); ++k) {
        const int jk = (crossed && i == 0 && j == 1 && c.Rails(i, j) >= 2) ? 1 - k : k;
        e.insert({fmt::format("10.99.0.{}", i + 1), fmt::format("10.99.0.{}", j + 1),
                  fmt::format("r{}p{}", k, j), fmt::format("r{}p{}", jk, i)});
      }
    }
  }
  return e;
}

void ExpectHostfileMatchesCables(const NetnsCluster& c, const nlohmann::json& hf) {
  ASSERT_FALSE(hf.is_discarded());
  for (int i = 0; i < c.hosts(); ++i) {
    for (int j = 0; j < c.hosts(); ++j) {
      if (i == j) continue;
      const auto mine = Links(hf, i, j), theirs = Links(hf, j, i);
      ASSERT_EQ(static_cast<int>(mine.size()), c.Rails(i, j)) << i << "-" << j;
      ASSERT_EQ(mine.size(), theirs.size());
      for (size_t k = 0; k < mine.size(); ++k) {
        EXPECT_EQ(mine[k], c.RailIp(i, j, static_cast<int>(k))) << "rail " << k;
        EXPECT_EQ(Subnet(mine[k]), Subnet(theirs[k])) << "rail " << k << " of " << i << "-" << j;
      }
    }
  }
}

void ExpectCommtestPasses(const NetnsCluster& c, const std::string& hostfile) {
  Sh r = c.Launch(fmt::format("commtest --hostfile {} {} --max-bytes 1M --rounds 1 "
                              "--latency-iters 5 --json",
                              hostfile, c.SshArgs()),
                  60);
  ASSERT_EQ(r.code, 0) << r.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("\\[0\\] (\\{.*\\})"))) << r.out;
  const auto j = nlohmann::json::parse(m[1].str(), nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["ranks"], c.hosts());
  EXPECT_EQ(j["wrong_elements"], 0);
}

TEST(ConfigNetns, ThreeHostsMeshWithTwoRailsOnOnePair) {
  if (!CanRun()) GTEST_SKIP() << "needs root, ip netns and sshd";
  NetnsCluster c(3, false, [](int i, int j) { return i == 0 && j == 1 ? 2 : 1; });
  ASSERT_TRUE(c.ok()) << c.error();
  Sh r = Config(c, "--dot --output hosts.json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(DotEdges(r.out), Expected(c, false)) << r.out;
  const auto hf = ReadJson(c.dir() + "/hosts.json");
  ExpectHostfileMatchesCables(c, hf);
  EXPECT_EQ(hf[1]["ips"][0], "10.99.0.2");
  EXPECT_TRUE(hf[0]["rdma"][1].is_null());
  ExpectCommtestPasses(c, "hosts.json");
  // The default output is a table: host, interface, address, peer.
  Sh t = Config(c, "");
  std::printf("meshlm config, 3 hosts:\n%s", t.out.c_str());
  ASSERT_EQ(t.code, 0) << t.out;
  EXPECT_TRUE(std::regex_search(
      t.out, std::regex(R"(10\.99\.0\.1 +r1p1 +10\.51\.1\.1/24 +10\.99\.0\.2 r1p0 \(rail 1\))")))
      << t.out;
}

TEST(ConfigNetns, FourHostsFullMesh) {
  if (!CanRun()) GTEST_SKIP() << "needs root, ip netns and sshd";
  NetnsCluster c(4, false, [](int, int) { return 1; });
  ASSERT_TRUE(c.ok()) << c.error();
  Sh r = Config(c, "--dot --backend tcp --output hosts4.json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(DotEdges(r.out), Expected(c, false)) << r.out;
  const auto hf = ReadJson(c.dir() + "/hosts4.json");
  ASSERT_TRUE(hf.is_object()) << "with --backend, the object form";
  EXPECT_EQ(hf["backend"], "tcp");
  ExpectHostfileMatchesCables(c, hf);
  ExpectCommtestPasses(c, "hosts4.json");
}

TEST(ConfigNetns, MissingLinkIsNamedAndNoHostfileWritten) {
  if (!CanRun()) GTEST_SKIP() << "needs root, ip netns and sshd";
  NetnsCluster c(3, false, [](int i, int j) { return i == 1 && j == 2 ? 0 : 1; });
  ASSERT_TRUE(c.ok()) << c.error();
  Sh r = Config(c, "--dot --output hosts.json");
  std::printf("meshlm config --dot, no link between hosts 1 and 2:\n%s", r.out.c_str());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("no link between 10.99.0.2 and 10.99.0.3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"10.99.0.2\" -- \"10.99.0.3\" [style=dashed"), std::string::npos) << r.out;
  EXPECT_EQ(DotEdges(r.out), Expected(c, false)) << "what was found is still drawn\n" << r.out;
  EXPECT_NE(access((c.dir() + "/hosts.json").c_str(), F_OK), 0) << "no hostfile for a broken mesh";
  // A ring 1-2-3 needs the missing pair too; a ring needs every neighbour.
  Sh ring = Config(c, "--backend ring");
  EXPECT_EQ(ring.code, 1) << ring.out;
  EXPECT_NE(ring.out.find("no link between 10.99.0.2 and 10.99.0.3 (neighbours in the ring)"),
            std::string::npos)
      << ring.out;
}

TEST(ConfigNetns, CrossedCablesStillPairRailsByCable) {
  if (!CanRun()) GTEST_SKIP() << "needs root, ip netns and sshd";
  NetnsCluster c(2, true);
  ASSERT_TRUE(c.ok()) << c.error();
  Sh r = Config(c, "--dot --output hosts.json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(DotEdges(r.out), Expected(c, true)) << r.out;
  ExpectHostfileMatchesCables(c, ReadJson(c.dir() + "/hosts.json"));
  ExpectCommtestPasses(c, "hosts.json");
}

TEST(ConfigNetns, CableInTheWrongPortIsCaughtByTheProbe) {
  if (!CanRun()) GTEST_SKIP() << "needs root, ip netns and sshd";
  NetnsCluster c(2, false);
  ASSERT_TRUE(c.ok()) << c.error();
  // Host 1's two cable ends swap addresses: the subnets still pair up, the cables do not.
  Sh s = c.OnHost(1,
                  "ip addr del 10.50.1.2/24 dev r0p0 && ip addr del 10.51.1.2/24 dev r1p0 && "
                  "ip addr add 10.51.1.2/24 dev r0p0 && ip addr add 10.50.1.2/24 dev r1p0");
  ASSERT_EQ(s.code, 0) << s.out;
  Sh r = Config(c, "--output hosts.json");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("10.99.0.1:r0p1 (10.50.1.1) and 10.99.0.2:r1p0 (10.50.1.2) share "
                       "10.50.1.0/24 but 10.99.0.1 reaches 10.50.1.2 through 10.99.0.2:r0p0, "
                       "not 10.99.0.2:r1p0: that cable is in the wrong port"),
            std::string::npos)
      << r.out;
}

TEST(ConfigNetns, HostWithSshdDownIsNamedQuickly) {
  if (!CanRun()) GTEST_SKIP() << "needs root, ip netns and sshd";
  NetnsCluster c(3, false, [](int, int) { return 1; });
  ASSERT_TRUE(c.ok()) << c.error();
  ASSERT_TRUE(c.StopSshd(2));
  const double t0 = NowSeconds();
  Sh r = Config(c, "--output hosts.json --timeout 5");
  const double took = NowSeconds() - t0;
  std::printf("meshlm config with one sshd down (%.1f s):\n%s", took, r.out.c_str());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("host 10.99.0.3: ssh refused: start sshd"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("no link between 10.99.0.1 and 10.99.0.2"), std::string::npos)
      << "the reachable hosts' link is found\n"
      << r.out;
  EXPECT_LT(took, 10) << r.out;
}

TEST(ConfigNetns, AutoSetupAddressesACableWithNoIpv4) {
  if (!CanRun()) GTEST_SKIP() << "needs root, ip netns and sshd";
  NetnsCluster c(3, false, [](int, int) { return 1; });
  ASSERT_TRUE(c.ok()) << c.error();
  // The cable between hosts 1 and 2 loses its IPv4 addresses (IPv6 link-local stays).
  ASSERT_EQ(c.OnHost(1, "ip -4 addr flush dev r0p2").code, 0);
  ASSERT_EQ(c.OnHost(2, "ip -4 addr flush dev r0p1").code, 0);
  Sh plan = Config(c, "--output hosts.json");
  std::printf("meshlm config, one cable with no IPv4:\n%s", plan.out.c_str());
  EXPECT_EQ(plan.code, 1) << plan.out;
  EXPECT_NE(plan.out.find("no link between 10.99.0.2 and 10.99.0.3"), std::string::npos)
      << plan.out;
  EXPECT_NE(plan.out.find("ip addr add 10.250.0.1/30 dev r0p2"), std::string::npos) << plan.out;
  EXPECT_NE(plan.out.find("ip addr add 10.250.0.2/30 dev r0p1"), std::string::npos) << plan.out;
  Sh r = Config(c, "--auto-setup --output hosts.json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto hf = ReadJson(c.dir() + "/hosts.json");
  EXPECT_EQ(Links(hf, 1, 2), (std::vector<std::string>{"10.250.0.1"})) << r.out;
  EXPECT_EQ(Links(hf, 2, 1), (std::vector<std::string>{"10.250.0.2"})) << r.out;
  ExpectCommtestPasses(c, "hosts.json");
}

// Two hosts whose only link is the one ssh uses: config says it takes that subnet as the
// management network and how to count it as a rail; with --ssh-link-as-rail it is rail 0,
// and the hostfile runs.
TEST(ConfigNetns, SshLinkIsNamedAndCanBeTheRail) {
  if (!CanRun()) GTEST_SKIP() << "needs root, ip netns and sshd";
  NetnsCluster c(2, false, [](int, int) { return 0; });
  ASSERT_TRUE(c.ok()) << c.error();
  Sh r = Config(c, "--output plain.json");
  std::printf("meshlm config, two hosts joined only by the ssh subnet:\n%s", r.out.c_str());
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("10.99.0.0/24 joins 10.99.0.1 and 10.99.0.2 but is where ssh reaches"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("--ssh-link-as-rail"), std::string::npos) << r.out;
  EXPECT_TRUE(Links(ReadJson(c.dir() + "/plain.json"), 0, 1).empty());

  Sh rail = Config(c, "--ssh-link-as-rail --output rail.json");
  EXPECT_EQ(rail.code, 0) << rail.out;
  EXPECT_EQ(rail.out.find("is where ssh reaches them"), std::string::npos) << rail.out;
  const auto hf = ReadJson(c.dir() + "/rail.json");
  EXPECT_EQ(Links(hf, 0, 1), std::vector<std::string>{"10.99.0.1"}) << rail.out;
  EXPECT_EQ(Links(hf, 1, 0), std::vector<std::string>{"10.99.0.2"}) << rail.out;
  ExpectCommtestPasses(c, "rail.json");
}

// A cable reported down for a moment (a link just made) is asked about again before it
// counts as missing; one that stays down is still named.
TEST(ConfigNetns, LinkDownForAMomentIsAskedAgain) {
  if (!CanRun()) GTEST_SKIP() << "needs root, ip netns and sshd";
  NetnsCluster c(2, false, [](int, int) { return 1; });
  ASSERT_TRUE(c.ok()) << c.error();
  ASSERT_EQ(c.OnHost(0, "ip link set r0p1 down").code, 0);
  // Up again after 1.5 s, in the background (bounded: one sleep and one command).
  ASSERT_EQ(c.OnHost(0, "(sleep 1.5; ip link set r0p1 up) >/dev/null 2>&1 &").code, 0);
  Sh r = Config(c, "--output hosts.json --verbose");
  std::printf("meshlm config, a cable down for 1.5 s:\n%s", r.out.c_str());
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("asked again"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("is where ssh reaches them"), std::string::npos) << "the pair has a rail";
  ExpectHostfileMatchesCables(c, ReadJson(c.dir() + "/hosts.json"));

  ASSERT_EQ(c.OnHost(0, "ip link set r0p1 down").code, 0);
  const double t0 = NowSeconds();
  Sh down = Config(c, "");
  EXPECT_EQ(down.code, 1) << down.out;
  EXPECT_NE(down.out.find("no link between 10.99.0.1 and 10.99.0.2 (10.99.0.1: r0p1 is down"),
            std::string::npos)
      << down.out;
  EXPECT_LT(NowSeconds() - t0, 15) << down.out;
}

TEST(ConfigNetns, BadFlagsAreNamed) {
  if (!CanRun()) GTEST_SKIP() << "needs root, ip netns and sshd";
  const std::string meshlm = BuildDir() + "/src/cli/meshlm";
  Sh a = Shell(meshlm + " config --hosts a,b --over wifi");
  EXPECT_EQ(a.code, 2) << a.out;
  EXPECT_NE(a.out.find("--over 'wifi': expected ethernet, thunderbolt or all"), std::string::npos)
      << a.out;
  Sh b = Shell(meshlm + " config --hosts a,a");
  EXPECT_EQ(b.code, 2) << b.out;
  EXPECT_NE(b.out.find("'a' is listed twice"), std::string::npos) << b.out;
}

}  // namespace
}  // namespace meshlm::testing
