// A rank process for multi-process comm tests: joins from the environment and runs the
// scenario named by argv[1]; prints "ok" or the error and exits 0 or 1.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "comm/env.h"

using meshlm::DType;
using meshlm::Status;
using meshlm::comm::Group;
using meshlm::comm::ReduceOp;

namespace {

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

int EnvInt(const char* name, int fallback) {
  const char* v = getenv(name);
  return v ? atoi(v) : fallback;
}

Status Fail(const std::string& what) { return Status::Error("[worker] " + what); }

// Every op at sizes that hit the one-shot path, the ring, chunking and striping, with
// integer-valued inputs so the expected results are exact.
Status AllOps(Group& g) {
  const int n = g.size(), me = g.rank();
  MESHLM_RETURN_IF_ERROR(g.Barrier());
  for (size_t count :
       {size_t{0}, size_t{1}, size_t{7}, size_t{1000}, size_t{65537}, size_t{(1 << 20) + 3}}) {
    std::vector<float> x(count);
    for (size_t i = 0; i < count; ++i) x[i] = static_cast<float>((me + 1) * ((i % 13) + 1));
    MESHLM_RETURN_IF_ERROR(g.AllSum(std::span<float>(x)));
    for (size_t i = 0; i < count; ++i) {
      const float want = static_cast<float>(n * (n + 1) / 2 * ((i % 13) + 1));
      if (x[i] != want)
        return Fail(fmt::format("all_sum count {} [{}] = {}, want {}", count, i, x[i], want));
    }
    std::vector<int64_t> m(count);
    for (size_t i = 0; i < count; ++i) m[i] = static_cast<int64_t>((i + me) % n);
    MESHLM_RETURN_IF_ERROR(g.AllMax(std::span<int64_t>(m)));
    for (size_t i = 0; i < count; ++i) {
      if (m[i] != n - 1) return Fail(fmt::format("all_max count {} [{}] = {}", count, i, m[i]));
    }
    std::vector<uint16_t> h(count, meshlm::F32ToBF16(static_cast<float>(me)));
    MESHLM_RETURN_IF_ERROR(g.AllReduce(h.data(), count, DType::kBF16, ReduceOp::kMin));
    for (size_t i = 0; i < count; ++i) {
      if (meshlm::BF16ToF32(h[i]) != 0.0f) return Fail("all_min bf16");
    }
    // all_gather of count bytes per rank; broadcast from every root.
    std::vector<uint8_t> in(count), out(count * n);
    for (size_t i = 0; i < count; ++i) in[i] = static_cast<uint8_t>(me * 7 + i);
    MESHLM_RETURN_IF_ERROR(g.AllGather(in.data(), count, out.data()));
    for (int r = 0; r < n; ++r) {
      for (size_t i = 0; i < count; ++i) {
        if (out[r * count + i] != static_cast<uint8_t>(r * 7 + i))
          return Fail(fmt::format("all_gather {} {}", r, i));
      }
    }
    for (int root = 0; root < n; ++root) {
      std::vector<uint8_t> b(count, me == root ? static_cast<uint8_t>(root + 1) : 0);
      MESHLM_RETURN_IF_ERROR(g.Broadcast(b.data(), count, root));
      for (uint8_t v : b) {
        if (v != root + 1) return Fail("broadcast");
      }
    }
    // Every ordered pair: the lower rank sends first.
    for (int a = 0; a < n; ++a) {
      for (int b = 0; b < n; ++b) {
        if (a == b || (me != a && me != b)) continue;
        std::vector<uint8_t> buf(count, static_cast<uint8_t>(a * 16 + b));
        if (me == a) {
          MESHLM_RETURN_IF_ERROR(g.Send(buf.data(), count, b));
        } else {
          std::fill(buf.begin(), buf.end(), 0);
          MESHLM_RETURN_IF_ERROR(g.Recv(buf.data(), count, a));
          for (uint8_t v : buf) {
            if (v != a * 16 + b) return Fail("send/recv");
          }
        }
      }
    }
  }
  MESHLM_ASSIGN_OR_RETURN(auto sub, g.Split(me % 2, me));
  int32_t v = 1;
  MESHLM_RETURN_IF_ERROR(sub->AllSum(std::span<int32_t>(&v, 1)));
  if (v != sub->size()) return Fail("split");
  return g.Barrier();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string scenario = argc > 1 ? argv[1] : "ops";
  auto joined = meshlm::comm::JoinFromEnv();
  if (!joined.ok()) {
    std::fprintf(stderr, "join failed: %s\n", joined.status().message().c_str());
    return 1;
  }
  Group& g = **joined;
  const int victim = EnvInt("VICTIM", 1);
  Status st;
  double t0 = 0, cpu0 = 0;
  if (scenario == "ops") {
    st = AllOps(g);
  } else if (scenario == "barrier") {
    st = g.Barrier();
  } else if (scenario == "kill" || scenario == "stop") {
    st = g.Barrier();
    std::vector<float> x(4 << 20, 1.0f);  // 16 MiB: the ring path, several chunks
    if (st.ok() && g.rank() == victim) {
      std::thread([scenario] {
        usleep(20000);
        raise(scenario == "kill" ? SIGKILL : SIGSTOP);
      }).detach();
      for (;;) {
        if (!g.AllSum(std::span<float>(x)).ok()) pause();
      }
    }
    t0 = meshlm::NowSeconds();
    cpu0 = CpuSeconds();
    for (int i = 0; i < 1000 && st.ok(); ++i) st = g.AllSum(std::span<float>(x));
  } else if (scenario == "mismatch") {
    st = g.Barrier();
    t0 = meshlm::NowSeconds();
    std::vector<float> x(16, 1.0f), out(16 * g.size());
    if (st.ok()) {
      st = g.rank() == victim ? g.AllGather(x.data(), 64, out.data())
                              : g.AllSum(std::span<float>(x));
    }
  } else if (scenario == "recvrecv" || scenario == "roots") {
    // Two ranks that wait for each other: both receive, or each names the other as root.
    st = g.Barrier();
    t0 = meshlm::NowSeconds();
    std::vector<uint8_t> buf(64);
    const int other = 1 - g.rank();
    if (st.ok()) {
      st = scenario == "recvrecv" ? g.Recv(buf.data(), buf.size(), other)
                                  : g.Broadcast(buf.data(), buf.size(), other);
    }
  } else if (scenario == "slow") {
    // Legitimately late partners must not be mistaken for a desync.
    for (int i = 0; i < 3 && st.ok(); ++i) {
      std::vector<float> x(1000, 1.0f);
      if (g.rank() == i % g.size()) usleep(900000);
      st = g.AllSum(std::span<float>(x));
      std::vector<uint8_t> b(100);
      if (st.ok() && g.rank() == 0) usleep(700000);
      if (st.ok())
        st = g.rank() == 0   ? g.Send(b.data(), b.size(), 1)
             : g.rank() == 1 ? g.Recv(b.data(), b.size(), 0)
                             : st;
      if (st.ok()) st = g.Broadcast(b.data(), b.size(), i % g.size());
    }
  } else {
    st = Fail("unknown scenario " + scenario);
  }
  if (t0 > 0) {
    std::fprintf(stderr, "elapsed %.3f cpu %.3f\n", meshlm::NowSeconds() - t0, CpuSeconds() - cpu0);
  }
  if (!st.ok()) {
    std::fprintf(stderr, "error: %s\n", st.message().c_str());
    return 1;
  }
  std::fprintf(stderr, "ok\n");
  return 0;
}
