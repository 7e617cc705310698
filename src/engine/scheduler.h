// Scheduler: continuous batching on rank 0. One engine thread owns the Executor; HTTP
// threads submit requests and read each request's text from its own channel.
//
// Goals: concurrent requests share every forward step (all running sequences decode in
// one Executor::Step); new requests join between steps; a cancelled request is released
// at the next step; an idle scheduler only asks the workers for their times once every
// probe_seconds (16 bytes a rank), so a rank that died or stalled while idle shows in
// health() before the next request meets it. A failed step or probe ends every request
// with an error and leaves the scheduler broken. Finished sequences stay on every rank as
// a prefix cache (whole sequences, LRU, copied into a new request that shares their
// start); n choices share one prompt step; grammar-constrained and logprobs requests are
// sampled or measured here from their full rows. Non-goals: preemption, paged KV blocks
// shared without a copy.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "engine/executor.h"
#include "engine/grammar.h"
#include "engine/request.h"
#include "engine/scheduler_stats.h"
#include "tokenizer/tokenizer.h"

namespace meshlm::engine {

/// The link between an HTTP thread and the engine thread for one request. Thread-safe.
class Channel {
 public:
  void Push(Event e);
  /// Waits up to `timeout_ms` for the next event; false when none came.
  bool Pop(Event* e, int timeout_ms);
  /// The client went away: the engine releases the sequence at its next step.
  void Cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> events_;
  std::atomic<bool> cancelled_{false};
};

struct SchedulerOptions {
  size_t max_running = 16;  // sequences decoded together
  size_t max_queued = 64;   // waiting requests beyond which Submit refuses
  std::vector<int32_t> eos_ids;
  /// How often an idle job checks that every rank answers; 0: never.
  double probe_seconds = 1.0;
  /// Ranks that have not answered a probe or step for this long make the job "degraded":
  /// health() says so and Submit refuses new requests until they answer.
  double degraded_after_seconds = 1.5;
  /// Prefix cache: finished sequences keep their keys and values (on every rank) while
  /// their tokens times kv_bytes_per_token fit in cache_bytes, least recently used
  /// evicted first; a new request whose prompt starts with one's tokens starts from a
  /// copy of them. 0: off.
  size_t cache_bytes = 0;
  size_t kv_bytes_per_token = 0;  // the whole model's (every rank's share together)
};

/// What the cluster looks like from rank 0.
struct Health {
  enum class State { kOk, kDegraded, kBroken };
  State state = State::kOk;
  std::string reason;    // for kDegraded and kBroken
  double waiting_s = 0;  // how long rank 0 has waited on the other ranks
  std::vector<int> waiting_on;  // kDegraded: the ranks that have not answered (when known)
};

class Scheduler {
 public:
  /// `executor`, `tokenizer` and `stats` must outlive the scheduler; `tokenizer` may be
  /// null (text is then the decimal ids). Starts the engine thread.
  Scheduler(Executor& executor, const Tokenizer* tokenizer, SchedulerStats& stats,
            SchedulerOptions options);
  /// Stops (see Stop).
  ~Scheduler();

  /// Errors for a request the engine cannot take: an empty prompt, a prompt that does
  /// not fit the context (both counts named), ids outside the vocabulary, bad sampling.
  Status Check(const GenRequest& request) const;

  enum class SubmitError { kNone, kQueueFull, kBroken, kStopping, kDegraded };
  /// Queues a request; its events arrive on the returned channel. Thread-safe.
  std::shared_ptr<Channel> Submit(GenRequest request, SubmitError* error);
  /// n choices of one prompt (OpenAI's n): choice i samples with seed + i, and choices
  /// after the first start from a copy of the first one's prompt keys and values instead
  /// of computing them again. One channel per choice, or none on error. Thread-safe.
  std::vector<std::shared_ptr<Channel>> SubmitN(GenRequest request, size_t n, SubmitError* error);
  /// Ends every request with an error and stops the engine thread (not the workers:
  /// Executor::Shutdown is the caller's). Thread-safe; idempotent.
  void Stop();

  size_t max_context() const { return max_context_; }
  bool broken() const { return broken_; }
  std::string broken_reason() const;
  /// Thread-safe.
  Health health() const;

 private:
  struct Running;
  std::unique_ptr<Running> NewRunning(GenRequest request);
  void Loop();
  // Turns a sampled token into events; true when the sequence is finished.
  bool Advance(Running& r, int32_t token);
  /// The token of a grammar-constrained sequence, from its row of logits: [V].
  int32_t SampleConstrained(Running& r, std::span<float> row);
  /// A lazy grammar's sequence: starts its matcher once the trigger is in the output.
  void WatchTrigger(Running& r, int32_t token);
  /// The sampled token's log-probability and the top alternatives, from its raw row.
  TokenLogprob Logprobs(std::span<const float> row, int32_t token, int32_t top);
  /// The vocabulary index masks are made from, built at the first constrained request.
  const TokenIndex& Index();
  /// Prefix cache: the work that starts `r`, from the longest cached prefix if any.
  void StartFromCache(Running& r, SeqWork* w);
  /// Keeps a finished sequence's cache (true) or says to release it (false).
  bool Park(Running& r);
  struct Parked {
    uint64_t id = 0;
    std::vector<int32_t> tokens;  // what its cache holds
    double used = 0;              // last start from it
  };
  std::vector<Parked> parked_;           // engine thread only
  size_t parked_tokens_ = 0;             // engine thread only
  std::vector<uint64_t> to_release_;     // parked sequences to drop at the next step
  void FailAll(const std::string& message);
  /// Marks the cluster failed (`why`) and ends every request with that error.
  void Break(const Status& why);
  /// Puts this rank's time in the stats, and the workers' when they are due to report.
  Status RecordTimes();

  Executor& executor_;
  const Tokenizer* tokenizer_;
  SchedulerStats& stats_;
  SchedulerOptions options_;
  size_t max_context_;
  size_t vocab_size_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Running>> queue_;  // guarded by mu_
  bool QueueEmpty() {
    std::lock_guard<std::mutex> lock(mu_);
    return queue_.empty();
  }
  /// Asks every rank for its times (a liveness probe when idle); waiting_since_ shows
  /// how long it has waited.
  Status GatherRankTimes();
  /// How long rank 0 has been waiting on the other ranks; 0 when it is not.
  double WaitingSeconds() const;
  std::atomic<double> waiting_since_{0};  // 0 unless rank 0 waits on the other ranks
  double last_report_ = 0;                // when the workers last reported their times
  double step_delay_s_ = 0;               // MESHLM_STEP_DELAY_MS
  bool stopping_ = false;                 // guarded by mu_
  std::string broken_reason_;             // guarded by mu_
  std::atomic<bool> broken_{false};
  std::vector<std::unique_ptr<Running>> running_;  // engine thread only
  std::unique_ptr<TokenIndex> index_;              // engine thread only
  std::vector<float> step_logits_;                 // engine thread only
  uint64_t next_id_ = 1;                           // guarded by mu_
  std::thread thread_;
};

}  // namespace meshlm::engine
