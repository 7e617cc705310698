// Attention on every target against a double-precision reference.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "base/thread_pool.h"
#include "kernels/kernels.h"
#include "kernels/test_util.h"

namespace meshlm::kernels {
namespace {

using testing::ForEachTarget;
using testing::RandomFloats;

struct Case {
  size_t T, pos0, H, Hk, Dh, stride_pad;
};

void CheckAttention(const Case& c, ThreadPool& pool, std::mt19937& rng) {
  SCOPED_TRACE(::testing::Message() << "T=" << c.T << " pos0=" << c.pos0 << " H=" << c.H
                                    << " Hk=" << c.Hk << " Dh=" << c.Dh);
  const size_t S = c.pos0 + c.T;
  const size_t stride = c.Hk * c.Dh + c.stride_pad;
  // Scores of a few units: a peaked softmax, as in trained models.
  const auto q = RandomFloats(rng, c.T * c.H * c.Dh, -2.0f, 2.0f);
  const auto k = RandomFloats(rng, S * stride, -2.0f, 2.0f);
  const auto v = RandomFloats(rng, S * stride);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.Dh));
  std::vector<float> out(c.T * c.H * c.Dh, std::nanf(""));
  Attention(q.data(), c.T, c.pos0, c.H, c.Hk, c.Dh, k.data(), v.data(), stride, scale, out.data(),
            pool);
  const size_t group = c.H / c.Hk;
  for (size_t t = 0; t < c.T; ++t) {
    for (size_t h = 0; h < c.H; ++h) {
      const float* qr = q.data() + (t * c.H + h) * c.Dh;
      const size_t kvh = h / group;
      const size_t len = c.pos0 + t + 1;
      std::vector<double> s(len);
      double mx = -1e300;
      for (size_t j = 0; j < len; ++j) {
        double dot = 0;
        for (size_t d = 0; d < c.Dh; ++d) dot += double{qr[d]} * k[j * stride + kvh * c.Dh + d];
        s[j] = dot * scale;
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (double& e : s) sum += (e = std::exp(e - mx));
      for (size_t d = 0; d < c.Dh; ++d) {
        double ref = 0;
        for (size_t j = 0; j < len; ++j) ref += s[j] * v[j * stride + kvh * c.Dh + d];
        ref /= sum;
        ASSERT_NEAR(out[(t * c.H + h) * c.Dh + d], ref, 2e-5)
            << "t=" << t << " h=" << h << " d=" << d;
      }
    }
  }
}

TEST(AttentionTest, MatchesReferenceOnEveryTarget) {
  std::mt19937 rng(21);
  ThreadPool pool(2);
  const Case cases[] = {
      {1, 0, 2, 1, 8, 0},  {1, 40, 4, 2, 64, 3}, {2, 5, 6, 3, 20, 1},   {3, 0, 4, 4, 17, 0},
      {7, 9, 8, 2, 64, 5}, {33, 0, 4, 1, 32, 0}, {128, 0, 2, 1, 16, 2}, {1, 1999, 2, 1, 128, 0},
  };
  ForEachTarget([&](const std::string&) {
    for (const Case& c : cases) CheckAttention(c, pool, rng);
  });
}

TEST(AttentionTest, SingleThreadMatchesReference) {
  std::mt19937 rng(22);
  ThreadPool pool(1);
  CheckAttention({9, 3, 4, 2, 64, 0}, pool, rng);
}

}  // namespace
}  // namespace meshlm::kernels
