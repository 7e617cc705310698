// Multi-host tests in Linux network namespaces: each "host" is a namespace with sshd,
// joined to the others by two veth pairs per pair of hosts (two rails), and to a hub
// namespace (where the launcher runs) by a management bridge. Everything the test creates
// is removed in TearDown, also when a check fails. Skipped when not root or without sshd.
#include <gtest/gtest.h>

#include "netns_cluster.h"

namespace meshlm::testing {
namespace {

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

// `meshlm serve --hostfile` across two hosts (tp=2): rank 0's host answers HTTP at the
// address given, the answer equals one process's, and `meshlm stop` on the operator's
// machine stops every rank on every host.
TEST(Netns, ServeAcrossTwoHostsAnswersAndStopsEveryRank) {
  if (!CanRun()) GTEST_SKIP() << "needs root, ip netns and sshd";
  NetnsCluster c(2, false, [](int, int) { return 1; });
  ASSERT_TRUE(c.ok()) << c.error();
  const std::string hf = c.WriteHostfile("hosts.json", /*names=*/false, 1);
  const std::string meshlm = BuildDir() + "/src/cli/meshlm";
  const std::string model = BuildDir() + "/servermodel";
  const int port = 20000 + getpid() % 20000;
  std::string ssh = c.SshArgs();
  Sh up = c.InHub(fmt::format("{} serve --hostfile {} {} --model {} --tp 2 --threads 1 --host "
                              "10.99.0.1 --port {} --ready-timeout 60 --detach",
                              meshlm, hf, ssh, model, port),
                  90);
  ASSERT_EQ(up.code, 0) << up.out;
  const std::string url = fmt::format("http://10.99.0.1:{}", port);
  Sh health = c.InHub(fmt::format("curl -sS --max-time 10 {}/health", url));
  EXPECT_NE(health.out.find("\"ranks\":2"), std::string::npos) << health.out;
  Sh answer = c.InHub(
      fmt::format("curl -sS --max-time 30 {}/v1/completions -H 'Content-Type: application/json' -d "
                  "'{{\"prompt\": \"Once upon\", \"max_tokens\": 12, \"temperature\": 0, "
                  "\"ignore_eos\": true}}'",
                  url));
  const auto j = nlohmann::json::parse(answer.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << answer.out;
  ASSERT_TRUE(j.contains("choices")) << answer.out;
  const std::string text = j["choices"][0]["text"];
  // The same greedy continuation from one process on this machine.
  Sh local =
      Shell(fmt::format("{} generate --model {} --prompt 'Once upon' --max-tokens 12 "
                        "--temperature 0 --ignore-eos 2>/dev/null",
                        meshlm, model));
  ASSERT_EQ(local.code, 0) << local.out;
  EXPECT_NE(local.out.find("Once upon" + text), std::string::npos)
      << "server: " << text << "\nlocal: " << local.out;
  // Every rank of this server carries its port on its command line.
  const std::string ranks =
      fmt::format("pgrep -f -- '[s]erve --model {} --host 10.99.0.1 --port {}'", model, port);
  EXPECT_EQ(Shell(ranks).out.size() > 0, true) << "no rank found by: " << ranks;
  Sh stop = c.InHub(fmt::format("{} stop --port {}", meshlm, port), 60);
  EXPECT_EQ(stop.code, 0) << stop.out;
  bool gone = false;
  for (int i = 0; i < 50 && !gone; ++i) {
    gone = Shell(ranks).code == 1;
    if (!gone) usleep(100000);
  }
  EXPECT_TRUE(gone) << "ranks left running:\n" << Shell("ps -ef | grep 'meshlm serve'").out;
}

// A launcher killed with SIGKILL (no chance to stop anything) leaves no rank running on
// any host: its ssh clients die with it, and each remote rank sees its output's reader
// gone and stops.
TEST(Netns, KilledLauncherLeavesNoRemoteRankRunning) {
  if (!CanRun()) GTEST_SKIP() << "needs root, ip netns and sshd";
  NetnsCluster c(2, false, [](int, int) { return 1; });
  ASSERT_TRUE(c.ok()) << c.error();
  const std::string hf = c.WriteHostfile("hosts.json", /*names=*/false, 1);
  const std::string meshlm = BuildDir() + "/src/cli/meshlm";
  const std::string model = BuildDir() + "/servermodel";
  const int port = 20000 + (getpid() + 7) % 20000;
  Sh up = c.InHub(fmt::format("setsid {} serve --hostfile {} {} --model {} --tp 2 --threads 1 "
                              "--host 10.99.0.1 --port {} >serve.log 2>&1 </dev/null & echo $!",
                              meshlm, hf, c.SshArgs(), model, port));
  const pid_t launcher = std::atoi(up.out.c_str());
  ASSERT_GT(launcher, 0) << up.out;
  Sh ready = c.InHub(fmt::format("for i in $(seq 600); do curl -s --max-time 1 "
                                 "http://10.99.0.1:{}/health >/dev/null && exit 0; sleep 0.1; "
                                 "done; exit 1",
                                 port),
                     90);
  const std::string ranks =
      fmt::format("pgrep -f -- '[s]erve --model {} --host 10.99.0.1 --port {}'", model, port);
  if (ready.code != 0) {
    ::kill(launcher, SIGKILL);
    Shell(ranks + " | xargs -r kill -9");
    FAIL() << "the server did not start:\n" << ReadFileOrEmpty(c.dir() + "/serve.log");
  }
  ASSERT_EQ(Shell(ranks + " | wc -l").out, "2\n");
  ::kill(launcher, SIGKILL);
  const double t0 = NowSeconds();
  bool gone = false;
  while (!gone && NowSeconds() - t0 < 10) {
    gone = Shell(ranks).code == 1;
    if (!gone) usleep(20000);
  }
  const double took = NowSeconds() - t0;
  std::printf("remote ranks gone %.2f s after their launcher was killed\n", took);
  EXPECT_TRUE(gone) << "ranks left running:\n" << Shell("ps -ef | grep 'meshlm serve'").out;
  EXPECT_LT(took, 2.0);
  Shell(ranks + " | xargs -r kill -9");
}

}  // namespace
}  // namespace meshlm::testing
