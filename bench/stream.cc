// stream: read bandwidth of main memory on 1 and 2 threads, the bound for decode MatMul.
//
// Sums 64-bit words of a 1 GiB buffer (far larger than any cache), each thread its own
// contiguous part, and prints the best of several runs in GB/s (10⁹ bytes per second), by
// wall time and by the CPU time of the slowest reading thread.
// Usage: stream [MiB] [runs]
#include <emmintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <thread>
#include <vector>

namespace {

// 16-byte loads into 8 independent accumulators: enough loads in flight to saturate
// DRAM on one core without needing more than SSE2.
uint64_t SumWords(const uint64_t* p, size_t n) {
  __m128i acc[8];
  for (auto& a : acc) a = _mm_setzero_si128();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int j = 0; j < 8; ++j) {
      acc[j] = _mm_add_epi64(acc[j], _mm_load_si128(reinterpret_cast<const __m128i*>(p + i) + j));
    }
  }
  for (int j = 1; j < 8; ++j) acc[0] = _mm_add_epi64(acc[0], acc[j]);
  uint64_t lanes[2];
  _mm_storeu_si128(reinterpret_cast<__m128i*>(lanes), acc[0]);
  uint64_t sum = lanes[0] + lanes[1];
  for (; i < n; ++i) sum += p[i];
  return sum;
}

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

struct Bandwidth {
  double wall = 0;  // GB per second of wall time
  double cpu = 0;   // GB per second of the slowest thread's CPU time
};

// Best of `runs` reads of buf: [n] split across `threads` threads.
Bandwidth ReadGBps(const uint64_t* buf, size_t n, size_t threads, int runs, uint64_t* check) {
  Bandwidth best;
  for (int r = 0; r < runs; ++r) {
    std::vector<uint64_t> sums(threads);
    std::vector<double> cpu(threads);
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    const size_t per = n / threads / 16 * 16;
    for (size_t t = 0; t < threads; ++t) {
      const size_t begin = t * per, end = t + 1 == threads ? n : begin + per;
      pool.emplace_back([&, t, begin, end] {
        const double c0 = ThreadCpuSeconds();
        sums[t] = SumWords(buf + begin, end - begin);
        cpu[t] = ThreadCpuSeconds() - c0;
      });
    }
    for (auto& th : pool) th.join();
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (uint64_t v : sums) *check += v;
    const double gb = n * sizeof(uint64_t) / 1e9;
    best.wall = std::max(best.wall, gb / s);
    best.cpu = std::max(best.cpu, gb / *std::max_element(cpu.begin(), cpu.end()));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1024;
  const int runs = argc > 2 ? std::atoi(argv[2]) : 10;
  const size_t n = mib * (size_t{1} << 20) / sizeof(uint64_t);
  auto* buf = static_cast<uint64_t*>(std::aligned_alloc(64, n * sizeof(uint64_t)));
  if (buf == nullptr) {
    std::fprintf(stderr, "stream: cannot allocate %zu MiB\n", mib);
    return 1;
  }
  // Touch every page first, so that the runs measure reads, not page faults.
  for (size_t i = 0; i < n; ++i) buf[i] = i;
  uint64_t check = 0;
  std::printf("buffer %zu MiB, best of %d runs\n", mib, runs);
  // On a shared machine, wall time counts the time other processes hold the cores; CPU
  // time of the reading threads does not.
  for (size_t threads : {1, 2}) {
    const Bandwidth b = ReadGBps(buf, n, threads, runs, &check);
    std::printf("read  %zu thread%s: %6.1f GB/s wall, %6.1f GB/s per thread CPU time\n", threads,
                threads == 1 ? " " : "s", b.wall, b.cpu);
  }
  std::printf("(checksum %llu)\n", static_cast<unsigned long long>(check));
  std::free(buf);
  return 0;
}
