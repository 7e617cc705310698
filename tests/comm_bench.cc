// Latency benchmark (a program, not a test): 2 ranks compare a small all_sum with a raw
// blocking TCP ping-pong between the same two processes, interleaved in blocks so that
// both see the same machine load. Run: launch_tool launch -n 2 -- comm_bench [iters]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "base/clock.h"
#include "comm/env.h"

namespace {

bool Exact(int fd, void* p, size_t n, bool send_side) {
  uint8_t* b = static_cast<uint8_t*>(p);
  while (n > 0) {
    const ssize_t k = send_side ? send(fd, b, n, MSG_NOSIGNAL) : recv(fd, b, n, 0);
    if (k <= 0) return false;
    b += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

struct Stats {
  double min, median, p99;
};

Stats Summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[0], v[v.size() / 2], v[std::min(v.size() - 1, v.size() * 99 / 100)]};
}

}  // namespace

int main(int argc, char** argv) {
  const int iters = argc > 1 ? std::atoi(argv[1]) : 4000;
  auto joined = meshlm::comm::JoinFromEnv();
  if (!joined.ok() || (*joined)->size() != 2) {
    std::fprintf(stderr, "comm_bench: needs 2 ranks: %s\n",
                 joined.ok() ? "wrong size" : joined.status().message().c_str());
    return 1;
  }
  meshlm::comm::Group& g = **joined;
  const int me = g.rank();
  // Raw TCP socket between the two ranks, outside the library.
  int32_t port = 0;
  int lfd = -1, fd = -1;
  if (me == 0) {
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(lfd, 1);
    socklen_t len = sizeof(a);
    getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  if (!g.Broadcast(&port, sizeof(port), 0).ok()) return 1;
  if (me == 0) {
    fd = accept(lfd, nullptr, nullptr);
  } else {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return 1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

  for (size_t bytes : {size_t{4}, size_t{8192}}) {
    std::vector<uint8_t> buf(bytes, 1);
    std::vector<float> x(bytes / 4, 1.0f);
    std::vector<double> raw, coll, swap;
    const int block = 250;
    for (int done = -block; done < iters; done += block) {  // first block: warm-up
      for (int i = 0; i < block; ++i) {
        const double t0 = meshlm::NowSeconds();
        if (me == 1) {
          if (!Exact(fd, buf.data(), bytes, true) || !Exact(fd, buf.data(), bytes, false)) return 1;
        } else {
          if (!Exact(fd, buf.data(), bytes, false) || !Exact(fd, buf.data(), bytes, true)) return 1;
        }
        if (done >= 0) raw.push_back((meshlm::NowSeconds() - t0) * 1e6);
      }
      // Raw symmetric exchange: both send, then both receive (what a 2-rank all_sum does).
      for (int i = 0; i < block; ++i) {
        const double t0 = meshlm::NowSeconds();
        if (!Exact(fd, buf.data(), bytes, true) || !Exact(fd, buf.data(), bytes, false)) return 1;
        if (done >= 0) swap.push_back((meshlm::NowSeconds() - t0) * 1e6);
      }
      for (int i = 0; i < block; ++i) {
        const double t0 = meshlm::NowSeconds();
        if (!g.AllSum(std::span<float>(x)).ok()) return 1;
        if (done >= 0) coll.push_back((meshlm::NowSeconds() - t0) * 1e6);
      }
    }
    if (me == 1) {
      const Stats r = Summarize(raw), c = Summarize(coll), w = Summarize(swap);
      std::printf(
          "%zu B: raw TCP ping-pong RTT min %.1f median %.1f p99 %.1f us | raw exchange "
          "min %.1f median %.1f | all_sum min %.1f median %.1f p99 %.1f us | all_sum / "
          "RTT median %.2f\n",
          bytes, r.min, r.median, r.p99, w.min, w.median, c.min, c.median, c.p99,
          c.median / r.median);
    }
  }
  close(fd);
  if (lfd >= 0) close(lfd);
  return g.Barrier().ok() ? 0 : 1;
}
