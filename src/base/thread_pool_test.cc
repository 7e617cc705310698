// Tests for ThreadPool.
#include "base/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace meshlm {
namespace {

TEST(ThreadPool, RunsEveryTaskExactlyOnce) {
  for (size_t threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (size_t n : {0, 1, 2, 7, 100, 1001}) {
      std::vector<std::atomic<int>> hits(n);
      pool.Run(n, [&](size_t task, size_t thread) {
        ASSERT_LT(thread, threads);
        hits[task].fetch_add(1);
      });
      for (size_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1) << "task " << i;
    }
  }
}

TEST(ThreadPool, ParallelForCoversRangeWithAlignedChunks) {
  ThreadPool pool(3);
  for (size_t n : {1, 15, 16, 17, 1000}) {
    std::vector<std::atomic<int>> hits(n);
    pool.ParallelFor(n, 8, [&](size_t b, size_t e, size_t) {
      EXPECT_EQ(b % 8, 0u);
      EXPECT_TRUE(e % 8 == 0 || e == n);
      for (size_t i = b; i < e; ++i) hits[i].fetch_add(1);
    });
    for (size_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1);
  }
}

TEST(ThreadPool, ManyDispatchesInARow) {
  ThreadPool pool(2);
  std::atomic<long> sum{0};
  for (int round = 0; round < 20000; ++round) {
    pool.Run(4, [&](size_t task, size_t) { sum.fetch_add(static_cast<long>(task)); });
  }
  EXPECT_EQ(sum.load(), 20000L * 6);
}

}  // namespace
}  // namespace meshlm
