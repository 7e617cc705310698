// Multi-process TCP tests on localhost: every op with 2, 3 and 4 ranks, and the faults a
// cluster meets (a killed rank, a stopped rank, mismatched ops, strangers, garbage).
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <regex>
#include <thread>

#include "comm/auth.h"
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

TEST(Faults, RanksWaitingForEachOtherFailFast) {
  for (const char* scenario : {"recvrecv", "roots"}) {
    ChildSet set;
    Job job{2};
    auto kids = SpawnJob(set, job, scenario, scenario);
    for (int r = 0; r < job.n; ++r) {
      ASSERT_TRUE(ChildSet::Wait(*kids[r], 20)) << scenario << " rank " << r;
      const std::string log = ReadFileOrEmpty(kids[r]->log);
      EXPECT_EQ(kids[r]->ExitCode(), 1) << log;
      // Found at once (well inside the 30 s deadline it would otherwise wait out); the
      // bound leaves room for a loaded machine.
      EXPECT_LT(Elapsed(log), 5.0) << log;
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

// Waits for rank 0's "mesh port N" debug line; 0 when it does not come.
int MeshPortOf(const Child& rank0) {
  for (int i = 0; i < 400; ++i) {
    std::smatch m;
    const std::string log = ReadFileOrEmpty(rank0.log);
    static const std::regex re("mesh port ([0-9]+)");
    if (std::regex_search(log, m, re)) return std::stoi(m[1]);
    usleep(10000);
  }
  return 0;
}

TEST(Faults, GarbageToCoordinatorAndMeshPortIsRejected) {
  ChildSet set;
  Job job{2};
  Child& r0 =
      set.Spawn({Worker(), "barrier"}, job.Env(0, {"MESHLM_LOG_LEVEL=debug"}), Log("garbage", 0));
  // Rank 0 logs its mesh port before it starts the coordinator.
  const int mesh_port = MeshPortOf(r0);
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

// Opens `n` connections to 127.0.0.1:port that never send a byte.
std::vector<comm::Fd> IdleConnections(int port, int n) {
  std::vector<comm::Fd> fds;
  for (int i = 0; i < n; ++i) {
    auto fd = comm::ConnectTcp("127.0.0.1", port, NowSeconds() + 5, "flood target");
    if (fd.ok()) fds.push_back(std::move(*fd));
  }
  return fds;
}

TEST(Faults, IdleAndHostileConnectionsDoNotDelayTheJob) {
  ChildSet set;
  Job job{2};
  Child& r0 =
      set.Spawn({Worker(), "barrier"}, job.Env(0, {"MESHLM_LOG_LEVEL=debug"}), Log("flood", 0));
  const int mesh_port = MeshPortOf(r0);
  ASSERT_NE(mesh_port, 0) << ReadFileOrEmpty(r0.log);
  // Strangers get there first and hold their connections open: idle ones, ones that
  // send garbage and stay, and clients with the wrong secret.
  std::vector<comm::Fd> idle = IdleConnections(job.port, 20);
  std::vector<comm::Fd> idle_mesh = IdleConnections(mesh_port, 20);
  ASSERT_EQ(idle.size(), 20u);
  ASSERT_EQ(idle_mesh.size(), 20u);
  std::vector<comm::Fd> noisy = IdleConnections(job.port, 5);
  for (comm::Fd& fd : noisy) {
    const std::string junk = std::string("MESHLMA1") + std::string(20, '\x01');
    (void)comm::WriteAll(fd.get(), junk.data(), junk.size(), NowSeconds() + 1, "target");
  }
  std::vector<std::thread> impostors;
  for (int i = 0; i < 3; ++i) {
    impostors.emplace_back([&job] {
      auto fd = comm::ConnectTcp("127.0.0.1", job.port, NowSeconds() + 5, "coordinator");
      if (fd.ok()) {
        (void)comm::ClientHandshake(fd->get(), "wrong", comm::Purpose::kBootstrap, NowSeconds() + 5,
                                    "coordinator");
      }
    });
  }
  const double t0 = NowSeconds();
  Child& r1 = set.Spawn({Worker(), "barrier"}, job.Env(1), Log("flood", 1));
  ASSERT_TRUE(ChildSet::Wait(r0, 30));
  ASSERT_TRUE(ChildSet::Wait(r1, 30));
  const double took = NowSeconds() - t0;
  for (std::thread& t : impostors) t.join();
  std::printf("2-rank job formed past 40 idle, 5 noisy and 3 impostor connections in %.2f s\n",
              took);
  const std::string log0 = ReadFileOrEmpty(r0.log);
  EXPECT_EQ(r0.ExitCode(), 0) << log0;
  EXPECT_EQ(r1.ExitCode(), 0) << ReadFileOrEmpty(r1.log);
  EXPECT_LT(took, 5.0) << log0;
  EXPECT_NE(log0.find("does not hold this job's MESHLM_SECRET"), std::string::npos) << log0;
}

// One address may hold only so many connections in handshake: past the cap they are
// closed at once, and a rank that meets a closed connection tries again.
TEST(Faults, ConnectionsPastTheCapPerAddressAreClosedAndRanksStillJoin) {
  ChildSet set;
  Job job{2};
  Child& r0 =
      set.Spawn({Worker(), "barrier"}, job.Env(0, {"MESHLM_LOG_LEVEL=debug"}), Log("cap", 0));
  ASSERT_NE(MeshPortOf(r0), 0) << ReadFileOrEmpty(r0.log);
  std::vector<comm::Fd> idle = IdleConnections(job.port, 60);
  ASSERT_EQ(idle.size(), 60u);
  for (int i = 0;
       i < 300 && ReadFileOrEmpty(r0.log).find("already in handshake") == std::string::npos; ++i) {
    usleep(10000);
  }
  Child& r1 =
      set.Spawn({Worker(), "barrier"}, job.Env(1, {"MESHLM_LOG_LEVEL=debug"}), Log("cap", 1));
  ASSERT_TRUE(ChildSet::Wait(r0, 30));
  ASSERT_TRUE(ChildSet::Wait(r1, 30));
  const std::string log0 = ReadFileOrEmpty(r0.log);
  EXPECT_EQ(r0.ExitCode(), 0) << log0;
  EXPECT_EQ(r1.ExitCode(), 0) << ReadFileOrEmpty(r1.log);
  EXPECT_NE(log0.find("closed a connection from 127.0.0.1"), std::string::npos) << log0;
  EXPECT_NE(ReadFileOrEmpty(r1.log).find("trying again"), std::string::npos)
      << ReadFileOrEmpty(r1.log);
}

// Local addresses of the sockets listening on `port` (from /proc/net/tcp), dotted.
std::vector<std::string> ListenAddresses(int port) {
  std::vector<std::string> out;
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    unsigned slot, ip, p, rip, rp, state;
    if (std::sscanf(line.c_str(), " %u: %x:%x %x:%x %x", &slot, &ip, &p, &rip, &rp, &state) != 6) {
      continue;
    }
    if (state != 0x0A || static_cast<int>(p) != port) continue;  // 0A: LISTEN
    in_addr a{};
    a.s_addr = ip;  // the kernel prints the address in host order of the raw bytes
    out.push_back(inet_ntoa(a));
  }
  return out;
}

TEST(Localhost, ListenersOfALocalJobAreBoundToLoopback) {
  ChildSet set;
  Job job{3};
  std::vector<Child*> kids;
  // Ranks 0 and 1 first: rank 1 keeps its mesh port open for rank 2, which comes later.
  for (int r = 0; r < 2; ++r) {
    kids.push_back(
        &set.Spawn({Worker(), "barrier"}, job.Env(r, {"MESHLM_LOG_LEVEL=debug"}), Log("bind", r)));
  }
  for (int r = 0; r < 2; ++r) {
    const int mesh_port = MeshPortOf(*kids[r]);
    ASSERT_NE(mesh_port, 0) << ReadFileOrEmpty(kids[r]->log);
    std::vector<std::string> addrs;
    for (int i = 0; i < 200 && addrs.empty(); ++i, usleep(10000))
      addrs = ListenAddresses(mesh_port);
    EXPECT_EQ(addrs, std::vector<std::string>{"127.0.0.1"}) << "rank " << r << " mesh port";
  }
  EXPECT_EQ(ListenAddresses(job.port), std::vector<std::string>{"127.0.0.1"}) << "coordinator";
  kids.push_back(&set.Spawn({Worker(), "barrier"}, job.Env(2), Log("bind", 2)));
  for (Child* c : kids) {
    ASSERT_TRUE(ChildSet::Wait(*c, 30));
    EXPECT_EQ(c->ExitCode(), 0) << ReadFileOrEmpty(c->log);
  }
}

// Bounded fuzz of the bootstrap and mesh handshakes: random bytes, bytes behind a valid
// magic, and authenticated connections to the coordinator that then send a mangled hello.
// Rank 0 rejects every one and the job still forms.
TEST(Faults, FuzzedHandshakesAreRejectedAndTheJobForms) {
  ChildSet set;
  Job job{2};
  Child& r0 =
      set.Spawn({Worker(), "barrier"}, job.Env(0, {"MESHLM_LOG_LEVEL=debug"}), Log("fuzz", 0));
  const int mesh_port = MeshPortOf(r0);
  ASSERT_NE(mesh_port, 0) << ReadFileOrEmpty(r0.log);
  const unsigned seed = static_cast<unsigned>(NowSeconds() * 1000);
  std::mt19937 rng(seed);
  auto bytes = [&](size_t n) {
    std::string b(n, '\0');
    for (char& c : b) c = static_cast<char>(rng());
    return b;
  };
  auto u32 = [](uint32_t v) {
    std::string b(4, '\0');
    for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
    return b;
  };
  const int kCases = 1000;
  int sent[3] = {0, 0, 0}, authenticated = 0;
  for (int i = 0; i < kCases; ++i) {
    // The mesh port serves handshakes only once every rank has joined: before that,
    // connections wait in its queue, so it gets a tenth of the cases, unauthenticated.
    const bool mesh = i % 10 == 0;  // stays within the mesh port's listen queue
    const int port = mesh ? mesh_port : job.port;
    const int kind = static_cast<int>(rng() % (mesh ? 2 : 3));
    auto fd = comm::ConnectTcp("127.0.0.1", port, NowSeconds() + 5, "fuzz target");
    ASSERT_TRUE(fd.ok()) << fd.status().message();
    const double deadline = NowSeconds() + 2;
    std::string payload;
    if (kind == 0) {
      payload = bytes(rng() % 300);
    } else if (kind == 1) {
      payload = std::string("MESHLMA1") + bytes(rng() % 120);
    } else {
      if (!comm::ClientHandshake(fd->get(), job.secret, comm::Purpose::kBootstrap, deadline, "fuzz")
               .ok()) {
        continue;
      }
      ++authenticated;
      {
        // A framed hello whose rank, world or member record is wrong, or raw bytes.
        const uint32_t rank = rng() % 2 ? 1 : static_cast<uint32_t>(rng());
        const uint32_t world = rank == 1 ? 3 : 2;
        std::string body = u32(rank) + u32(world) + bytes(rng() % 64);
        if (rng() % 4 == 0) body = u32(1) + u32(2) + bytes(rng() % 4);  // member cut short
        payload = rng() % 3 ? u32(static_cast<uint32_t>(body.size())) + body : bytes(rng() % 64);
      }
    }
    ++sent[kind];
    (void)comm::WriteAll(fd->get(), payload.data(), payload.size(), deadline, "fuzz target");
  }
  Child& r1 = set.Spawn({Worker(), "barrier"}, job.Env(1), Log("fuzz", 1));
  ASSERT_TRUE(ChildSet::Wait(r0, 30));
  ASSERT_TRUE(ChildSet::Wait(r1, 30));
  std::printf(
      "handshake fuzz (seed %u): %d random, %d behind the magic, %d authenticated with a "
      "mangled hello (%d handshakes passed)\n",
      seed, sent[0], sent[1], sent[2], authenticated);
  const std::string log0 = ReadFileOrEmpty(r0.log);
  EXPECT_EQ(r0.ExitCode(), 0) << log0;
  EXPECT_EQ(r1.ExitCode(), 0) << ReadFileOrEmpty(r1.log);
  EXPECT_GT(sent[2], 0);
  EXPECT_NE(log0.find("coordinator rejected"), std::string::npos) << log0;
}

}  // namespace
}  // namespace meshlm::testing
