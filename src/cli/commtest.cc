// meshlm commtest: barrier, correctness, latency and bandwidth of the collectives.
#include "cluster/commtest.h"

#include <unistd.h>

#include <climits>
#include <cstdio>

#include "cli/commands.h"

namespace meshlm::cli {

void AddLaunchFlags(CLI::App* sub, cluster::LaunchOptions* o);

namespace {

// "4096", "64K", "256M", "1G" -> bytes.
bool ParseBytes(const std::string& s, size_t* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  const std::string unit(end);
  size_t mult = 1;
  if (unit == "K" || unit == "k" || unit == "KiB")
    mult = size_t{1} << 10;
  else if (unit == "M" || unit == "MiB")
    mult = size_t{1} << 20;
  else if (unit == "G" || unit == "GiB")
    mult = size_t{1} << 30;
  else if (!unit.empty())
    return false;
  *out = static_cast<size_t>(v) * mult;
  return end != s.c_str();
}

std::string SelfPath() {
  char buf[PATH_MAX] = {};
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "meshlm";
}

}  // namespace

void AddCommtestCommand(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand(
      "commtest", "Test the links: barrier, correctness, latency (us), bandwidth (GB/s)");
  auto o = std::make_shared<cluster::CommtestOptions>();
  auto launch = std::make_shared<cluster::LaunchOptions>();
  auto max_bytes = std::make_shared<std::string>("256M");
  auto sizes = std::make_shared<std::vector<std::string>>();
  AddLaunchFlags(sub, launch.get());
  sub->add_option("--rounds", o->rounds, "timed iterations per bandwidth size");
  sub->add_option("--latency-iters", o->latency_iters, "timed 1-element all_sums");
  sub->add_option("--max-bytes", *max_bytes, "largest size, e.g. 64M (default 256M)");
  sub->add_option("--sizes", *sizes, "bandwidth sizes, e.g. 1M,16M")
      ->delimiter(',')
      ->allow_extra_args(false);
  sub->add_option("--phases", o->phases, "phases to run, e.g. 0,1 (default 0,1,2,3)")
      ->delimiter(',')
      ->allow_extra_args(false);
  sub->add_flag("--json", o->json, "print one JSON object (rank 0)");
  sub->callback([o, launch, max_bytes, sizes, exit_code] {
    if (!ParseBytes(*max_bytes, &o->max_bytes)) {
      std::fprintf(stderr, "[commtest] --max-bytes '%s' is not a size like 64M\n",
                   max_bytes->c_str());
      *exit_code = 2;
      return;
    }
    std::vector<std::string> self = {SelfPath(),        "commtest",
                                     "--rounds",        std::to_string(o->rounds),
                                     "--latency-iters", std::to_string(o->latency_iters),
                                     "--max-bytes",     *max_bytes};
    for (const std::string& s : *sizes) {
      size_t b = 0;
      if (!ParseBytes(s, &b)) {
        std::fprintf(stderr, "[commtest] --sizes item '%s' is not a size like 1M\n", s.c_str());
        *exit_code = 2;
        return;
      }
      o->sizes.push_back(b);
      self.insert(self.end(), {"--sizes", s});
    }
    for (int p : o->phases) self.insert(self.end(), {"--phases", std::to_string(p)});
    if (o->json) self.push_back("--json");
    const cluster::CommtestReport report =
        cluster::CommtestCommand(*o, *launch, self, [](const std::string& text) {
          std::fputs(text.c_str(), stdout);
          std::fflush(stdout);
        });
    if (!report.error.empty()) std::fprintf(stderr, "%s\n", report.error.c_str());
    if (!report.json.empty()) std::printf("%s\n", report.json.c_str());
    *exit_code = report.exit_code;
  });
}

}  // namespace meshlm::cli
