// SchedulerStats: what the scheduler reports as it runs (queue, steps, tokens, times),
// for whoever exports it (the server's /metrics); the engine knows no output format.
#pragma once

#include <cstddef>
#include <cstdint>

namespace meshlm::engine {

/// Called from the engine thread (and Submit's caller for SetQueueDepth), so an
/// implementation must be thread-safe. Times are in seconds.
class SchedulerStats {
 public:
  virtual ~SchedulerStats() = default;

  /// Requests waiting to join the running batch.
  virtual void SetQueueDepth(int64_t n) = 0;
  /// Sequences in the running batch.
  virtual void SetRunning(int64_t n) = 0;
  /// A request the engine ended with an error.
  virtual void AddFailedRequest() = 0;
  /// Prompt tokens of a request that joined the batch.
  virtual void AddPromptTokens(uint64_t n) = 0;
  /// One sampled token.
  virtual void AddCompletionToken() = 0;
  /// From a request's arrival to its first sampled token.
  virtual void ObserveTimeToFirstToken(double seconds) = 0;
  /// One forward step of the batch.
  virtual void ObserveStep(double seconds) = 0;
  /// Tokens held by the prefix cache.
  virtual void SetCachedTokens(int64_t n) = 0;
  /// Prompt tokens a request reused from the prefix cache instead of computing them.
  virtual void AddCachedPromptTokens(uint64_t n) = 0;
  /// Rank `rank`'s time computing and inside collectives since start.
  virtual void SetRankTimes(size_t rank, double compute_seconds, double comm_seconds) = 0;
};

}  // namespace meshlm::engine
