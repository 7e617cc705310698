// Frame codec, desync messages, MESHLM_RAILS codec and HMAC against a known vector.
#include "comm/frame.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "comm/auth.h"
#include "comm/env.h"
#include "comm/socket.h"

namespace meshlm::comm {
namespace {

TEST(Frame, RoundTrips) {
  FrameHeader h{.kind = OpKind::kBroadcast,
                .dtype = 2,
                .reduce = 1,
                .group = 0xabcdef,
                .root = 3,
                .seq = 1ull << 40,
                .op_bytes = 123456789,
                .msg_bytes = 42};
  const FrameBytes b = EncodeFrame(h);
  auto g = DecodeFrame(b.data(), "peer");
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(g->kind, h.kind);
  EXPECT_EQ(g->group, h.group);
  EXPECT_EQ(g->root, 3);
  EXPECT_EQ(g->seq, h.seq);
  EXPECT_EQ(g->op_bytes, h.op_bytes);
  EXPECT_EQ(g->msg_bytes, 42u);
}

TEST(Frame, RejectsGarbageWithoutCrashing) {
  std::mt19937 rng(7);
  for (int i = 0; i < 10000; ++i) {
    FrameBytes b;
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    if (i % 2) {  // valid magic, random rest
      const FrameBytes ok = EncodeFrame(FrameHeader{});
      std::copy(ok.begin(), ok.begin() + 5, b.begin());
    }
    auto g = DecodeFrame(b.data(), "rank 1 (x)");
    if (!g.ok()) {
      EXPECT_NE(g.status().message().find("rank 1 (x)"), std::string::npos);
    }
  }
  FrameBytes bad = EncodeFrame(FrameHeader{});
  bad[4] = 9;
  auto g = DecodeFrame(bad.data(), "rank 2 (y)");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("version 9"), std::string::npos);
}

TEST(Frame, MismatchNamesBothCalls) {
  FrameHeader a{.kind = OpKind::kAllReduce, .dtype = 0, .seq = 5, .op_bytes = 16, .msg_bytes = 16};
  FrameHeader b{.kind = OpKind::kBroadcast, .root = 1, .seq = 5, .op_bytes = 8, .msg_bytes = 8};
  Status s = CheckFrame(a, b, "rank 0 (a)", "rank 1 (b)", "tcp");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(),
            "[tcp] ranks called different collectives: rank 0 (a) called all_sum(F32, 16 B) #5 "
            "but rank 1 (b) called broadcast(root 1, 8 B) #5; every rank must call the same ops "
            "in the same order with the same sizes");
  EXPECT_TRUE(CheckFrame(a, a, "x", "y", "tcp").ok());
}

TEST(Env, RailsRoundTripAndErrors) {
  std::vector<std::vector<std::string>> r = {{}, {"10.0.1.1", "10.0.2.1"}, {"eth3"}};
  const std::string s = FormatRails(r);
  EXPECT_EQ(s, "1=10.0.1.1,10.0.2.1;2=eth3");
  auto back = ParseRails(s, 3);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, r);
  EXPECT_FALSE(ParseRails("5=1.2.3.4", 3).ok());
  EXPECT_FALSE(ParseRails("1", 3).ok());
  EXPECT_FALSE(ParseRails("1=a,,b", 3).ok());
}

TEST(Env, ReadsMeshlmVariablesAndMlxFallbacks) {
  const char* vars[] = {"MESHLM_RANK",           "MESHLM_WORLD_SIZE", "MESHLM_COORDINATOR",
                        "MESHLM_HOSTFILE",       "MESHLM_SECRET",     "MESHLM_RAILS",
                        "MESHLM_OP_TIMEOUT",     "MLX_RANK",          "MLX_HOSTFILE",
                        "MLX_JACCL_COORDINATOR", "MLX_IBV_DEVICES"};
  for (const char* v : vars) unsetenv(v);
  auto alone = TcpConfigFromEnv();
  ASSERT_TRUE(alone.ok());
  EXPECT_EQ(alone->world_size, 1);

  const std::string hostfile = ::testing::TempDir() + "/mlx_hosts.json";
  { std::ofstream(hostfile) << R"([{"ssh": "a"}, {"ssh": "b"}, {"ssh": "c"}])"; }
  setenv("MLX_RANK", "2", 1);
  setenv("MLX_HOSTFILE", hostfile.c_str(), 1);
  setenv("MLX_JACCL_COORDINATOR", "10.0.0.1:5000", 1);
  auto mlx = TcpConfigFromEnv();
  ASSERT_TRUE(mlx.ok()) << mlx.status().message();
  EXPECT_EQ(mlx->rank, 2);
  EXPECT_EQ(mlx->world_size, 3);
  EXPECT_EQ(mlx->coordinator, "10.0.0.1:5000");

  // An MLX ring hostfile: rank 0's first address doubles as the coordinator.
  unsetenv("MLX_JACCL_COORDINATOR");
  { std::ofstream(hostfile) << R"([["10.0.0.1:5000", "10.0.1.1:5000"], ["10.0.0.2:5000"]])"; }
  auto ring = TcpConfigFromEnv();
  ASSERT_FALSE(ring.ok());  // MLX_RANK=2 is out of range for two ranks
  setenv("MLX_RANK", "1", 1);
  ring = TcpConfigFromEnv();
  ASSERT_TRUE(ring.ok()) << ring.status().message();
  EXPECT_EQ(ring->world_size, 2);
  EXPECT_EQ(ring->coordinator, "10.0.0.1:5000");

  setenv("MESHLM_RANK", "1", 1);
  setenv("MESHLM_WORLD_SIZE", "2", 1);
  setenv("MESHLM_COORDINATOR", "127.0.0.1:6000", 1);
  setenv("MESHLM_RAILS", "0=10.1.0.2,10.2.0.2", 1);
  setenv("MESHLM_OP_TIMEOUT", "2.5", 1);
  auto own = TcpConfigFromEnv();
  ASSERT_TRUE(own.ok()) << own.status().message();
  EXPECT_EQ(own->rank, 1);
  EXPECT_EQ(own->world_size, 2);
  EXPECT_EQ(own->coordinator, "127.0.0.1:6000");
  EXPECT_EQ(own->rails[0].size(), 2u);
  EXPECT_EQ(own->options.op_timeout_s, 2.5);

  setenv("MESHLM_RANK", "5", 1);
  auto bad = TcpConfigFromEnv();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "[comm] MESHLM_RANK='5' is not an integer in 0..1");
  for (const char* v : vars) unsetenv(v);
}

TEST(Socket, ParsesHostPort) {
  auto hp = ParseHostPort("10.1.2.3:5000", "x");
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "10.1.2.3");
  EXPECT_EQ(hp->port, 5000);
  EXPECT_FALSE(ParseHostPort("10.1.2.3", "x").ok());
  EXPECT_FALSE(ParseHostPort("h:99999", "x").ok());
  EXPECT_FALSE(ParseHostPort("h:12a", "x").ok());
}

TEST(Auth, HmacMatchesRfc4231Case2) {
  const auto mac = HmacSha256("Jefe", "what do ya want for nothing?");
  std::string hex;
  for (uint8_t b : mac) hex += fmt::format("{:02x}", b);
  EXPECT_EQ(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(NewSecretHex().size(), 64u);
  EXPECT_NE(NewSecretHex(), NewSecretHex());
}

}  // namespace
}  // namespace meshlm::comm
