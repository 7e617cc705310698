// Element-wise kernels on every target against double-precision references.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/kernels.h"
#include "kernels/test_util.h"

namespace meshlm::kernels {
namespace {

using testing::ForEachTarget;
using testing::MakeRandomMatrix;
using testing::RandomFloats;

const size_t kSizes[] = {1, 3, 8, 15, 16, 17, 67, 1000, 1031};

TEST(RmsNormTest, MatchesReference) {
  std::mt19937 rng(11);
  ForEachTarget([&](const std::string&) {
    for (size_t n : kSizes) {
      const size_t rows = 3;
      const float eps = 1e-6f;
      const auto x = RandomFloats(rng, rows * n, -3.0f, 3.0f);
      const auto w = RandomFloats(rng, n, 0.5f, 1.5f);
      std::vector<float> out(rows * n);
      RmsNorm(x.data(), w.data(), rows, n, eps, out.data());
      std::vector<float> in_place = x;
      RmsNorm(in_place.data(), w.data(), rows, n, eps, in_place.data());
      for (size_t r = 0; r < rows; ++r) {
        double ss = 0;
        for (size_t i = 0; i < n; ++i) ss += double{x[r * n + i]} * x[r * n + i];
        const double inv = 1.0 / std::sqrt(ss / n + eps);
        for (size_t i = 0; i < n; ++i) {
          const double ref = x[r * n + i] * inv * w[i];
          ASSERT_NEAR(out[r * n + i], ref, 2e-6 * std::abs(ref) + 1e-30) << "n=" << n;
          ASSERT_EQ(in_place[r * n + i], out[r * n + i]) << "n=" << n;
        }
      }
    }
  });
}

TEST(RopeTest, TableUsesF32AnglesAndApplyRotatesHalves) {
  std::mt19937 rng(12);
  for (size_t head_dim : {2, 6, 64, 70, 128}) {
    const size_t half = head_dim / 2, T = 5, H = 3;
    std::vector<int32_t> pos = {0, 1, 17, 4095, 40000};
    std::vector<float> inv_freq(half);
    for (size_t i = 0; i < half; ++i) {
      inv_freq[i] = static_cast<float>(1.0 / std::pow(1e6, 2.0 * i / head_dim));
    }
    std::vector<float> cos(T * half), sin(T * half);
    RopeTable(pos.data(), T, inv_freq.data(), half, cos.data(), sin.data());
    for (size_t t = 0; t < T; ++t) {
      for (size_t i = 0; i < half; ++i) {
        const double angle = static_cast<float>(pos[t]) * inv_freq[i];
        ASSERT_NEAR(cos[t * half + i], std::cos(angle), 1e-7);
        ASSERT_NEAR(sin[t * half + i], std::sin(angle), 1e-7);
      }
    }
    ForEachTarget([&](const std::string&) {
      const auto x = RandomFloats(rng, T * H * head_dim);
      std::vector<float> y = x;
      ApplyRope(y.data(), T, H, head_dim, cos.data(), sin.data());
      for (size_t t = 0; t < T; ++t) {
        for (size_t h = 0; h < H; ++h) {
          const float* xr = x.data() + (t * H + h) * head_dim;
          const float* yr = y.data() + (t * H + h) * head_dim;
          for (size_t i = 0; i < half; ++i) {
            const double c = cos[t * half + i], s = sin[t * half + i];
            ASSERT_NEAR(yr[i], xr[i] * c - double{xr[i + half]} * s, 1e-6);
            ASSERT_NEAR(yr[i + half], xr[i + half] * c + double{xr[i]} * s, 1e-6);
          }
        }
      }
    });
  }
}

TEST(SiluMulTest, MatchesReferenceAndAllowsAliasing) {
  std::mt19937 rng(13);
  ForEachTarget([&](const std::string&) {
    for (size_t n : kSizes) {
      auto gate = RandomFloats(rng, n, -30.0f, 30.0f);
      gate[0] = -100.0f;  // e^100 overflows f32: silu must still be -0, not NaN
      const auto up = RandomFloats(rng, n, -2.0f, 2.0f);
      std::vector<float> out(n);
      SiluMul(gate.data(), up.data(), n, out.data());
      std::vector<float> aliased = gate;
      SiluMul(aliased.data(), up.data(), n, aliased.data());
      for (size_t i = 0; i < n; ++i) {
        const double g = gate[i];
        const double ref = g / (1.0 + std::exp(-g)) * up[i];
        ASSERT_NEAR(out[i], ref, 2e-6 * std::abs(ref) + 1e-30) << "n=" << n << " gate=" << g;
        ASSERT_EQ(aliased[i], out[i]);
      }
    }
  });
}

TEST(AddInPlaceTest, Adds) {
  std::mt19937 rng(14);
  ForEachTarget([&](const std::string&) {
    for (size_t n : kSizes) {
      const auto x = RandomFloats(rng, n);
      const auto y0 = RandomFloats(rng, n);
      std::vector<float> y = y0;
      AddInPlace(y.data(), x.data(), n);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(y[i], y0[i] + x[i]);
    }
  });
}

TEST(SoftmaxTest, MatchesReferenceForLargeInputs) {
  std::mt19937 rng(15);
  ForEachTarget([&](const std::string&) {
    for (size_t n : kSizes) {
      const auto x0 = RandomFloats(rng, n, -60.0f, 90.0f);
      std::vector<float> x = x0;
      Softmax(x.data(), n);
      double mx = -1e300, sum = 0;
      for (float v : x0) mx = std::max(mx, double{v});
      for (float v : x0) sum += std::exp(v - mx);
      for (size_t i = 0; i < n; ++i) {
        const double ref = std::exp(x0[i] - mx) / sum;
        ASSERT_NEAR(x[i], ref, 4e-6 * ref + 1e-38) << "n=" << n;
      }
    }
  });
}

TEST(ConvertTest, ConvertToF32IsExact) {
  std::mt19937 rng(16);
  ForEachTarget([&](const std::string&) {
    for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
      for (size_t n : kSizes) {
        const auto m = MakeRandomMatrix(rng, dtype, 1, n, n);
        std::vector<float> out(n);
        ConvertToF32(m.bytes.data(), dtype, n, out.data());
        for (size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], m.values[i]) << DTypeName(dtype);
      }
    }
  });
}

TEST(EmbeddingTest, LooksUpStridedRows) {
  std::mt19937 rng(17);
  ForEachTarget([&](const std::string&) {
    for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
      const size_t V = 50, D = 37, stride = 41;
      const auto m = MakeRandomMatrix(rng, dtype, V, D, stride);
      const std::vector<int32_t> ids = {3, 0, 49, 3, 17};
      std::vector<float> out(ids.size() * D);
      EmbeddingLookup(m.weight, ids.data(), ids.size(), out.data());
      for (size_t t = 0; t < ids.size(); ++t) {
        for (size_t d = 0; d < D; ++d) {
          ASSERT_EQ(out[t * D + d], m.values[ids[t] * stride + d]) << DTypeName(dtype);
        }
      }
    }
  });
}

}  // namespace
}  // namespace meshlm::kernels
