// ThreadPool implementation: epoch-based dispatch, spin then sleep.
#include "base/thread_pool.h"

#include <algorithm>

#if defined(__x86_64__)
#include <immintrin.h>
#define MESHLM_PAUSE() _mm_pause()
#else
#define MESHLM_PAUSE() std::this_thread::yield()
#endif

namespace meshlm {
namespace {
// About 50 µs of spinning on x86 before sleeping: long enough to catch the next kernel
// of a decode step, short enough that an idle server does not burn a core.
constexpr int kSpinIterations = 20000;
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

void ThreadPool::Work(size_t thread) {
  for (;;) {
    const size_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (task >= num_tasks_) break;
    (*fn_)(task, thread);
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
    Work(thread);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::Run(size_t num_tasks, const std::function<void(size_t, size_t)>& fn) {
  if (num_tasks == 0) return;
  if (workers_.empty() || num_tasks == 1) {
    for (size_t i = 0; i < num_tasks; ++i) fn(i, 0);
    return;
  }
  fn_ = &fn;
  num_tasks_ = num_tasks;
  next_task_.store(0, std::memory_order_relaxed);
  pending_.store(workers_.size(), std::memory_order_relaxed);
  epoch_.fetch_add(1, std::memory_order_release);
  epoch_.notify_all();
  Work(0);
  while (pending_.load(std::memory_order_acquire) != 0) MESHLM_PAUSE();
  fn_ = nullptr;
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
