// Multi-host tests in Linux network namespaces: each "host" is a namespace with sshd,
// joined to the others by two veth pairs per pair of hosts (two rails), and to a hub
// namespace (where the launcher runs) by a management bridge. Everything the test creates
// is removed in TearDown, also when a check fails. Skipped when not root or without sshd.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <regex>

#include "comm_spawn.h"

namespace meshlm::testing {
namespace {

struct Sh {
  int code;
  std::string out;
};

// Runs a shell command, bounded by `timeout` (coreutils), capturing stdout and stderr.
Sh Shell(const std::string& cmd, int timeout_s = 60) {
  const std::string full =
      fmt::format("timeout -k 2 {} sh -c {} 2>&1", timeout_s,
                  "'" + std::regex_replace(cmd, std::regex("'"), "'\\''") + "'");
  FILE* p = popen(full.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), out};
}

// A cluster of `hosts` namespaces. Pair (i, j) is joined by rails 0 and 1 on subnets
// 10.(50 + rail).(pair).0/24, i at .1 and j at .2; interface "r<rail>p<peer>" in each.
// With `crossed`, host 1 names its two ends toward host 0 the other way round.
class NetnsCluster {
 public:
  NetnsCluster(int hosts, bool crossed)
      : n_(hosts), prefix_(fmt::format("mlt{}", getpid() % 100000)) {
    dir_ = fmt::format("/tmp/{}-{}", prefix_, crossed ? "x" : "s");
    ok_ = Setup(crossed);
  }
  ~NetnsCluster() { Teardown(); }

  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  std::string Ns(int i) const { return fmt::format("{}h{}", prefix_, i); }
  std::string Hub() const { return prefix_ + "hub"; }
  const std::string& dir() const { return dir_; }
  static int Pair(int i, int j) { return i * 10 + j; }
  std::string RailIp(int i, int j, int rail) const {
    const int a = std::min(i, j), b = std::max(i, j);
    return fmt::format("10.{}.{}.{}", 50 + rail, Pair(a, b), i == a ? 1 : 2);
  }

  /// Writes a hostfile; links by interface name (names=true) or IP, `rails` per pair.
  std::string WriteHostfile(const std::string& name, bool names, int rails) const {
    nlohmann::json hosts = nlohmann::json::array();
    for (int i = 0; i < n_; ++i) {
      nlohmann::json links = nlohmann::json::array();
      for (int j = 0; j < n_; ++j) {
        if (i == j) {
          links.push_back(nullptr);
          continue;
        }
        nlohmann::json cell = nlohmann::json::array();
        for (int k = 0; k < rails; ++k) {
          cell.push_back(names ? fmt::format("r{}p{}", k, j) : RailIp(i, j, k));
        }
        links.push_back(cell);
      }
      hosts.push_back({{"ssh", fmt::format("10.99.0.{}", i + 1)},
                       {"ips", {fmt::format("10.99.0.{}", i + 1)}},
                       {"links", links}});
    }
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << hosts.dump(2);
    return path;
  }

  /// The launcher's ssh flags for this cluster.
  std::string SshArgs() const {
    return fmt::format(
        "--ssh-arg=-oIdentityFile={}/id --ssh-arg=-oStrictHostKeyChecking=no "
        "--ssh-arg=-oUserKnownHostsFile=/dev/null --ssh-arg=-oLogLevel=ERROR "
        "--ssh-arg=-oConnectTimeout=5",
        dir_);
  }

  /// Runs `args` of launch_tool in the hub namespace with `input` on its stdin.
  Sh Launch(const std::string& args, int timeout_s = 90, const std::string& input = "") const {
    std::ofstream(dir_ + "/stdin") << input;
    return Shell(fmt::format("cd {} && ip netns exec {} {}/tests/launch_tool {} <{}/stdin", dir_,
                             Hub(), BuildDir(), args, dir_),
                 timeout_s);
  }

  /// Bytes sent so far on interface `dev` of host `i`.
  long TxBytes(int i, const std::string& dev) const {
    Sh r = Shell(
        fmt::format("ip netns exec {} cat /sys/class/net/{}/statistics/tx_bytes", Ns(i), dev));
    return std::atol(r.out.c_str());
  }

  /// Limits every rail interface to `rate` (tc tbf), e.g. "200mbit".
  bool LimitRails(const std::string& rate) const {
    for (int i = 0; i < n_; ++i) {
      for (int j = 0; j < n_; ++j) {
        for (int k = 0; k < 2 && i != j; ++k) {
          if (Shell(fmt::format("ip netns exec {} tc qdisc replace dev r{}p{} root tbf rate {} "
                                "burst 256kb latency 100ms",
                                Ns(i), k, j, rate))
                  .code != 0) {
            return false;
          }
        }
      }
    }
    return true;
  }

 private:
  bool Step(const std::string& cmd) {
    Sh r = Shell(cmd);
    if (r.code != 0 && error_.empty()) error_ = cmd + ": " + r.out;
    return r.code == 0;
  }

  bool Setup(bool crossed) {
    Teardown();
    bool ok = Step("mkdir -p " + dir_ + " /run/sshd") &&
              Step(fmt::format("ssh-keygen -q -t ed25519 -N '' -f {0}/id && ssh-keygen -q -t "
                               "ed25519 -N '' -f {0}/hostkey && cp {0}/id.pub {0}/authorized_keys",
                               dir_)) &&
              Step(fmt::format("ip netns add {0} && ip -n {0} link set lo up && ip -n {0} link "
                               "add br0 type bridge && ip -n {0} addr add 10.99.0.100/24 dev br0 "
                               "&& ip -n {0} link set br0 up",
                               Hub()));
    std::ofstream(dir_ + "/sshd_config") << fmt::format(
        "HostKey {0}/hostkey\nAuthorizedKeysFile {0}/authorized_keys\n"
        "PermitRootLogin yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "LogLevel ERROR\n",
        dir_);
    for (int i = 0; ok && i < n_; ++i) {
      ok = Step(fmt::format("ip netns add {0} && ip -n {0} link set lo up && ip -n {1} link add "
                            "m{2} type veth peer name mgmt netns {0} && ip -n {1} link set m{2} "
                            "master br0 up && ip -n {0} addr add 10.99.0.{3}/24 dev mgmt && ip -n "
                            "{0} link set mgmt up",
                            Ns(i), Hub(), i, i + 1)) &&
           Step(fmt::format("ip netns exec {0} /usr/sbin/sshd -f {1}/sshd_config -o "
                            "ListenAddress=10.99.0.{2} -o PidFile={1}/sshd{3}.pid",
                            Ns(i), dir_, i + 1, i));
    }
    for (int i = 0; ok && i < n_; ++i) {
      for (int j = i + 1; ok && j < n_; ++j) {
        for (int k = 0; ok && k < 2; ++k) {
          // Host j's end of cable k; crossed: host 1 swaps its names toward host 0.
          const int jk = (crossed && i == 0 && j == 1) ? 1 - k : k;
          ok =
              Step(fmt::format("ip -n {0} link add r{2}p{3} type veth peer name r{4}p{5} netns "
                               "{1} && ip -n {0} addr add {6}/24 dev r{2}p{3} && ip -n {1} addr "
                               "add {7}/24 dev r{4}p{5} && ip -n {0} link set r{2}p{3} up && ip "
                               "-n {1} link set r{4}p{5} up",
                               Ns(i), Ns(j), k, j, jk, i, RailIp(i, j, k), RailIp(j, i, k)));
        }
      }
    }
    // sshd is up when it accepts a command.
    for (int i = 0; ok && i < n_; ++i) {
      ok =
          Step(fmt::format("for t in 1 2 3 4 5 6 7 8 9 10; do ip netns exec {} ssh -i {}/id -o "
                           "StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o "
                           "LogLevel=ERROR -o BatchMode=yes 10.99.0.{} true && exit 0; sleep "
                           "0.3; done; exit 1",
                           Hub(), dir_, i + 1));
    }
    return ok;
  }

  void Teardown() {
    for (int i = 0; i < n_; ++i) {
      Shell(
          fmt::format("[ -f {0}/sshd{1}.pid ] && kill $(cat {0}/sshd{1}.pid); ip netns pids {2} "
                      "2>/dev/null | xargs -r kill -9; ip netns del {2}",
                      dir_, i, Ns(i)));
    }
    Shell(fmt::format("ip netns pids {0} 2>/dev/null | xargs -r kill -9; ip netns del {0}", Hub()));
    Shell("rm -rf " + dir_);
  }

  int n_;
  std::string prefix_, dir_, error_;
  bool ok_ = false;
};

bool CanRun() {
  return geteuid() == 0 && access("/usr/sbin/sshd", X_OK) == 0 && Shell("ip netns list").code == 0;
}

nlohmann::json JsonOf(const std::string& out) {
  std::smatch m;
  if (!std::regex_search(out, m, std::regex("\\[0\\] (\\{.*\\})"))) return {};
  return nlohmann::json::parse(m[1].str(), nullptr, false);
}

TEST(Netns, ThreeHostsTwoRailsOverSsh) {
  if (!CanRun()) GTEST_SKIP() << "needs root, ip netns and sshd";
  NetnsCluster c(3, false);
  ASSERT_TRUE(c.ok()) << c.error();
  const std::string hf = c.WriteHostfile("hosts.json", /*names=*/true, 2);
  const long before = c.TxBytes(0, "r1p1");
  // 1 MiB stripes: the larger sizes use both rails.
  Sh r =
      c.Launch(fmt::format("commtest --hostfile {} {} --env MESHLM_STRIPE_BYTES=65536 "
                           "--max-bytes 4M --rounds 2 --latency-iters 20 --json",
                           hf, c.SshArgs()));
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = JsonOf(r.out);
  ASSERT_FALSE(j.is_null()) << r.out;
  EXPECT_EQ(j["ranks"], 3);
  EXPECT_EQ(j["wrong_elements"], 0);
  EXPECT_GT(c.TxBytes(0, "r1p1") - before, 1 << 20)
      << "rail 1 between hosts 0 and 1 carried nothing";
  // Over ssh too, output is tagged, stdin reaches every rank, the secret stays off argv.
  // (All namespaces share one process table, so the grep covers ssh, sshd and the launcher.)
  Sh t = c.Launch(fmt::format("launch --hostfile {} {} -- sh -c 'read l; echo \"$MESHLM_RANK "
                              "got $l ${{#MESHLM_SECRET}}\"; echo \"$MESHLM_SECRET\" | grep -l -a "
                              "-F -f - /proc/[0-9]*/cmdline 2>/dev/null && echo LEAKED; true'",
                              hf, c.SshArgs()),
                  60, "hello\n");
  EXPECT_EQ(t.code, 0) << t.out;
  for (int r = 0; r < 3; ++r) {
    EXPECT_NE(t.out.find(fmt::format("[{0}] {0} got hello 64", r)), std::string::npos) << t.out;
  }
  EXPECT_EQ(t.out.find("LEAKED"), std::string::npos) << t.out;
}

TEST(Netns, CrossedRailsAreRefusedNamingTheCellsToSwap) {
  if (!CanRun()) GTEST_SKIP() << "needs root, ip netns and sshd";
  NetnsCluster c(2, true);
  ASSERT_TRUE(c.ok()) << c.error();
  const std::string hf = c.WriteHostfile("hosts.json", /*names=*/true, 2);
  Sh r = c.Launch(fmt::format("commtest --hostfile {} {} --env MESHLM_CONNECT_TIMEOUT=10 "
                              "--max-bytes 4K --phases 0",
                              hf, c.SshArgs()),
                  60);
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("are crossed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("swap hosts[1].links[0][0] and hosts[1].links[0][1]"), std::string::npos)
      << r.out;
}

TEST(Netns, RemoteFailureStopsEveryRemoteRank) {
  if (!CanRun()) GTEST_SKIP() << "needs root, ip netns and sshd";
  NetnsCluster c(3, false);
  ASSERT_TRUE(c.ok()) << c.error();
  const std::string hf = c.WriteHostfile("hosts.json", false, 1);
  // A sleep of a length no other process uses marks the ranks that must be stopped.
  const std::string marker = fmt::format("sleep 3{:05}", getpid() % 100000);
  Sh r = c.Launch(fmt::format("launch --hostfile {} {} -- sh -c 'if [ $MESHLM_RANK = 1 ]; then "
                              "sleep 1; exit 3; fi; {}'",
                              hf, c.SshArgs(), marker),
                  60);
  EXPECT_EQ(r.code, 3) << r.out;
  EXPECT_EQ(Shell("pgrep -f -- '^" + marker + "$'").code, 1) << "remote ranks left running";
}

TEST(Netns, PulledCableFailsBothRanksWithinSeconds) {
  if (!CanRun()) GTEST_SKIP() << "needs root, ip netns and sshd";
  NetnsCluster c(2, false);
  ASSERT_TRUE(c.ok()) << c.error();
  const std::string hf = c.WriteHostfile("hosts.json", false, 1);
  // Latency rounds for a long time; the only link between the ranks goes down after 3 s.
  Shell(fmt::format("(sleep 3; ip -n {} link set r0p0 down) >/dev/null 2>&1 &", c.Ns(1)));
  const double t0 = NowSeconds();
  Sh r = c.Launch(
      fmt::format("commtest --hostfile {} {} --phases 2 --latency-iters 2000000", hf, c.SshArgs()),
      60);
  const double took = NowSeconds() - t0;
  std::printf("job ended %.1f s after start (cable pulled at 3 s):\n%s", took, r.out.c_str());
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_LT(took, 3 + 5) << r.out;  // cable pulled at 3 s; detection and teardown take the rest
  EXPECT_NE(r.out.find("rank 1 (10.99.0.2)"), std::string::npos) << r.out;
}

TEST(Netns, TwoRailsCarryNearlyTwiceOneRail) {
  if (!CanRun()) GTEST_SKIP() << "needs root, ip netns and sshd";
  NetnsCluster c(2, false);
  ASSERT_TRUE(c.ok()) << c.error();
  ASSERT_TRUE(c.LimitRails("400mbit"));
  double gbps[2] = {0, 0};
  for (int rails = 1; rails <= 2; ++rails) {
    const std::string hf = c.WriteHostfile(fmt::format("hosts{}.json", rails), false, rails);
    Sh r = c.Launch(fmt::format("commtest --hostfile {} {} --phases 3 --sizes 8M --rounds 3 --json",
                                hf, c.SshArgs()),
                    90);
    ASSERT_EQ(r.code, 0) << r.out;
    const auto j = JsonOf(r.out);
    ASSERT_FALSE(j.is_null()) << r.out;
    gbps[rails - 1] = j["bandwidth"][0]["algbw_gbps"].get<double>();
  }
  std::printf(
      "rails bandwidth, 8 MiB all_sum, 2 hosts, 400 Mbit/s per rail: 1 rail %.4f GB/s, "
      "2 rails %.4f GB/s, ratio %.2f\n",
      gbps[0], gbps[1], gbps[1] / gbps[0]);
  EXPECT_GT(gbps[1], 1.5 * gbps[0]);
}

}  // namespace
}  // namespace meshlm::testing
