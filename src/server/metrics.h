// Metrics: counters, gauges and histograms the server exports as Prometheus text.
#pragma once

#include <array>
#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "engine/scheduler_stats.h"

namespace meshlm::server {

/// A histogram with fixed upper bounds (seconds). Thread-safe.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  /// Appends the _bucket, _sum and _count lines of `name`.
  void Render(const std::string& name, const std::string& help, std::string* out) const;

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bound, plus +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

/// Everything /metrics shows. Fields are updated by the HTTP threads and, through
/// engine::SchedulerStats, the engine thread.
struct Metrics : engine::SchedulerStats {
  Metrics();
  std::atomic<uint64_t> requests_total{0};
  std::atomic<uint64_t> requests_failed{0};     // answered with an error status or event
  std::atomic<uint64_t> requests_rejected{0};   // refused by the full queue
  std::atomic<uint64_t> requests_cancelled{0};  // the client went away before the end
  std::atomic<uint64_t> prompt_tokens_total{0};
  std::atomic<uint64_t> completion_tokens_total{0};
  std::atomic<uint64_t> steps_total{0};
  std::atomic<int64_t> queue_depth{0};
  std::atomic<int64_t> running{0};
  std::atomic<int64_t> cached_tokens{0};
  std::atomic<uint64_t> cached_prompt_tokens_total{0};
  Histogram ttft_seconds;
  Histogram step_seconds;

  // engine::SchedulerStats.
  void SetQueueDepth(int64_t n) override { queue_depth = n; }
  void SetRunning(int64_t n) override { running = n; }
  void AddFailedRequest() override { ++requests_failed; }
  void SetCachedTokens(int64_t n) override { cached_tokens = n; }
  void AddCachedPromptTokens(uint64_t n) override { cached_prompt_tokens_total += n; }
  void AddPromptTokens(uint64_t n) override { prompt_tokens_total += n; }
  void AddCompletionToken() override { ++completion_tokens_total; }
  void ObserveTimeToFirstToken(double seconds) override { ttft_seconds.Observe(seconds); }
  void ObserveStep(double seconds) override {
    step_seconds.Observe(seconds);
    ++steps_total;
  }
  /// Each rank's time computing and inside collectives since start. Rank 0's is current;
  /// the workers' as of their last report (sent while requests run, never while idle).
  void SetRankTimes(size_t rank, double compute_seconds, double comm_seconds) override;
  /// The last SetRankTimes of each rank, {compute, comm} seconds, by rank.
  std::vector<std::array<double, 2>> RankTimes() const;

  /// Prometheus text exposition format.
  std::string Render() const;

 private:
  mutable std::mutex times_mu_;
  std::vector<std::array<double, 2>> rank_times_;  // {compute, comm} per rank
};

}  // namespace meshlm::server
