// meshlm commtest: phases 0-3 (barrier, correctness, latency, bandwidth) on any Group.
#include "cluster/commtest.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "comm/env.h"

namespace meshlm::cluster {
namespace {

using Json = nlohmann::json;

std::vector<size_t> CheckSizes(size_t max_bytes) {
  std::vector<size_t> out;
  for (size_t b :
       {size_t{0}, size_t{1}, size_t{3}, size_t{4}, size_t{7}, size_t{100}, size_t{1000},
        size_t{4099}, size_t{65540}, size_t{262147}, size_t{1} << 20, (size_t{1} << 20) + 12,
        (size_t{16} << 20) + 4, size_t{64} << 20, size_t{256} << 20}) {
    if (b <= max_bytes) out.push_back(b);
  }
  return out;
}

struct Checker {
  comm::Group& g;
  std::string error;  // first comm error

  bool Ok(const Status& s) {
    if (!s.ok() && error.empty()) error = s.message();
    return s.ok();
  }

  // all_sum with inputs whose sums are exact: f32 when the size allows, else u8 (wraps).
  int64_t AllSum(size_t bytes) {
    const int n = g.size(), me = g.rank();
    int64_t wrong = 0;
    if (bytes % 4 == 0) {
      std::vector<float> x(bytes / 4);
      for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((me + 1) * (i % 251));
      if (!Ok(g.AllSum(std::span<float>(x)))) return -1;
      for (size_t i = 0; i < x.size(); ++i) {
        wrong += x[i] != static_cast<float>(n * (n + 1) / 2 * (i % 251));
      }
    } else {
      std::vector<uint8_t> x(bytes);
      for (size_t i = 0; i < bytes; ++i) x[i] = static_cast<uint8_t>((me + 1) * (i % 7));
      if (!Ok(g.AllSum(std::span<uint8_t>(x)))) return -1;
      for (size_t i = 0; i < bytes; ++i)
        wrong += x[i] != static_cast<uint8_t>(n * (n + 1) / 2 * (i % 7));
    }
    return wrong;
  }

  int64_t AllGather(size_t bytes) {
    const int n = g.size(), me = g.rank();
    const size_t per = bytes / n;  // total output stays `bytes` (sizes need not divide)
    std::vector<uint8_t> in(per), out(per * n);
    for (size_t i = 0; i < per; ++i) in[i] = static_cast<uint8_t>(me * 37 + i);
    if (!Ok(g.AllGather(in.data(), per, out.data()))) return -1;
    int64_t wrong = 0;
    for (int r = 0; r < n; ++r) {
      for (size_t i = 0; i < per; ++i)
        wrong += out[r * per + i] != static_cast<uint8_t>(r * 37 + i);
    }
    return wrong;
  }

  int64_t Broadcast(size_t bytes, int root) {
    std::vector<uint8_t> x(bytes, 0);
    if (g.rank() == root) {
      for (size_t i = 0; i < bytes; ++i) x[i] = static_cast<uint8_t>(root * 11 + i);
    }
    if (!Ok(g.Broadcast(x.data(), bytes, root))) return -1;
    int64_t wrong = 0;
    for (size_t i = 0; i < bytes; ++i) wrong += x[i] != static_cast<uint8_t>(root * 11 + i);
    return wrong;
  }

  // Every ordered pair (a, b) in turn: a sends, b receives and checks.
  int64_t SendRecv(size_t bytes) {
    const int n = g.size(), me = g.rank();
    int64_t wrong = 0;
    std::vector<uint8_t> buf(bytes);
    for (int a = 0; a < n; ++a) {
      for (int b = 0; b < n; ++b) {
        if (a == b || (me != a && me != b)) continue;
        if (me == a) {
          for (size_t i = 0; i < bytes; ++i) buf[i] = static_cast<uint8_t>(a * 5 + b * 3 + i);
          if (!Ok(g.Send(buf.data(), bytes, b))) return -1;
        } else {
          std::fill(buf.begin(), buf.end(), 0);
          if (!Ok(g.Recv(buf.data(), bytes, a))) return -1;
          for (size_t i = 0; i < bytes; ++i)
            wrong += buf[i] != static_cast<uint8_t>(a * 5 + b * 3 + i);
        }
      }
    }
    return wrong;
  }
};

struct Latency {
  double min_us, median_us, p99_us;
};

Result<Latency> MeasureLatency(comm::Group& g, size_t count, int iters) {
  std::vector<float> x(count, 1.0f);
  for (int i = 0; i < std::min(iters, 100); ++i) {
    MESHLM_RETURN_IF_ERROR(g.AllSum(std::span<float>(x)));
  }
  MESHLM_RETURN_IF_ERROR(g.Barrier());
  std::vector<double> t(iters);
  for (int i = 0; i < iters; ++i) {
    const double t0 = NowSeconds();
    MESHLM_RETURN_IF_ERROR(g.AllSum(std::span<float>(x)));
    t[i] = (NowSeconds() - t0) * 1e6;
  }
  std::sort(t.begin(), t.end());
  return Latency{t[0], t[iters / 2], t[std::min<size_t>(iters - 1, iters * 99 / 100)]};
}

// Seconds per all_sum of `bytes`, the slowest rank's.
Result<double> MeasureAllSum(comm::Group& g, size_t bytes, int rounds) {
  std::vector<float> x(bytes / 4, 1.0f);
  MESHLM_RETURN_IF_ERROR(g.AllSum(std::span<float>(x)));
  MESHLM_RETURN_IF_ERROR(g.Barrier());
  const double t0 = NowSeconds();
  for (int i = 0; i < rounds; ++i) MESHLM_RETURN_IF_ERROR(g.AllSum(std::span<float>(x)));
  int64_t ns = static_cast<int64_t>((NowSeconds() - t0) / rounds * 1e9);
  MESHLM_RETURN_IF_ERROR(g.AllMax(std::span<int64_t>(&ns, 1)));
  return ns * 1e-9;
}

bool Has(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }

}  // namespace

CommtestReport RunCommtest(comm::Group& g, const CommtestOptions& o, const CommtestPrint& print) {
  const int n = g.size();
  const bool lead = g.rank() == 0;
  auto say = [&](const std::string& s) {
    if (lead && !o.json && print) print(s);
  };
  CommtestReport result;
  Json report = {{"ranks", n}};
  std::vector<std::string> names;
  for (int r = 0; r < n; ++r) names.push_back(g.PeerName(r));
  report["members"] = names;
  say(fmt::format("meshlm commtest: {} ranks\n", n));
  auto fail = [&](const std::string& msg) {
    result.exit_code = 1;
    result.error = "commtest: " + msg;
    return result;
  };
  if (Has(o.phases, 0)) {
    const double t0 = NowSeconds();
    if (Status s = g.Barrier(); !s.ok()) return fail(s.message());
    report["barrier_ms"] = (NowSeconds() - t0) * 1e3;
    say(fmt::format("phase 0: barrier ok: all {} ranks reached it ({:.2f} ms)\n", n,
                    (NowSeconds() - t0) * 1e3));
  }
  int64_t total_wrong = 0;
  if (Has(o.phases, 1)) {
    say("phase 1: correctness (inputs exact by construction; any wrong element fails)\n");
    say(fmt::format("  {:>11}  {:>9}  {:>10}  {:>9}  {:>9}\n", "bytes", "all_sum", "all_gather",
                    "broadcast", "send/recv"));
    Checker c{g, ""};
    Json rows = Json::array();
    const auto sizes = CheckSizes(o.max_bytes);
    for (size_t i = 0; i < sizes.size(); ++i) {
      const size_t b = sizes[i];
      int64_t w[4] = {c.AllSum(b), c.AllGather(b), c.Broadcast(b, static_cast<int>(i % n)),
                      c.SendRecv(b)};
      if (!c.error.empty()) return fail(c.error);
      if (Status s = g.AllSum(std::span<int64_t>(w, 4)); !s.ok()) return fail(s.message());
      auto cell = [](int64_t x) { return x == 0 ? std::string("ok") : fmt::format("{} wrong", x); };
      say(fmt::format("  {:>11}  {:>9}  {:>10}  {:>9}  {:>9}\n", b, cell(w[0]), cell(w[1]),
                      cell(w[2]), cell(w[3])));
      rows.push_back({{"bytes", b},
                      {"all_sum_wrong", w[0]},
                      {"all_gather_wrong", w[1]},
                      {"broadcast_wrong", w[2]},
                      {"send_recv_wrong", w[3]}});
      total_wrong += w[0] + w[1] + w[2] + w[3];
    }
    report["correctness"] = rows;
    report["wrong_elements"] = total_wrong;
    say(fmt::format("  => {} wrong elements\n", total_wrong));
  }
  if (Has(o.phases, 2)) {
    Json lat = Json::array();
    for (size_t count : {size_t{1}, size_t{2048}}) {
      auto l = MeasureLatency(g, count, o.latency_iters);
      if (!l.ok()) return fail(l.status().message());
      lat.push_back({{"bytes", count * 4},
                     {"min_us", l->min_us},
                     {"median_us", l->median_us},
                     {"p99_us", l->p99_us},
                     {"iters", o.latency_iters}});
      say(
          fmt::format("phase 2: latency of a {}-element all_sum ({} B): min {:.1f} us, median "
                      "{:.1f} us, p99 {:.1f} us ({} iters)\n",
                      count, count * 4, l->min_us, l->median_us, l->p99_us, o.latency_iters));
    }
    report["latency"] = lat;
  }
  if (Has(o.phases, 3)) {
    std::vector<size_t> sizes = o.sizes;
    if (sizes.empty()) {
      for (size_t b = 1024; b <= o.max_bytes; b *= 4) sizes.push_back(b);
    }
    say("phase 3: bandwidth of all_sum (f32); algbw = bytes / time, busbw = algbw * 2(n-1)/n\n");
    say(fmt::format("  {:>11}  {:>10}  {:>10}  {:>10}\n", "bytes", "time_us", "algbw_GB/s",
                    "busbw_GB/s"));
    Json rows = Json::array();
    for (size_t b : sizes) {
      b -= b % 4;
      if (b == 0) continue;
      const int rounds =
          std::max(2, std::min<int>(o.rounds, static_cast<int>((size_t{1} << 30) / b)));
      auto t = MeasureAllSum(g, b, rounds);
      if (!t.ok()) return fail(t.status().message());
      const double alg = b / *t / 1e9, bus = alg * 2.0 * (n - 1) / n;
      say(fmt::format("  {:>11}  {:>10.1f}  {:>10.3f}  {:>10.3f}\n", b, *t * 1e6, alg, bus));
      rows.push_back(
          {{"bytes", b}, {"time_us", *t * 1e6}, {"algbw_gbps", alg}, {"busbw_gbps", bus}});
    }
    report["bandwidth"] = rows;
  }
  if (lead && o.json) result.json = report.dump();
  result.wrong_elements = total_wrong;
  result.exit_code = total_wrong == 0 ? 0 : 1;
  return result;
}

CommtestReport CommtestCommand(const CommtestOptions& options, LaunchOptions launch,
                               const std::vector<std::string>& self_argv,
                               const CommtestPrint& print) {
  CommtestReport result;
  const bool in_job = std::getenv("MESHLM_RANK") != nullptr || std::getenv("MLX_RANK") != nullptr;
  if (!in_job && (launch.processes > 0 || !launch.hosts.empty() || !launch.hostfile.empty())) {
    launch.command = self_argv;
    auto code = Launch(launch);
    if (!code.ok()) {
      result.exit_code = 2;
      result.error = code.status().message();
      return result;
    }
    result.exit_code = *code;
    return result;
  }
  auto group = comm::JoinFromEnv();
  if (!group.ok()) {
    result.exit_code = 1;
    result.error = group.status().message();
    return result;
  }
  return RunCommtest(**group, options, print);
}

}  // namespace meshlm::cluster
