// ThreadPool: one persistent set of worker threads shared by every kernel.
//
// Goals: low dispatch latency for the hundreds of small parallel loops a decode step
// runs (workers spin briefly on an epoch counter before sleeping with atomic wait), no
// allocation per dispatch, and no waiting for a worker that has not woken up: tasks are
// claimed from one counter, so the caller finishes a loop alone when the machine is busy
// and a worker is slow to be scheduled. Non-goals: nested parallelism, work stealing.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace meshlm {

class ThreadPool {
 public:
  /// Starts `num_threads - 1` workers; the calling thread is the last participant.
  /// `num_threads` 0 means one per hardware core.
  explicit ThreadPool(size_t num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t num_threads() const { return workers_.size() + 1; }

  /// Calls fn(task, thread) for every task in [0, num_tasks) and returns when all are
  /// done. Tasks are claimed dynamically; `thread` is in [0, num_threads()). Must not be
  /// called from inside fn, nor from two threads at once.
  void Run(size_t num_tasks, const std::function<void(size_t task, size_t thread)>& fn);

  /// Splits [0, n) into about num_threads() * 4 chunks that are multiples of `align`
  /// and calls fn(begin, end, thread) for each.
  void ParallelFor(size_t n, size_t align,
                   const std::function<void(size_t begin, size_t end, size_t thread)>& fn);

 private:
  void WorkerLoop(size_t thread);
  void Work(size_t thread, uint64_t epoch);

  std::vector<std::thread> workers_;
  const std::function<void(size_t, size_t)>* fn_ = nullptr;
  // Packs epoch (24 bits) | number of tasks (20) | next task to claim (20), so a claim
  // can never mix one loop's counter with another loop's task count.
  std::atomic<uint64_t> counter_{0};
  std::atomic<size_t> done_{0};     // tasks of the current loop finished
  std::atomic<uint32_t> epoch_{0};  // what sleeping workers wait on
  uint64_t last_epoch_ = 0;
  std::atomic<bool> stop_{false};
};

}  // namespace meshlm
