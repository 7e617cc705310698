// `meshlm verify`, `meshlm sync` and the start gate against network-namespace hosts, each
// with its own sshd and its own model folder (a bind mount only its sshd sees), so that
// hosts can hold different copies of a model as separate machines would. Skipped when not
// root or without sshd; the checks that need no hosts run everywhere.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "base/clock.h"
#include "netns_cluster.h"

namespace meshlm::testing {
namespace {

std::string Meshlm() { return BuildDir() + "/src/cli/meshlm"; }

// A model folder of fresh random files: 8 MiB of weights and two small files.
void MakeModel(const std::string& dir) {
  Sh r =
      Shell(fmt::format("mkdir -p {0}/sub && head -c 8388608 /dev/urandom > "
                        "{0}/model.safetensors && head -c 3000 /dev/urandom | base64 > "
                        "{0}/sub/tokenizer.json && echo '{{\"hidden_size\": 64}}' > "
                        "{0}/config.json",
                        dir));
  ASSERT_EQ(r.code, 0) << r.out;
}

std::string Sha(const std::string& file) {
  return Shell("sha256sum " + file + " | cut -c1-64").out;
}

long RxBytes(const NetnsCluster& c, int i) {
  return std::atol(c.OnHost(i, "cat /sys/class/net/mgmt/statistics/rx_bytes").out.c_str());
}

class VerifyNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CanRun()) GTEST_SKIP() << "needs root, ip netns and sshd";
  }
  std::string Verify(const NetnsCluster& c, const std::string& hf, const std::string& model) {
    return fmt::format("{} verify --hostfile {} --model {} {} --timeout 20", Meshlm(), hf, model,
                       c.SshArgs());
  }
  std::string Sync(const NetnsCluster& c, const std::string& hf, const std::string& model,
                   int stall_s = 10) {
    return fmt::format("{} sync --hostfile {} --model {} {} --stall {}", Meshlm(), hf, model,
                       c.SshArgs(), stall_s);
  }
};

TEST_F(VerifyNetns, VerifyFindsADifferentOrMissingModelAndSyncFixesIt) {
  NetnsCluster c(
      3, false, [](int, int) { return 1; }, /*private_models=*/true);
  ASSERT_TRUE(c.ok()) << c.error();
  const std::string hf = c.WriteHostfile("hosts.json", /*names=*/true, 1);
  const std::string model = c.ModelRoot() + "/m";  // the same path on every host
  MakeModel(c.HostDir(0) + "/m");
  for (int i = 1; i < 3; ++i) Shell(fmt::format("cp -r {}/m {}/", c.HostDir(0), c.HostDir(i)));

  Sh ok = c.InHub(Verify(c, hf, model));
  EXPECT_EQ(ok.code, 0) << ok.out;
  EXPECT_NE(ok.out.find("all 3 hosts ok"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("2/2"), std::string::npos) << "each host's two links present\n" << ok.out;

  // Host 2 holds another model.safetensors (one byte flipped), host 1 none at all.
  ASSERT_EQ(Shell(fmt::format("printf meshlm-different | dd of={}/m/model.safetensors bs=1 "
                              "seek=4096 conv=notrunc 2>/dev/null",
                              c.HostDir(2)))
                .code,
            0);
  ASSERT_NE(Sha(c.HostDir(2) + "/m/model.safetensors"), Sha(c.HostDir(0) + "/m/model.safetensors"));
  Shell(fmt::format("rm -rf {}/m", c.HostDir(1)));
  Sh bad = c.InHub(Verify(c, hf, model));
  EXPECT_EQ(bad.code, 1) << bad.out;
  EXPECT_NE(bad.out.find("FAIL host 2 (10.99.0.3): model differs from host 0's: "
                         "model.safetensors: sha256"),
            std::string::npos)
      << bad.out;
  EXPECT_NE(bad.out.find("FAIL host 1 (10.99.0.2): model missing"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("meshlm sync --hostfile"), std::string::npos) << bad.out;
  EXPECT_EQ(bad.out.find("FAIL host 0"), std::string::npos) << bad.out;

  // No copy in the hub: sync relays host 0's copy to hosts 1 and 2.
  const long rx1 = RxBytes(c, 1), rx2 = RxBytes(c, 2);
  const double t0 = NowSeconds();
  Sh s = c.InHub(Sync(c, hf, model), 120);
  const double secs = NowSeconds() - t0;
  ASSERT_EQ(s.code, 0) << s.out;
  EXPECT_NE(s.out.find("source: host 0 (10.99.0.1)"), std::string::npos) << s.out;
  for (const char* f : {"model.safetensors", "config.json", "sub/tokenizer.json"}) {
    for (int i = 1; i < 3; ++i) {
      EXPECT_EQ(Sha(fmt::format("{}/m/{}", c.HostDir(i), f)),
                Sha(fmt::format("{}/m/{}", c.HostDir(0), f)))
          << "host " << i << " " << f;
    }
  }
  // Host 2 only lacked one file: the others were not sent again.
  EXPECT_GT(RxBytes(c, 1) - rx1, 8 << 20);
  EXPECT_GT(RxBytes(c, 2) - rx2, 8 << 20);
  EXPECT_LT(RxBytes(c, 2) - rx2, (8 << 20) + (1 << 20));
  std::printf("sync of 16.8 MB (relayed from host 0) over veth: %.2f s\n", secs);
  Sh again = c.InHub(Verify(c, hf, model));
  EXPECT_EQ(again.code, 0) << again.out;
  Sh nothing = c.InHub(Sync(c, hf, model));
  EXPECT_EQ(nothing.code, 0) << nothing.out;
  EXPECT_NE(nothing.out.find("0 hosts updated, 0 files"), std::string::npos) << nothing.out;
}

TEST_F(VerifyNetns, SyncResumesAPartialFileAndChecksItOnArrival) {
  NetnsCluster c(
      2, false, [](int, int) { return 1; }, /*private_models=*/true);
  ASSERT_TRUE(c.ok()) << c.error();
  const std::string hf = c.WriteHostfile("hosts.json", false, 1);
  const std::string model = c.ModelRoot() + "/m";
  MakeModel(c.HostDir(0) + "/m");
  // This time the hub holds the copy too (the operator's machine is the source).
  Shell(fmt::format("cp -r {}/m {}/", c.HostDir(0), c.ModelRoot()));

  // An interrupted earlier run left 6 of the 8 MiB.
  Shell(
      fmt::format("mkdir -p {1}/m && head -c 6291456 {0}/m/model.safetensors > "
                  "{1}/m/model.safetensors.meshlm-part",
                  c.HostDir(0), c.HostDir(1)));
  long rx = RxBytes(c, 1);
  Sh s = c.InHub(Sync(c, hf, model), 120);
  ASSERT_EQ(s.code, 0) << s.out;
  EXPECT_NE(s.out.find("source: this machine"), std::string::npos) << s.out;
  long got = RxBytes(c, 1) - rx;
  EXPECT_GT(got, 2 << 20);
  EXPECT_LT(got, 3 << 20) << "the 6 MiB already there were sent again";
  EXPECT_EQ(Sha(c.HostDir(1) + "/m/model.safetensors"), Sha(c.HostDir(0) + "/m/model.safetensors"));
  EXPECT_NE(Shell(fmt::format("ls {}/m/model.safetensors.meshlm-part", c.HostDir(1))).code, 0);

  // A partial file with wrong bytes: caught by the hash on arrival, sent again in full.
  Shell(
      fmt::format("rm {0}/m/model.safetensors && head -c 5000000 /dev/urandom > "
                  "{0}/m/model.safetensors.meshlm-part",
                  c.HostDir(1)));
  Sh r = c.InHub(Sync(c, hf, model), 120);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("sha256 mismatch on arrival"), std::string::npos) << r.out;
  EXPECT_EQ(Sha(c.HostDir(1) + "/m/model.safetensors"), Sha(c.HostDir(0) + "/m/model.safetensors"));

  // Killed mid-copy on a slow link, then run again: it completes from where it stopped.
  Shell(fmt::format("rm -rf {}/m", c.HostDir(1)));
  ASSERT_EQ(Shell(fmt::format("ip netns exec {} tc qdisc replace dev m1 root tbf rate 16mbit "
                              "burst 64kb latency 200ms",
                              c.Hub()))
                .code,
            0);
  // Killed once more than 1 MiB has arrived; then what was in flight lands.
  c.InHub(fmt::format("{} & p=$!; for i in $(seq 300); do s=$( (wc -c < {}) 2>/dev/null || "
                      "echo 0); [ \"$s\" -gt 1048576 ] && break; sleep 0.1; done; kill -9 $p; "
                      "wait $p; sleep 1",
                      Sync(c, hf, model), c.HostDir(1) + "/m/model.safetensors.meshlm-part"),
          60);
  const long part = std::atol(
      Shell(fmt::format("wc -c < {}/m/model.safetensors.meshlm-part", c.HostDir(1))).out.c_str());
  EXPECT_GT(part, 1 << 20) << "the killed run left nothing to resume";
  EXPECT_LT(part, 8 << 20);
  Shell(fmt::format("ip netns exec {} tc qdisc del dev m1 root", c.Hub()));
  rx = RxBytes(c, 1);
  Sh resumed = c.InHub(Sync(c, hf, model), 120);
  ASSERT_EQ(resumed.code, 0) << resumed.out;
  got = RxBytes(c, 1) - rx;
  EXPECT_LT(got, (8 << 20) - part + (1 << 20)) << "resumed from " << part;
  EXPECT_EQ(Sha(c.HostDir(1) + "/m/model.safetensors"), Sha(c.HostDir(0) + "/m/model.safetensors"));
  Sh v = c.InHub(Verify(c, hf, model));
  EXPECT_EQ(v.code, 0) << v.out;

  // A link that stops carrying anything mid-copy: sync fails within the stall limit.
  Shell(fmt::format("rm -rf {}/m", c.HostDir(1)));
  Shell(
      fmt::format("ip netns exec {} tc qdisc replace dev m1 root tbf rate 16mbit burst 64kb "
                  "latency 200ms",
                  c.Hub()));
  const double t0 = NowSeconds();
  Sh stalled = c.InHub(
      fmt::format("{} > out 2>&1 & p=$!; for i in $(seq 300); do s=$( (wc -c < {}) "
                  "2>/dev/null || echo 0); [ \"$s\" -gt 1048576 ] && break; sleep 0.1; done; "
                  "ip link set m1 down; wait $p; echo exit=$?; cat out",
                  Sync(c, hf, model, 2), c.HostDir(1) + "/m/model.safetensors.meshlm-part"),
      60);
  EXPECT_LT(NowSeconds() - t0, 20.0);
  EXPECT_NE(stalled.out.find("exit=1"), std::string::npos) << stalled.out;
  EXPECT_NE(stalled.out.find("'model.safetensors' made no progress for 2 s"), std::string::npos)
      << stalled.out;
  Shell(fmt::format("ip netns exec {} tc qdisc del dev m1 root", c.Hub()));
  Shell(fmt::format("ip -n {} link set m1 up", c.Hub()));
}

TEST_F(VerifyNetns, SyncRunOnHost0SendsOverTheLink) {
  NetnsCluster c(
      2, false, [](int, int) { return 1; }, /*private_models=*/true);
  ASSERT_TRUE(c.ok()) << c.error();
  const std::string hf = c.WriteHostfile("hosts.json", /*names=*/false, 1);
  MakeModel(c.HostDir(0) + "/m");
  // Host 1 also answers ssh on its end of the cable (in the mount namespace of its sshd).
  const std::string rail = c.RailIp(1, 0, 0);
  ASSERT_EQ(Shell(fmt::format("nsenter -t $(cat {0}/sshd1.pid) -m -n /usr/sbin/sshd -f "
                              "{0}/sshd_config -o ListenAddress={1} -o PidFile={0}/sshd1r.pid",
                              c.dir(), rail))
                .code,
            0);
  const long rail_rx =
      std::atol(c.OnHost(1, "cat /sys/class/net/r0p0/statistics/rx_bytes").out.c_str());
  const long mgmt_rx = RxBytes(c, 1);
  Sh r = c.InHub(fmt::format("ssh -i {0}/id -oStrictHostKeyChecking=no "
                             "-oUserKnownHostsFile=/dev/null -oLogLevel=ERROR -oBatchMode=yes "
                             "10.99.0.1 {1}",
                             c.dir(), Sync(c, hf, c.ModelRoot() + "/m")),
                 120);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("host 1 (10.99.0.2): over the link from host 0, via " + rail),
            std::string::npos)
      << r.out;
  const long over_rail =
      std::atol(c.OnHost(1, "cat /sys/class/net/r0p0/statistics/rx_bytes").out.c_str()) - rail_rx;
  EXPECT_GT(over_rail, 8 << 20);
  EXPECT_LT(RxBytes(c, 1) - mgmt_rx, 1 << 20) << "the model went over the management network";
  EXPECT_EQ(Sha(c.HostDir(1) + "/m/model.safetensors"), Sha(c.HostDir(0) + "/m/model.safetensors"));
}

TEST_F(VerifyNetns, HostWithoutSshdFailsItsRowInBoundedTime) {
  NetnsCluster c(3, false, [](int, int) { return 1; });
  ASSERT_TRUE(c.ok()) << c.error();
  const std::string hf = c.WriteHostfile("hosts.json", true, 1);
  ASSERT_TRUE(c.StopSshd(2));
  const double t0 = NowSeconds();
  Sh r = c.InHub(fmt::format("{} verify --hostfile {} {} --timeout 10", Meshlm(), hf, c.SshArgs()),
                 60);
  EXPECT_LT(NowSeconds() - t0, 15.0);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("FAIL host 2 (10.99.0.3): ssh refused: start sshd"), std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("FAIL host 0"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("FAIL host 1"), std::string::npos) << r.out;
  // A hostfile naming an interface the host lacks.
  Shell(fmt::format("sed -i 's/\"r0p1\"/\"nosuch0\"/' {}", hf));
  Sh d = c.InHub(fmt::format("{} verify --hostfile {} {} --timeout 10", Meshlm(), hf, c.SshArgs()),
                 60);
  EXPECT_EQ(d.code, 1) << d.out;
  EXPECT_NE(d.out.find("FAIL host 0 (10.99.0.1): devices named in the hostfile are missing "
                       "here: nosuch0"),
            std::string::npos)
      << d.out;
}

TEST_F(VerifyNetns, GateRefusesAJobWhoseRanksHoldDifferentModels) {
  NetnsCluster c(
      2, false, [](int, int) { return 1; }, /*private_models=*/true);
  ASSERT_TRUE(c.ok()) << c.error();
  const std::string hf = c.WriteHostfile("hosts.json", false, 1);
  for (int i = 0; i < 2; ++i) {
    Shell(fmt::format("cp -r {} {}/m", MESHLM_DEFAULT_MODEL_DIR, c.HostDir(i)));
  }
  const std::string gen = fmt::format(
      "launch --hostfile {} {} -- {} generate --model {}/m "
      "--ids 1,2,3 --max-tokens 2",
      hf, c.SshArgs(), Meshlm(), c.ModelRoot());
  Sh same = c.Launch(gen, 60);
  EXPECT_EQ(same.code, 0) << same.out;
  // Rank 1's host: a model.safetensors of the same size with one byte changed.
  ASSERT_EQ(Shell(fmt::format("printf meshlm-different | dd of={}/m/model.safetensors bs=1 "
                              "seek=100000 conv=notrunc 2>/dev/null",
                              c.HostDir(1)))
                .code,
            0);
  Sh diff = c.Launch(gen, 60);
  EXPECT_NE(diff.code, 0) << diff.out;
  EXPECT_NE(diff.out.find("refusing to start"), std::string::npos) << diff.out;
  EXPECT_NE(diff.out.find("rank 1 ("), std::string::npos) << diff.out;
  EXPECT_NE(diff.out.find("model.safetensors: sha256"), std::string::npos) << diff.out;
  EXPECT_EQ(diff.out.find("[generate]"), std::string::npos) << "it ran anyway\n" << diff.out;
}

// Hosts that are this machine run the probe without ssh: verify's logic without netns.
TEST(VerifyLocal, BadInputAndLocalHosts) {
  const std::string dir = fmt::format("/tmp/meshlm-verify-{}", getpid());
  Shell(
      fmt::format("rm -rf {0} && mkdir -p {0} && cp -r {1} {0}/m", dir, MESHLM_DEFAULT_MODEL_DIR));
  const std::string hf = dir + "/hosts.json";
  std::ofstream(hf) << R"([{"ssh": "", "ips": ["127.0.0.1"]}, {"ssh": "localhost"}])";
  std::ofstream(dir + "/broken.json") << R"([{"ssh": "a", "rdma": 3}])";
  Sh missing = Shell(fmt::format("{} verify --hostfile {}/none.json", Meshlm(), dir));
  EXPECT_EQ(missing.code, 2) << missing.out;
  EXPECT_NE(missing.out.find(dir + "/none.json"), std::string::npos) << missing.out;
  Sh broken = Shell(fmt::format("{} verify --hostfile {}/broken.json", Meshlm(), dir));
  EXPECT_EQ(broken.code, 2) << broken.out;
  EXPECT_NE(broken.out.find("rdma"), std::string::npos) << broken.out;

  Sh ok = Shell(fmt::format("{} verify --hostfile {} --model {}/m", Meshlm(), hf, dir));
  EXPECT_EQ(ok.code, 0) << ok.out;
  EXPECT_NE(ok.out.find("all 2 hosts ok"), std::string::npos) << ok.out;
  // A corrupt manifest cache is rebuilt, with a warning.
  std::ofstream(dir + "/m/.meshlm-manifest.json")
      << "{\"format\": \"meshlm-manifest\", \"files\": 7}";
  Sh rebuilt = Shell(fmt::format("{} verify --hostfile {} --model {}/m", Meshlm(), hf, dir));
  EXPECT_EQ(rebuilt.code, 0) << rebuilt.out;
  EXPECT_NE(rebuilt.out.find("not a meshlm manifest"), std::string::npos) << rebuilt.out;
  Sh up = Shell(fmt::format("{} sync --hostfile {} --model {}/m", Meshlm(), hf, dir));
  EXPECT_EQ(up.code, 0) << up.out;
  EXPECT_NE(up.out.find("0 hosts updated, 0 files"), std::string::npos) << up.out;

  Sh nomodel = Shell(fmt::format("{} verify --hostfile {} --model {}/nomodel", Meshlm(), hf, dir));
  EXPECT_EQ(nomodel.code, 1) << nomodel.out;
  EXPECT_NE(nomodel.out.find("FAIL host 1 (localhost): model missing"), std::string::npos)
      << nomodel.out;
  Sh nosync = Shell(fmt::format("{} sync --hostfile {} --model {}/nomodel", Meshlm(), hf, dir));
  EXPECT_EQ(nosync.code, 1) << nosync.out;
  EXPECT_NE(nosync.out.find("no copy of"), std::string::npos) << nosync.out;
  Sh noexe = Shell(
      fmt::format("{} verify --hostfile {} --remote-meshlm /nonexistent/meshlm", Meshlm(), hf));
  EXPECT_EQ(noexe.code, 1) << noexe.out;
  EXPECT_NE(noexe.out.find("meshlm not found at '/nonexistent/meshlm'"), std::string::npos)
      << noexe.out;
  // A host whose meshlm is another version.
  const std::string version = Shell(Meshlm() + " --version").out;
  std::ofstream(dir + "/other") << fmt::format(
      "#!/bin/sh\n{} \"$@\" | sed 's/\"version\":\"[^\"]*\"/\"version\":\"9.9.9\"/'\n", Meshlm());
  Shell("chmod +x " + dir + "/other");
  Sh other =
      Shell(fmt::format("{} verify --hostfile {} --remote-meshlm {}/other", Meshlm(), hf, dir));
  EXPECT_EQ(other.code, 1) << other.out;
  EXPECT_NE(other.out.find("FAIL host 1 (localhost): meshlm 9.9.9 ≠ " +
                           version.substr(0, version.find('\n')) + " here: install the same build"),
            std::string::npos)
      << other.out;
  Shell("rm -rf " + dir);
}

TEST(Gate, AProcessAloneWithAHostfileOfSeveralHostsIsRefused) {
  const std::string hf = fmt::format("/tmp/meshlm-gate-{}.json", getpid());
  std::ofstream(hf) << R"([{"ssh": "a", "ips": ["10.0.0.1"]}, {"ssh": "b", "ips": ["10.0.0.2"]}])";
  Sh r = Shell(fmt::format("MLX_HOSTFILE={} {} generate --model {} --ids 1 --max-tokens 1", hf,
                           Meshlm(), MESHLM_DEFAULT_MODEL_DIR));
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("runs alone (a group of 1), but MLX_HOSTFILE=" + hf + " lists 2 hosts"),
            std::string::npos)
      << r.out;
  Sh mpi =
      Shell(fmt::format("OMPI_COMM_WORLD_SIZE=4 {} generate --model {} --ids 1 "
                        "--max-tokens 1",
                        Meshlm(), MESHLM_DEFAULT_MODEL_DIR));
  EXPECT_NE(mpi.code, 0) << mpi.out;
  EXPECT_NE(mpi.out.find("OMPI_COMM_WORLD_SIZE=4"), std::string::npos) << mpi.out;
  // Alone without such a hostfile, it runs.
  Sh alone = Shell(fmt::format("{} generate --model {} --ids 1 --max-tokens 1", Meshlm(),
                               MESHLM_DEFAULT_MODEL_DIR));
  EXPECT_EQ(alone.code, 0) << alone.out;
  std::remove(hf.c_str());
}

TEST(Gate, ALocalTwoRankJobPassesQuickly) {
  Sh r =
      Shell(fmt::format("MESHLM_LOG_LEVEL=debug {0} launch -n 2 -- {0} generate --model {1} "
                        "--ids 1,2 --max-tokens 2",
                        Meshlm(), MESHLM_DEFAULT_MODEL_DIR));
  ASSERT_EQ(r.code, 0) << r.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m,
                                std::regex("\\[gate\\] rank 0: links ([0-9.]+) ms \\(all_sum "
                                           "latency ([0-9]+) us\\), model manifest ([0-9.]+) ms")))
      << r.out;
  std::printf("gate on a local 2-rank job: links %s ms (latency %s us), manifest %s ms\n",
              m[1].str().c_str(), m[2].str().c_str(), m[3].str().c_str());
  EXPECT_LT(std::stod(m[1].str()) + std::stod(m[3].str()), 1000.0) << r.out;
  // The pair's own probe: a latency and a bandwidth, both measured (above zero).
  ASSERT_TRUE(std::regex_search(
      r.out, m, std::regex("\\[gate\\] link 0-1: ([0-9.]+) us, ([0-9.]+) GB/s")))
      << r.out;
  EXPECT_GT(std::stod(m[1].str()), 0.0) << r.out;
  EXPECT_GT(std::stod(m[2].str()), 0.0) << r.out;
}

}  // namespace
}  // namespace meshlm::testing
