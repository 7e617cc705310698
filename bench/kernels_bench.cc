// kernels_bench: MatMul at the shapes of Qwen3-0.6B, per weight dtype, decode (T=1) and
// prefill (T=128), on 1 and 2 threads; all matmuls of the model as one token step; and
// attention for one decode step at S=4096 and a 128-token prefill.
//
// Counters, per second: GB is weight bytes read (decode is bound by memory bandwidth;
// compare with bench/stream), GFLOP is 2·T·N·K (prefill is bound by arithmetic), tok is
// tokens of the whole-model sweep. The label names the SIMD target, and "+avx512bf16" when
// the vdpbf16ps path ran.
// Usage: kernels_bench [--benchmark_filter=regex] [other Google Benchmark flags]
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "base/thread_pool.h"
#include "hwy/aligned_allocator.h"
#include "kernels/kernels.h"
#include "base/dtype.h"

namespace meshlm::kernels {
namespace {

// Decode weights are cycled through copies totalling more than the 32 MiB L3 of the
// machines we measure on, so that every call reads from DRAM as in a real forward pass.
constexpr size_t kColdBytes = size_t{256} << 20;

// Random weights of `dtype`, in [-1, 1).
std::vector<uint8_t> RandomWeights(DType dtype, size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<uint8_t> bytes(n * DTypeSize(dtype));
  for (size_t i = 0; i < n; ++i) {
    const float f = dist(rng);
    if (dtype == DType::kF32) {
      std::memcpy(bytes.data() + 4 * i, &f, 4);
    } else {
      const uint16_t h = dtype == DType::kBF16 ? F32ToBF16(f) : F32ToF16(f);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
  }
  return bytes;
}

std::vector<float> RandomActivations(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

// A matrix and the storage its view points into.
struct Stored {
  std::vector<uint8_t> bytes;
  Matrix weight;
};

std::vector<Stored> MakeMatrices(DType dtype, size_t N, size_t K, size_t copies) {
  std::mt19937 rng(7);
  // Filling is slow for big sets: random values for one copy, then duplicated.
  const std::vector<uint8_t> first = RandomWeights(dtype, N * K, rng);
  std::vector<Stored> out(copies);
  for (Stored& m : out) {
    m.bytes = first;
    m.weight.data = m.bytes.data();
    m.weight.dtype = dtype;
    m.weight.rows = N;
    m.weight.cols = K;
    m.weight.row_stride = K * DTypeSize(dtype);
  }
  return out;
}

void BM_MatMul(benchmark::State& state, DType dtype, size_t K, size_t N, size_t T, size_t threads) {
  const size_t bytes = N * K * DTypeSize(dtype);
  const size_t copies = T <= 8 ? (kColdBytes + bytes - 1) / bytes : 1;
  const auto mats = MakeMatrices(dtype, N, K, copies);
  std::mt19937 rng(8);
  const auto x_values = RandomActivations(T * K, rng);
  // 64-byte aligned, as the engine's activation buffers are.
  auto x_storage = hwy::AllocateAligned<float>(T * K);
  std::copy(x_values.begin(), x_values.end(), x_storage.get());
  struct {
    const float* p;
    const float* data() const { return p; }
  } x{x_storage.get()};
  std::vector<float> y(T * N);
  ThreadPool pool(threads);
  size_t i = 0;
  for (auto _ : state) {
    MatMul(x.data(), T, mats[i].weight, nullptr, y.data(), pool);
    benchmark::DoNotOptimize(y.data());
    i = i + 1 == copies ? 0 : i + 1;
  }
  const double iters = static_cast<double>(state.iterations());
  state.counters["GB"] = benchmark::Counter(iters * bytes / 1e9, benchmark::Counter::kIsRate);
  state.counters["GFLOP"] =
      benchmark::Counter(iters * 2.0 * T * N * K / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel(CurrentTarget() +
                 (dtype == DType::kBF16 && SetNativeBf16(true) && T >= 16 ? "+avx512bf16" : ""));
}

// One token step (or a T-token prefill) through every matmul of Qwen3-0.6B: 28 layers of
// q, k, v, o, gate, up, down, then lm_head on the last row only, as a prefill computes
// logits for the last token. Distinct weights per layer, 1.19 GB in bf16.
void BM_Qwen3Matmuls(benchmark::State& state, DType dtype, size_t T, size_t threads) {
  constexpr size_t kLayers = 28, kD = 1024, kQ = 2048, kKV = 1024, kF = 3072, kV = 151936;
  struct Shape {
    size_t N, K;
  };
  const Shape layer[] = {{kQ, kD}, {kKV, kD}, {kKV, kD}, {kD, kQ}, {kF, kD}, {kF, kD}, {kD, kF}};
  std::vector<Stored> mats;
  for (size_t l = 0; l < kLayers; ++l) {
    for (const Shape& s : layer) {
      auto one = MakeMatrices(dtype, s.N, s.K, 1);
      mats.push_back(std::move(one[0]));
    }
  }
  auto head = MakeMatrices(dtype, kV, kD, 1);
  std::mt19937 rng(9);
  const auto x = RandomActivations(T * kF, rng);
  std::vector<float> y(T * kF), logits(kV);
  ThreadPool pool(threads);
  double bytes = head[0].bytes.size();
  for (const Stored& m : mats) bytes += m.bytes.size();
  for (auto _ : state) {
    for (const Stored& m : mats) MatMul(x.data(), T, m.weight, nullptr, y.data(), pool);
    MatMul(x.data() + (T - 1) * kD, 1, head[0].weight, nullptr, logits.data(), pool);
    benchmark::DoNotOptimize(logits.data());
  }
  const double iters = static_cast<double>(state.iterations());
  state.counters["tok"] = benchmark::Counter(iters * T, benchmark::Counter::kIsRate);
  state.counters["GB"] = benchmark::Counter(iters * bytes / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel(CurrentTarget());
}

// Attention of Qwen3-0.6B (H=16, Hk=8, Dh=128) for T new rows after pos0 cached ones.
// GB counts the K and V cache bytes read, the bound for decode at long S.
void BM_Attention(benchmark::State& state, size_t T, size_t pos0, size_t threads) {
  constexpr size_t kH = 16, kHk = 8, kDh = 128;
  const size_t S = pos0 + T;
  std::mt19937 rng(10);
  const auto q = RandomActivations(T * kH * kDh, rng);
  const auto k = RandomActivations(S * kHk * kDh, rng);
  const auto v = RandomActivations(S * kHk * kDh, rng);
  std::vector<float> out(T * kH * kDh);
  ThreadPool pool(threads);
  for (auto _ : state) {
    Attention(q.data(), T, pos0, kH, kHk, kDh, k.data(), v.data(), kHk * kDh, 0.088f, out.data(),
              pool);
    benchmark::DoNotOptimize(out.data());
  }
  const double iters = static_cast<double>(state.iterations());
  state.counters["GB"] =
      benchmark::Counter(iters * 2.0 * S * kHk * kDh * 4 / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel(CurrentTarget());
}

// Rates of 1-thread runs are per second of that thread's CPU time, so that other load on a
// shared machine does not count against them; 2-thread runs use wall time.
benchmark::internal::Benchmark* Timed(benchmark::internal::Benchmark* b, size_t threads) {
  return threads > 1 ? b->UseRealTime() : b;
}

void RegisterAll() {
  struct Shape {
    size_t K, N;
  };
  const Shape shapes[] = {{1024, 2048}, {1024, 1024}, {1024, 3072}, {2048, 1024}, {3072, 1024}};
  for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    const std::string dt(DTypeName(dtype));
    for (size_t T : {1, 8, 128}) {
      for (size_t threads : {1, 2}) {
        for (const Shape& s : shapes) {
          const std::string name = "MatMul/" + dt + "/K" + std::to_string(s.K) + "_N" +
                                   std::to_string(s.N) + "/T" + std::to_string(T) +
                                   "/threads:" + std::to_string(threads);
          Timed(benchmark::RegisterBenchmark(name.c_str(), BM_MatMul, dtype, s.K, s.N, T, threads),
                threads)
              ->Unit(benchmark::kMicrosecond);
        }
      }
    }
  }
  for (size_t threads : {1, 2}) {
    for (auto [T, pos0] : {std::pair<size_t, size_t>{1, 4095}, {128, 0}}) {
      const std::string name = "Attention/T" + std::to_string(T) + "_pos" + std::to_string(pos0) +
                               "/threads:" + std::to_string(threads);
      Timed(benchmark::RegisterBenchmark(name.c_str(), BM_Attention, T, pos0, threads), threads)
          ->Unit(benchmark::kMicrosecond);
    }
  }
  for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    const std::string dt(DTypeName(dtype));
    for (size_t T : {1, 8, 128}) {
      for (size_t threads : {1, 2}) {
        const std::string name =
            "Qwen3Matmuls/" + dt + "/T" + std::to_string(T) + "/threads:" + std::to_string(threads);
        Timed(benchmark::RegisterBenchmark(name.c_str(), BM_Qwen3Matmuls, dtype, T, threads),
              threads)
            ->Unit(benchmark::kMillisecond)
            ->MinTime(T == 1 ? 1.0 : 2.0);
      }
    }
  }
}

}  // namespace
}  // namespace meshlm::kernels

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  meshlm::kernels::RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
