// MatMul on every target and weight dtype against a double-precision reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "base/thread_pool.h"
#include "kernels/kernels.h"
#include "kernels/test_util.h"

namespace meshlm::kernels {
namespace {

using testing::ForEachTarget;
using testing::MakeRandomMatrix;
using testing::RandomFloats;

struct Case {
  size_t T, N, K, stride_pad;
  bool bias;
};

// Compares MatMul with Σ x·w in double. The error bound is relative to Σ |x·w|, which
// bounds what rounding inside a dot product can do whatever the order of the sums.
void CheckMatMul(DType dtype, const Case& c, ThreadPool& pool, std::mt19937& rng, double tol) {
  SCOPED_TRACE(::testing::Message()
               << DTypeName(dtype) << " T=" << c.T << " N=" << c.N << " K=" << c.K
               << " stride=" << c.K + c.stride_pad << " bias=" << c.bias);
  const auto m = MakeRandomMatrix(rng, dtype, c.N, c.K, c.K + c.stride_pad);
  const auto x = RandomFloats(rng, c.T * c.K);
  const auto bias = RandomFloats(rng, c.N);
  std::vector<float> y(c.T * c.N, std::nanf(""));
  MatMul(x.data(), c.T, m.weight, c.bias ? bias.data() : nullptr, y.data(), pool);
  int bad = 0;
  for (size_t t = 0; t < c.T; ++t) {
    for (size_t n = 0; n < c.N; ++n) {
      double ref = c.bias ? bias[n] : 0.0, mag = std::abs(ref);
      for (size_t k = 0; k < c.K; ++k) {
        const double p = double{x[t * c.K + k]} * m.values[n * (c.K + c.stride_pad) + k];
        ref += p;
        mag += std::abs(p);
      }
      const double err = std::abs(y[t * c.N + n] - ref);
      if (!(err <= tol * mag) && ++bad <= 5) {
        ADD_FAILURE() << "y[" << t << "," << n << "] = " << y[t * c.N + n] << ", want " << ref
                      << " (error " << err / mag << " of sum |x*w|)";
      }
    }
  }
  EXPECT_EQ(bad, 0);
}

const Case kCases[] = {
    {1, 1, 1, 0, false},    {1, 5, 7, 3, true},      {2, 9, 16, 0, false},
    {3, 37, 67, 5, true},   {7, 13, 300, 1, false},  {33, 21, 129, 0, true},
    {128, 19, 75, 9, true}, {4, 64, 1024, 0, false}, {1, 130, 513, 7, true},
    {16, 8, 32, 0, false},  {17, 11, 31, 2, true},   {128, 8, 96, 0, false},
    {41, 100, 70, 3, true}, {24, 97, 200, 0, false}, {8, 50, 64, 0, true},
    {9, 7, 33, 1, false},   {64, 100, 40, 2, true},  {128, 50, 1024, 0, false},
    {6, 11, 45, 3, true},   {15, 23, 100, 0, true},  {5, 9, 1, 0, false},
};

TEST(MatMulTest, F32MatchesReferenceOnEveryTarget) {
  std::mt19937 rng(1);
  ThreadPool pool(2);
  ForEachTarget([&](const std::string&) {
    for (const Case& c : kCases) CheckMatMul(DType::kF32, c, pool, rng, 2e-6);
  });
}

TEST(MatMulTest, F16MatchesReferenceOnEveryTarget) {
  std::mt19937 rng(2);
  ThreadPool pool(2);
  ForEachTarget([&](const std::string&) {
    for (const Case& c : kCases) CheckMatMul(DType::kF16, c, pool, rng, 2e-6);
  });
}

TEST(MatMulTest, BF16F32ActivationsMatchReferenceOnEveryTarget) {
  std::mt19937 rng(3);
  ThreadPool pool(2);
  SetNativeBf16(false);
  ForEachTarget([&](const std::string&) {
    for (const Case& c : kCases) CheckMatMul(DType::kBF16, c, pool, rng, 2e-6);
  });
}

// With the AVX512_BF16 path, x is rounded to bf16 (relative error ≤ 2⁻⁹ per element) for
// T ≥ 16; smaller T keeps f32 activations.
TEST(MatMulTest, BF16NativeMatchesReferenceOnEveryTarget) {
  std::mt19937 rng(4);
  ThreadPool pool(2);
  ForEachTarget([&](const std::string&) {
    SetNativeBf16(true);
    for (const Case& c : kCases) CheckMatMul(DType::kBF16, c, pool, rng, c.T >= 16 ? 4e-3 : 2e-6);
  });
  SetNativeBf16(false);
}

TEST(MatMulTest, SingleThreadMatchesReference) {
  std::mt19937 rng(5);
  ThreadPool pool(1);
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    CheckMatMul(dtype, {5, 33, 200, 3, true}, pool, rng, 2e-6);
    CheckMatMul(dtype, {64, 33, 200, 3, true}, pool, rng, 2e-6);
  }
}

TEST(MatMulTest, NativeBf16ReportsAvailability) {
  const bool available = SetNativeBf16(true);
  ASSERT_TRUE(SetTarget(SupportedTargets().back()));  // the portable fallback
  EXPECT_FALSE(SetNativeBf16(true));
  SetTarget("");
  EXPECT_EQ(SetNativeBf16(true), available);
  SetNativeBf16(false);
}

// Row t of x · wᵀ is the same bits whatever T is and wherever t sits among the rows: the
// decode kernels (vectors along K, tiles of 1-8 rows), the prefill kernel (vectors along
// T, from 16 rows) and every remainder, against each row computed alone. K values that
// leave a tail past the last whole vector on every target are included.
TEST(MatMulTest, RowsDoNotDependOnTheBatch) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  ThreadPool pool(2);
  ForEachTarget([&](const std::string& target) {
    for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
      for (size_t K : {64, 203, 1024}) {
        const size_t N = 37;
        const auto m = MakeRandomMatrix(rng, dtype, N, K, K + 5);
        const auto bias = RandomFloats(rng, N);
        const size_t kMaxT = 41;
        const auto x = RandomFloats(rng, kMaxT * K);
        std::vector<float> alone(kMaxT * N);
        for (size_t t = 0; t < kMaxT; ++t) {
          MatMul(x.data() + t * K, 1, m.weight, bias.data(), alone.data() + t * N, pool);
        }
        for (size_t T : {2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 31, 32, 33, 41}) {
          // Rows from a shifted start, so that row t meets different neighbours.
          const size_t first = (T * 7) % (kMaxT - T + 1);
          std::vector<float> y(T * N, std::nanf(""));
          MatMul(x.data() + first * K, T, m.weight, bias.data(), y.data(), pool);
          int bad = 0;
          for (size_t i = 0; i < T * N && bad < 3; ++i) {
            const float want = alone[first * N + i];
            if (std::memcmp(&y[i], &want, sizeof(float)) != 0) {
              ++bad;
              ADD_FAILURE() << target << " " << DTypeName(dtype) << " K=" << K << " T=" << T
                            << " row " << first + i / N << " col " << i % N << ": " << y[i]
                            << " in the batch, " << want << " alone";
            }
          }
        }
      }
    }
  });
}

}  // namespace
}  // namespace meshlm::kernels
