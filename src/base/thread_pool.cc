// ThreadPool implementation: epoch-based dispatch, spin then sleep.
#include "base/thread_pool.h"

#include <algorithm>

#include "base/check.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define MESHLM_PAUSE() _mm_pause()
#else
#define MESHLM_PAUSE() std::this_thread::yield()
#endif

namespace meshlm {
namespace {
// About 50 µs of spinning before sleeping: long enough to catch the next kernel of a
// decode step, short enough that an idle or oversubscribed machine is not robbed.
constexpr int kSpinIterations = 2000;
constexpr int kTaskBits = 20;
constexpr uint64_t kTaskMask = (uint64_t{1} << kTaskBits) - 1;
}  // namespace

ThreadPool::ThreadPool(size_t num_threads) {
  if (num_threads == 0) num_threads = std::max(1u, std::thread::hardware_concurrency());
  for (size_t t = 1; t < num_threads; ++t) workers_.emplace_back([this, t] { WorkerLoop(t); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  epoch_.fetch_add(1);
  epoch_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::Work(size_t thread, uint64_t epoch) {
  uint64_t v = counter_.load(std::memory_order_acquire);
  for (;;) {
    if ((v >> (2 * kTaskBits)) != epoch) return;
    const uint64_t next = v & kTaskMask, total = (v >> kTaskBits) & kTaskMask;
    if (next >= total) return;
    if (counter_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel)) {
      (*fn_)(static_cast<size_t>(next), thread);
      done_.fetch_add(1, std::memory_order_release);
      v = counter_.load(std::memory_order_acquire);
    }
  }
}

void ThreadPool::WorkerLoop(size_t thread) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t e = epoch_.load(std::memory_order_acquire);
    for (int i = 0; e == seen && i < kSpinIterations; ++i) {
      MESHLM_PAUSE();
      e = epoch_.load(std::memory_order_acquire);
    }
    while (e == seen) {
      epoch_.wait(seen, std::memory_order_acquire);
      e = epoch_.load(std::memory_order_acquire);
    }
    seen = e;
    if (stop_.load()) return;
    Work(thread, counter_.load(std::memory_order_acquire) >> (2 * kTaskBits));
  }
}

void ThreadPool::Run(size_t num_tasks, const std::function<void(size_t, size_t)>& fn) {
  if (num_tasks == 0) return;
  if (workers_.empty() || num_tasks == 1) {
    for (size_t i = 0; i < num_tasks; ++i) fn(i, 0);
    return;
  }
  MESHLM_CHECK(num_tasks <= kTaskMask, "{} tasks", num_tasks);
  fn_ = &fn;
  done_.store(0, std::memory_order_relaxed);
  last_epoch_ = (last_epoch_ + 1) & ((uint64_t{1} << 24) - 1);
  counter_.store(last_epoch_ << (2 * kTaskBits) | uint64_t{num_tasks} << kTaskBits,
                 std::memory_order_release);
  epoch_.fetch_add(1, std::memory_order_release);
  epoch_.notify_all();
  Work(0, last_epoch_);
  // Every task is claimed; wait for the ones workers are still running.
  for (int i = 0; done_.load(std::memory_order_acquire) != num_tasks; ++i) {
    if (i < kSpinIterations) {
      MESHLM_PAUSE();
    } else {
      std::this_thread::yield();
    }
  }
}

void ThreadPool::ParallelFor(size_t n, size_t align,
                             const std::function<void(size_t, size_t, size_t)>& fn) {
  if (n == 0) return;
  align = std::max<size_t>(align, 1);
  const size_t units = (n + align - 1) / align;
  const size_t chunks = std::min(units, num_threads() == 1 ? size_t{1} : num_threads() * 4);
  const size_t per = (units + chunks - 1) / chunks;
  const size_t num_tasks = (units + per - 1) / per;
  Run(num_tasks, [&](size_t task, size_t thread) {
    const size_t begin = task * per * align;
    const size_t end = std::min(n, (task + 1) * per * align);
    fn(begin, end, thread);
  });
}

}  // namespace meshlm
