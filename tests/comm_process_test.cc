// Multi-process TCP tests on localhost: every op with 2, 3 and 4 ranks, and the faults a
// cluster meets (a killed rank, a stopped rank, mismatched ops, strangers, garbage).
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "comm/socket.h"
#include "comm_spawn.h"

namespace meshlm::testing {
namespace {

std::string Worker() { return BuildDir() + "/tests/comm_worker"; }

struct Job {
  int n;
  int port = FreePort();
  std::string secret = "0123456789abcdef";
  std::vector<std::string> Env(int rank, const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> env = {"MESHLM_RANK=" + std::to_string(rank),
                                    "MESHLM_WORLD_SIZE=" + std::to_string(n),
                                    fmt::format("MESHLM_COORDINATOR=127.0.0.1:{}", port),
                                    "MESHLM_SECRET=" + secret, "MESHLM_CONNECT_TIMEOUT=20"};
    env.insert(env.end(), extra.begin(), extra.end());
    return env;
  }
};

std::string Log(const std::string& test, int rank) {
  return fmt::format("{}/tests/comm_{}_{}.log", BuildDir(), test, rank);
}

// Spawns n ranks of `scenario`; rank r gets extra env from `extra(r)`.
std::vector<Child*> SpawnJob(ChildSet& set, const Job& job, const std::string& scenario,
                             const std::string& name, const std::vector<std::string>& extra = {}) {
  std::vector<Child*> out;
  for (int r = 0; r < job.n; ++r) {
    out.push_back(&set.Spawn({Worker(), scenario}, job.Env(r, extra), Log(name, r)));
  }
  return out;
}

double Elapsed(const std::string& log) {
  std::smatch m;
  static const std::regex re("elapsed ([0-9.]+) cpu ([0-9.]+)");
  if (std::regex_search(log, m, re)) return std::stod(m[1]);
  return -1;
}

double Cpu(const std::string& log) {
  std::smatch m;
  static const std::regex re("elapsed ([0-9.]+) cpu ([0-9.]+)");
  if (std::regex_search(log, m, re)) return std::stod(m[2]);
  return -1;
}

class AllOps : public ::testing::TestWithParam<int> {};

TEST_P(AllOps, EveryOpIsExact) {
  ChildSet set;
  Job job{GetParam()};
  // A small stripe threshold would need rails; here a small one-shot threshold and chunk
  // make the ring and chunking run at moderate sizes.
  auto kids = SpawnJob(set, job, "ops", fmt::format("ops{}", job.n));
  for (int r = 0; r < job.n; ++r) {
    ASSERT_TRUE(ChildSet::Wait(*kids[r], 60)) << "rank " << r << " hung";
    EXPECT_EQ(kids[r]->ExitCode(), 0) << ReadFileOrEmpty(kids[r]->log);
  }
}

INSTANTIATE_TEST_SUITE_P(Localhost, AllOps, ::testing::Values(2, 3, 4));

TEST(Localhost, JobWrittenForMlxRingStartsUnchanged) {
  ChildSet set;
  const int port = FreePort();
  const std::string hostfile = BuildDir() + "/tests/comm_mlx_ring_hosts.json";
  std::ofstream(hostfile) << fmt::format(R"([["127.0.0.1:{}"], ["127.0.0.1:{}"]])", port, port + 1);
  std::vector<Child*> kids;
  for (int r = 0; r < 2; ++r) {
    kids.push_back(&set.Spawn({Worker(), "ops"},
                              {"MLX_RANK=" + std::to_string(r), "MLX_HOSTFILE=" + hostfile},
                              Log("mlx", r)));
  }
  for (Child* c : kids) {
    ASSERT_TRUE(ChildSet::Wait(*c, 60));
    EXPECT_EQ(c->ExitCode(), 0) << ReadFileOrEmpty(c->log);
  }
}

TEST(Faults, KilledRankFailsEverySurvivorWithinTwoSeconds) {
  ChildSet set;
  Job job{3};
  auto kids = SpawnJob(set, job, "kill", "kill", {"VICTIM=1"});
  for (int r = 0; r < job.n; ++r) ASSERT_TRUE(ChildSet::Wait(*kids[r], 20)) << "rank " << r;
  EXPECT_EQ(kids[1]->ExitCode(), 128 + SIGKILL);
  for (int r : {0, 2}) {
    const std::string log = ReadFileOrEmpty(kids[r]->log);
    EXPECT_EQ(kids[r]->ExitCode(), 1) << log;
    EXPECT_LT(Elapsed(log), 2.0) << log;
    EXPECT_NE(log.find("rank 1 ("), std::string::npos) << log;
  }
}

TEST(Faults, StoppedRankFailsAtTheDeadlineWithoutSpinning) {
  ChildSet set;
  Job job{2};
  auto kids = SpawnJob(set, job, "stop", "stop", {"VICTIM=1", "MESHLM_OP_TIMEOUT=1.5"});
  ASSERT_TRUE(ChildSet::Wait(*kids[0], 20));
  const std::string log = ReadFileOrEmpty(kids[0]->log);
  EXPECT_EQ(kids[0]->ExitCode(), 1) << log;
  EXPECT_NE(log.find("timed out after 1.5 s"), std::string::npos) << log;
  EXPECT_NE(log.find("rank 1 ("), std::string::npos) << log;
  EXPECT_GE(Elapsed(log), 1.4) << log;
  EXPECT_LT(Cpu(log), 0.3) << "survivor spun while waiting: " << log;
  kill(kids[1]->pid, SIGKILL);
}

TEST(Faults, MismatchedOpsFailWithinOneSecondNamingBothCalls) {
  ChildSet set;
  Job job{3};
  auto kids = SpawnJob(set, job, "mismatch", "mismatch", {"VICTIM=2"});
  for (int r = 0; r < job.n; ++r) {
    ASSERT_TRUE(ChildSet::Wait(*kids[r], 20)) << "rank " << r;
    const std::string log = ReadFileOrEmpty(kids[r]->log);
    EXPECT_EQ(kids[r]->ExitCode(), 1) << log;
    EXPECT_LT(Elapsed(log), 1.0) << log;
  }
  const std::string log2 = ReadFileOrEmpty(kids[2]->log);
  EXPECT_NE(log2.find("all_gather(64 B) #1"), std::string::npos) << log2;
  EXPECT_NE(log2.find("all_sum(F32, 64 B) #1"), std::string::npos) << log2;
}

TEST(Faults, RanksWaitingForEachOtherFailWithinOneSecond) {
  for (const char* scenario : {"recvrecv", "roots"}) {
    ChildSet set;
    Job job{2};
    auto kids = SpawnJob(set, job, scenario, scenario);
    for (int r = 0; r < job.n; ++r) {
      ASSERT_TRUE(ChildSet::Wait(*kids[r], 20)) << scenario << " rank " << r;
      const std::string log = ReadFileOrEmpty(kids[r]->log);
      EXPECT_EQ(kids[r]->ExitCode(), 1) << log;
      EXPECT_LT(Elapsed(log), 1.0) << log;
      EXPECT_NE(log.find("wait for each other"), std::string::npos) << log;
    }
  }
}

TEST(Faults, LatePartnersAreNotMistakenForADesync) {
  ChildSet set;
  Job job{3};
  auto kids = SpawnJob(set, job, "slow", "slow");
  for (int r = 0; r < job.n; ++r) {
    ASSERT_TRUE(ChildSet::Wait(*kids[r], 30)) << "rank " << r;
    EXPECT_EQ(kids[r]->ExitCode(), 0) << ReadFileOrEmpty(kids[r]->log);
  }
}

TEST(Faults, StrangersAndWrongWorldSizesAreRefused) {
  ChildSet set;
  Job job{2};
  Child& r0 = set.Spawn({Worker(), "barrier"}, job.Env(0), Log("stranger", 0));
  Job wrong = job;
  wrong.secret = "not-the-secret";
  Child& stranger = set.Spawn({Worker(), "barrier"}, wrong.Env(1), Log("stranger", 9));
  ASSERT_TRUE(ChildSet::Wait(stranger, 15));
  EXPECT_EQ(stranger.ExitCode(), 1);
  EXPECT_NE(ReadFileOrEmpty(stranger.log).find("MESHLM_SECRET"), std::string::npos)
      << ReadFileOrEmpty(stranger.log);
  Child& big =
      set.Spawn({Worker(), "barrier"}, job.Env(1, {"MESHLM_WORLD_SIZE=3"}), Log("stranger", 8));
  ASSERT_TRUE(ChildSet::Wait(big, 15));
  EXPECT_NE(ReadFileOrEmpty(big.log).find("believes the world has 3"), std::string::npos)
      << ReadFileOrEmpty(big.log);
  Child& r1 = set.Spawn({Worker(), "barrier"}, job.Env(1), Log("stranger", 1));
  ASSERT_TRUE(ChildSet::Wait(r0, 20));
  ASSERT_TRUE(ChildSet::Wait(r1, 20));
  const std::string log0 = ReadFileOrEmpty(r0.log);
  EXPECT_EQ(r0.ExitCode(), 0) << log0;
  EXPECT_EQ(r1.ExitCode(), 0) << ReadFileOrEmpty(r1.log);
  EXPECT_NE(log0.find("does not hold this job's MESHLM_SECRET"), std::string::npos) << log0;
}

TEST(Faults, DuplicateRankIsRefusedAndTheJobGoesOn) {
  ChildSet set;
  Job job{3};
  Child& r0 = set.Spawn({Worker(), "barrier"}, job.Env(0), Log("dup", 0));
  Child& r1 = set.Spawn({Worker(), "barrier"}, job.Env(1), Log("dup", 1));
  // Rank 0 admits rank 1 before the impostor connects.
  for (int i = 0; i < 500 && ReadFileOrEmpty(Log("dup", 0)).empty(); ++i) usleep(2000);
  usleep(300000);
  Child& dup = set.Spawn({Worker(), "barrier"}, job.Env(1), Log("dup", 9));
  ASSERT_TRUE(ChildSet::Wait(dup, 15));
  EXPECT_EQ(dup.ExitCode(), 1);
  EXPECT_NE(ReadFileOrEmpty(dup.log).find("rank 1 has already joined"), std::string::npos)
      << ReadFileOrEmpty(dup.log);
  Child& r2 = set.Spawn({Worker(), "barrier"}, job.Env(2), Log("dup", 2));
  for (Child* c : {&r0, &r1, &r2}) {
    ASSERT_TRUE(ChildSet::Wait(*c, 20));
    EXPECT_EQ(c->ExitCode(), 0) << ReadFileOrEmpty(c->log);
  }
}

// Sends `bytes` to 127.0.0.1:port and closes.
void SendGarbage(int port, const std::string& bytes) {
  auto fd = comm::ConnectTcp("127.0.0.1", port, NowSeconds() + 5, "garbage target");
  ASSERT_TRUE(fd.ok()) << fd.status().message();
  (void)comm::WriteAll(fd->get(), bytes.data(), bytes.size(), NowSeconds() + 2, "target");
}

TEST(Faults, GarbageToCoordinatorAndMeshPortIsRejected) {
  ChildSet set;
  Job job{2};
  Child& r0 =
      set.Spawn({Worker(), "barrier"}, job.Env(0, {"MESHLM_LOG_LEVEL=debug"}), Log("garbage", 0));
  // Rank 0 logs its mesh port before it starts the coordinator.
  int mesh_port = 0;
  for (int i = 0; i < 400 && mesh_port == 0; ++i) {
    std::smatch m;
    const std::string log = ReadFileOrEmpty(r0.log);
    static const std::regex re("mesh port ([0-9]+)");
    if (std::regex_search(log, m, re)) mesh_port = std::stoi(m[1]);
    usleep(10000);
  }
  ASSERT_NE(mesh_port, 0) << ReadFileOrEmpty(r0.log);
  usleep(100000);
  SendGarbage(job.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  SendGarbage(job.port, std::string(200, '\xff'));
  SendGarbage(mesh_port, std::string("MESHLMA1") + std::string(300, '\x07'));
  SendGarbage(mesh_port, "hello");
  Child& r1 = set.Spawn({Worker(), "barrier"}, job.Env(1), Log("garbage", 1));
  ASSERT_TRUE(ChildSet::Wait(r0, 30));
  ASSERT_TRUE(ChildSet::Wait(r1, 30));
  const std::string log0 = ReadFileOrEmpty(r0.log);
  EXPECT_EQ(r0.ExitCode(), 0) << log0;
  EXPECT_EQ(r1.ExitCode(), 0) << ReadFileOrEmpty(r1.log);
  EXPECT_NE(log0.find("coordinator rejected"), std::string::npos) << log0;
  EXPECT_NE(log0.find("rank 0 rejected mesh connection"), std::string::npos) << log0;
}

}  // namespace
}  // namespace meshlm::testing
