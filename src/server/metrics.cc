// Prometheus text rendering of the server's metrics.
#include "server/metrics.h"

#include <fmt/format.h>

namespace meshlm::server {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double v) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += v;
  ++count_;
}

void Histogram::Render(const std::string& name, const std::string& help, std::string* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  *out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    *out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cumulative);
  }
  cumulative += counts_.back();
  *out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, cumulative,
                      name, sum_, name, count_);
}

Metrics::Metrics()
    : ttft_seconds({0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
      step_seconds({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5}) {}

std::string Metrics::Render() const {
  std::string out;
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    out += fmt::format("# HELP {} {}\n# TYPE {} counter\n{} {}\n", name, help, name, name, v);
  };
  auto gauge = [&](const char* name, const char* help, double v) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n{} {}\n", name, help, name, name, v);
  };
  counter("meshlm_requests_total", "Generation requests received.", requests_total);
  counter("meshlm_requests_failed_total", "Requests that ended with an error.", requests_failed);
  counter("meshlm_requests_rejected_total", "Requests refused because the queue was full.",
          requests_rejected);
  counter("meshlm_requests_cancelled_total",
          "Requests dropped because the client went away before the end.", requests_cancelled);
  counter("meshlm_prompt_tokens_total", "Prompt tokens processed.", prompt_tokens_total);
  counter("meshlm_prompt_tokens_cached_total",
          "Prompt tokens reused from the prefix cache (not computed).", cached_prompt_tokens_total);
  counter("meshlm_completion_tokens_total", "Tokens generated.", completion_tokens_total);
  counter("meshlm_steps_total", "Engine steps run on every rank.", steps_total);
  gauge("meshlm_queue_depth", "Requests waiting to start.", static_cast<double>(queue_depth));
  gauge("meshlm_running_sequences", "Sequences being generated.", static_cast<double>(running));
  gauge("meshlm_prefix_cache_tokens", "Tokens whose keys and values the prefix cache holds.",
        static_cast<double>(cached_tokens));
  ttft_seconds.Render("meshlm_time_to_first_token_seconds",
                      "Seconds from a request's arrival to its first token.", &out);
  step_seconds.Render("meshlm_step_seconds", "Seconds per engine step.", &out);
  std::vector<std::array<double, 2>> times;
  {
    std::lock_guard<std::mutex> lock(times_mu_);
    times = rank_times_;
  }
  if (times.empty()) times.push_back({0, 0});
  out +=
      "# HELP meshlm_comm_seconds_total Seconds spent in collectives, per rank.\n"
      "# TYPE meshlm_comm_seconds_total counter\n";
  for (size_t r = 0; r < times.size(); ++r) {
    out += fmt::format("meshlm_comm_seconds_total{{rank=\"{}\"}} {}\n", r, times[r][1]);
  }
  out +=
      "# HELP meshlm_compute_seconds_total Seconds spent computing, per rank.\n"
      "# TYPE meshlm_compute_seconds_total counter\n";
  for (size_t r = 0; r < times.size(); ++r) {
    out += fmt::format("meshlm_compute_seconds_total{{rank=\"{}\"}} {}\n", r, times[r][0]);
  }
  return out;
}

void Metrics::SetRankTimes(size_t rank, double compute_seconds, double comm_seconds) {
  std::lock_guard<std::mutex> lock(times_mu_);
  if (rank_times_.size() <= rank) rank_times_.resize(rank + 1, {0, 0});
  rank_times_[rank] = {compute_seconds, comm_seconds};
}

std::vector<std::array<double, 2>> Metrics::RankTimes() const {
  std::lock_guard<std::mutex> lock(times_mu_);
  return rank_times_;
}

}  // namespace meshlm::server
