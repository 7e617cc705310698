// Collective algorithms on the in-process loopback group: every op, dtype and group size,
// exact results, determinism, desync detection, dead members and deadlines.
#include <gtest/gtest.h>
#include <unistd.h>

#include <functional>
#include <random>
#include <thread>

#include "base/clock.h"
#include "comm/loopback.h"
#include "comm/reduce.h"

namespace meshlm::comm {
namespace {

// Runs fn(group) on every member, each in its own thread; returns each member's Status.
std::vector<Status> RunAll(LoopbackWorld& w, const std::function<Status(Group&)>& fn) {
  std::vector<Status> out(w.groups.size());
  std::vector<std::thread> threads;
  for (size_t r = 0; r < w.groups.size(); ++r) {
    threads.emplace_back([&, r] { out[r] = fn(*w.groups[r]); });
  }
  for (auto& t : threads) t.join();
  return out;
}

void ExpectAllOk(const std::vector<Status>& s) {
  for (size_t r = 0; r < s.size(); ++r)
    EXPECT_TRUE(s[r].ok()) << "rank " << r << ": " << s[r].message();
}

// Small thresholds so that tiny inputs exercise the ring, chunking and the one-shot path.
GroupOptions TinyOptions() {
  GroupOptions o;
  o.small_bytes = 64;
  o.chunk_bytes = 24;
  o.op_timeout_s = 5;
  return o;
}

// Integers in [-8, 8] are exact in every dtype and any summation order.
float Value(int rank, size_t i) {
  return static_cast<float>(static_cast<int>((rank * 7 + i * 3) % 17) - 8);
}

void Store(DType t, void* p, size_t i, float v) {
  switch (t) {
    case DType::kF32:
      static_cast<float*>(p)[i] = v;
      break;
    case DType::kF16:
      static_cast<uint16_t*>(p)[i] = F32ToF16(v);
      break;
    case DType::kBF16:
      static_cast<uint16_t*>(p)[i] = F32ToBF16(v);
      break;
    case DType::kI32:
      static_cast<int32_t*>(p)[i] = static_cast<int32_t>(v);
      break;
    case DType::kI64:
      static_cast<int64_t*>(p)[i] = static_cast<int64_t>(v);
      break;
    case DType::kU8:
      static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(v + 8);
      break;
    case DType::kU32:
      static_cast<uint32_t*>(p)[i] = static_cast<uint32_t>(v + 8);
      break;
  }
}

double Load(DType t, const void* p, size_t i) {
  switch (t) {
    case DType::kF32:
      return static_cast<const float*>(p)[i];
    case DType::kF16:
      return F16ToF32(static_cast<const uint16_t*>(p)[i]);
    case DType::kBF16:
      return BF16ToF32(static_cast<const uint16_t*>(p)[i]);
    case DType::kI32:
      return static_cast<const int32_t*>(p)[i];
    case DType::kI64:
      return static_cast<double>(static_cast<const int64_t*>(p)[i]);
    case DType::kU8:
      return static_cast<const uint8_t*>(p)[i];
    case DType::kU32:
      return static_cast<const uint32_t*>(p)[i];
  }
  return 0;
}

class AllReduceTest : public ::testing::TestWithParam<std::tuple<int, DType, ReduceOp>> {};

TEST_P(AllReduceTest, ExactForEverySizeAndBothAlgorithms) {
  const auto [n, dtype, op] = GetParam();
  for (size_t count : {size_t{0}, size_t{1}, size_t{3}, size_t{7}, size_t{16}, size_t{101}}) {
    LoopbackWorld w = MakeLoopbackWorld(n, TinyOptions());
    std::vector<std::vector<uint8_t>> bufs(n);
    auto st = RunAll(w, [&](Group& g) {
      auto& b = bufs[g.rank()];
      b.resize(count * DTypeSize(dtype));
      for (size_t i = 0; i < count; ++i) Store(dtype, b.data(), i, Value(g.rank(), i));
      return g.AllReduce(b.data(), count, dtype, op);
    });
    ExpectAllOk(st);
    for (size_t i = 0; i < count; ++i) {
      double want = op == ReduceOp::kSum ? 0 : Load(dtype, std::vector<uint8_t>(8).data(), 0);
      std::vector<uint8_t> tmp(8);
      for (int r = 0; r < n; ++r) {
        Store(dtype, tmp.data(), 0, Value(r, i));
        const double v = Load(dtype, tmp.data(), 0);
        if (op == ReduceOp::kSum)
          want += v;
        else if (r == 0)
          want = v;
        else
          want = op == ReduceOp::kMax ? std::max(want, v) : std::min(want, v);
      }
      if (dtype == DType::kU8 && op == ReduceOp::kSum) want = static_cast<uint8_t>(want);
      for (int r = 0; r < n; ++r) {
        ASSERT_EQ(Load(dtype, bufs[r].data(), i), want)
            << "n=" << n << " count=" << count << " i=" << i << " rank " << r;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Loopback, AllReduceTest,
    ::testing::Combine(::testing::Values(1, 2, 3, 4),
                       ::testing::Values(DType::kF32, DType::kF16, DType::kBF16, DType::kI32,
                                         DType::kI64, DType::kU8, DType::kU32),
                       ::testing::Values(ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin)));

TEST(Collectives, FloatSumsAreBitwiseIdenticalOnAllRanks) {
  for (int n : {3, 4}) {
    LoopbackWorld w = MakeLoopbackWorld(n, TinyOptions());
    std::vector<std::vector<float>> bufs(n, std::vector<float>(257));
    auto st = RunAll(w, [&](Group& g) {
      std::mt19937 rng(g.rank() + 1);
      std::normal_distribution<float> d(0, 1e3);
      for (float& x : bufs[g.rank()]) x = d(rng);
      return g.AllSum(std::span<float>(bufs[g.rank()]));
    });
    ExpectAllOk(st);
    for (int r = 1; r < n; ++r) EXPECT_EQ(0, memcmp(bufs[0].data(), bufs[r].data(), 257 * 4));
  }
}

TEST(Collectives, AllGatherBroadcastSendRecvBarrier) {
  for (int n : {1, 2, 3, 4}) {
    for (size_t bytes : {size_t{0}, size_t{1}, size_t{13}, size_t{100}}) {
      LoopbackWorld w = MakeLoopbackWorld(n, TinyOptions());
      auto st = RunAll(w, [&](Group& g) -> Status {
        const int me = g.rank();
        std::vector<uint8_t> in(bytes), out(bytes * n);
        for (size_t i = 0; i < bytes; ++i) in[i] = static_cast<uint8_t>(me * 31 + i);
        MESHLM_RETURN_IF_ERROR(g.AllGather(in.data(), bytes, out.data()));
        for (int r = 0; r < n; ++r) {
          for (size_t i = 0; i < bytes; ++i) {
            if (out[r * bytes + i] != static_cast<uint8_t>(r * 31 + i))
              return Error("gather {} {}", r, i);
          }
        }
        for (int root = 0; root < n; ++root) {
          std::vector<uint8_t> b(bytes, static_cast<uint8_t>(me == root ? 200 + root : 0));
          MESHLM_RETURN_IF_ERROR(g.Broadcast(b.data(), bytes, root));
          for (uint8_t x : b) {
            if (x != 200 + root) return Error("broadcast root {}", root);
          }
        }
        // Ring of send/recv: even ranks send first, odd ranks receive first.
        if (n > 1) {
          std::vector<uint8_t> got(bytes);
          const int right = (me + 1) % n, left = (me + n - 1) % n;
          if (me % 2 == 0) {
            MESHLM_RETURN_IF_ERROR(g.Send(in.data(), bytes, right));
            MESHLM_RETURN_IF_ERROR(g.Recv(got.data(), bytes, left));
          } else {
            MESHLM_RETURN_IF_ERROR(g.Recv(got.data(), bytes, left));
            MESHLM_RETURN_IF_ERROR(g.Send(in.data(), bytes, right));
          }
          for (size_t i = 0; i < bytes; ++i) {
            if (got[i] != static_cast<uint8_t>(left * 31 + i)) return Error("recv");
          }
        }
        return g.Barrier();
      });
      ExpectAllOk(st);
    }
  }
}

TEST(Collectives, SplitFormsIndependentSubgroups) {
  LoopbackWorld w = MakeLoopbackWorld(4, TinyOptions());
  auto st = RunAll(w, [&](Group& g) -> Status {
    // Even and odd ranks; keys reverse the order inside each sub-group.
    MESHLM_ASSIGN_OR_RETURN(auto sub, g.Split(g.rank() % 2, -g.rank()));
    if (sub->size() != 2) return Error("size {}", sub->size());
    int32_t v = g.rank();
    MESHLM_RETURN_IF_ERROR(sub->AllSum(std::span<int32_t>(&v, 1)));
    if (v != (g.rank() % 2 == 0 ? 2 : 4)) return Error("sum {}", v);
    const int want_rank = g.rank() >= 2 ? 0 : 1;
    if (sub->rank() != want_rank) return Error("sub rank {}", sub->rank());
    MESHLM_ASSIGN_OR_RETURN(auto none, g.Split(g.rank() == 0 ? -1 : 0, 0));
    if ((g.rank() == 0) != (none == nullptr)) return Error("null split");
    return g.Barrier();
  });
  ExpectAllOk(st);
}

TEST(Collectives, MismatchedOpsFailNamingBothRanksAndCalls) {
  LoopbackWorld w = MakeLoopbackWorld(2, TinyOptions());
  const double t0 = NowSeconds();
  auto st = RunAll(w, [&](Group& g) -> Status {
    std::vector<float> x(4, 1.0f);
    if (g.rank() == 0) return g.AllSum(std::span<float>(x));
    std::vector<float> out(8);
    return g.AllGather(x.data(), 16, out.data());
  });
  EXPECT_LT(NowSeconds() - t0, 1.0);
  for (const Status& s : st) {
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("all_sum(F32, 16 B) #0"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("all_gather(16 B) #0"), std::string::npos) << s.message();
  }
}

TEST(Collectives, MismatchedSizesFail) {
  LoopbackWorld w = MakeLoopbackWorld(3, TinyOptions());
  auto st = RunAll(w, [&](Group& g) -> Status {
    std::vector<int32_t> x(g.rank() == 2 ? 5 : 4, 1);
    return g.AllSum(std::span<int32_t>(x));
  });
  for (const Status& s : st) EXPECT_FALSE(s.ok());
  EXPECT_NE(st[2].message().find("rank 2"), std::string::npos) << st[2].message();
}

TEST(Collectives, DeadMemberFailsSurvivorsAtOnce) {
  GroupOptions o = TinyOptions();
  o.op_timeout_s = 20;
  LoopbackWorld w = MakeLoopbackWorld(3, o);
  const double t0 = NowSeconds();
  auto st = RunAll(w, [&](Group& g) -> Status {
    if (g.rank() == 1) {
      w.Kill(1);
      return OkStatus();
    }
    std::vector<float> x(4, 1.0f);
    return g.AllSum(std::span<float>(x));
  });
  EXPECT_LT(NowSeconds() - t0, 2.0);
  EXPECT_FALSE(st[0].ok());
  EXPECT_FALSE(st[2].ok());
  EXPECT_NE(st[0].message().find("rank 1"), std::string::npos) << st[0].message();
}

TEST(Collectives, SilentMemberFailsAtTheDeadline) {
  GroupOptions o = TinyOptions();
  o.op_timeout_s = 0.3;
  LoopbackWorld w = MakeLoopbackWorld(2, o);
  auto st = RunAll(w, [&](Group& g) -> Status {
    if (g.rank() == 1) return OkStatus();  // never joins the op
    return g.Barrier();
  });
  ASSERT_FALSE(st[0].ok());
  EXPECT_NE(st[0].message().find("timed out"), std::string::npos) << st[0].message();
}

TEST(Collectives, PerGroupTimeoutLetsAnIdleWorkerWait) {
  GroupOptions o = TinyOptions();
  o.op_timeout_s = 0.2;
  LoopbackWorld w = MakeLoopbackWorld(2, o);
  w.groups[1]->SetOpTimeout(0);  // no deadline: waits for the next request as long as it takes
  EXPECT_GE(w.groups[1]->op_timeout(), 1e8);
  auto st = RunAll(w, [&](Group& g) -> Status {
    int32_t request = 7;
    if (g.rank() == 0) usleep(500000);  // longer than the default deadline
    return g.Broadcast(&request, sizeof(request), 0);
  });
  ExpectAllOk(st);
  // A member that dies still ends the wait at once.
  const double t0 = NowSeconds();
  auto st2 = RunAll(w, [&](Group& g) -> Status {
    if (g.rank() == 0) {
      usleep(100000);
      w.Kill(0);
      return OkStatus();
    }
    int32_t request = 0;
    return g.Broadcast(&request, sizeof(request), 0);
  });
  EXPECT_FALSE(st2[1].ok());
  EXPECT_LT(NowSeconds() - t0, 2.0);
}

TEST(Reduce, HalfSumRoundsToNearestEven) {
  uint16_t a = F32ToF16(1.0f), b = F32ToF16(0.00048828125f);  // 2^-11: half an f16 ulp at 1
  ReduceInto(&a, &b, 1, DType::kF16, ReduceOp::kSum);
  EXPECT_EQ(F16ToF32(a), 1.0f);
  uint16_t c = F32ToBF16(-3.0f), d = F32ToBF16(2.0f);
  ReduceInto(&c, &d, 1, DType::kBF16, ReduceOp::kMax);
  EXPECT_EQ(BF16ToF32(c), 2.0f);
}

}  // namespace
}  // namespace meshlm::comm
