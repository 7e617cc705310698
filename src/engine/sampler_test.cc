// Tests for the sampler: each filter against its definition, and reproducibility.
#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace meshlm::engine {
namespace {

std::vector<float> RandomLogits(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 2.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<int> Histogram(const SamplingParams& p, const std::vector<float>& logits, int draws) {
  Sampler s(p);
  std::vector<int> h(logits.size());
  for (int i = 0; i < draws; ++i) {
    auto l = logits;
    ++h[s.Sample(l, {})];
  }
  return h;
}

TEST(Sampler, GreedyIsArgmax) {
  for (uint32_t seed = 0; seed < 20; ++seed) {
    auto logits = RandomLogits(1000, seed);
    const int32_t best = std::max_element(logits.begin(), logits.end()) - logits.begin();
    Sampler s(SamplingParams{});
    EXPECT_EQ(s.Sample(logits, {}), best);
  }
}

TEST(Sampler, SameSeedSameTokensOtherSeedOthers) {
  const auto logits = RandomLogits(500, 3);
  auto run = [&](uint64_t seed) {
    SamplingParams p;
    p.temperature = 1.0f;
    p.seed = seed;
    Sampler s(p);
    std::vector<int32_t> out;
    for (int i = 0; i < 50; ++i) {
      auto l = logits;
      out.push_back(s.Sample(l, out));
    }
    return out;
  };
  EXPECT_EQ(run(11), run(11));
  EXPECT_NE(run(11), run(12));
}

// logit_bias shifts logits before choosing: -100 bans the greedy choice, +100 forces a
// token from the tail, and a small bias changes the odds as exp(bias).
TEST(Sampler, LogitBiasShiftsTheChoice) {
  const auto logits = RandomLogits(300, 21);
  const int best =
      static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  std::vector<float> rest = logits;
  rest[best] = -1e30f;
  const int second = static_cast<int>(std::max_element(rest.begin(), rest.end()) - rest.begin());
  const int worst =
      static_cast<int>(std::min_element(logits.begin(), logits.end()) - logits.begin());
  auto greedy = [&](std::vector<std::pair<int32_t, float>> bias) {
    SamplingParams p;
    p.logit_bias = std::move(bias);
    std::vector<float> z = logits;
    return Sampler(p).Sample(z, {});
  };
  EXPECT_EQ(greedy({}), best);
  EXPECT_EQ(greedy({{best, -100.0f}}), second);
  EXPECT_EQ(greedy({{worst, 100.0f}}), worst);
  EXPECT_EQ(greedy({{100000, 100.0f}}), best) << "an id past the logits is ignored";
  // Two equal logits, one biased by log(3): it is drawn three times as often.
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 3;
  p.logit_bias = {{1, std::log(3.0f)}};
  const auto h = Histogram(p, {0.0f, 0.0f}, 20000);
  EXPECT_NEAR(h[1] / 20000.0, 0.75, 0.02);
  SamplingParams bad;
  bad.logit_bias = {{3, 100.5f}};
  EXPECT_FALSE(bad.Validate().ok());
  bad.logit_bias = {{-1, 1.0f}};
  EXPECT_FALSE(bad.Validate().ok());
}

TEST(Sampler, TemperatureOneFollowsSoftmax) {
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f),
                                     std::log(0.05f)};
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 5;
  const int draws = 40000;
  const auto h = Histogram(p, logits, draws);
  const double expect[] = {0.5, 0.3, 0.15, 0.05};
  for (int i = 0; i < 4; ++i) {
    const double sd = std::sqrt(expect[i] * (1 - expect[i]) / draws);
    EXPECT_NEAR(h[i] / double(draws), expect[i], 5 * sd) << i;
  }
}

TEST(Sampler, TopKTopPMinPExcludeTheTail) {
  const auto logits = RandomLogits(200, 9);
  std::vector<int> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  std::vector<double> prob(logits.size());
  double sum = 0;
  for (size_t i = 0; i < logits.size(); ++i)
    sum += prob[i] = std::exp(logits[i] - logits[order[0]]);
  for (auto& q : prob) q /= sum;

  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 1;
  p.top_k = 5;
  auto h = Histogram(p, logits, 5000);
  for (size_t r = 5; r < order.size(); ++r) EXPECT_EQ(h[order[r]], 0) << "rank " << r;

  p.top_k = 0;
  p.top_p = 0.6f;
  h = Histogram(p, logits, 5000);
  double cum = 0;
  size_t nucleus = 0;
  while (cum < 0.6) cum += prob[order[nucleus++]];
  for (size_t r = nucleus; r < order.size(); ++r) EXPECT_EQ(h[order[r]], 0) << "rank " << r;

  p.top_p = 1.0f;
  p.min_p = 0.2f;
  h = Histogram(p, logits, 5000);
  for (size_t i = 0; i < logits.size(); ++i) {
    if (prob[i] < 0.2 * prob[order[0]]) EXPECT_EQ(h[i], 0) << i;
  }
  // top_k = 1 is greedy whatever the temperature.
  p = SamplingParams{};
  p.temperature = 5.0f;
  p.top_k = 1;
  h = Histogram(p, logits, 200);
  EXPECT_EQ(h[order[0]], 200);
}

TEST(Sampler, RepetitionPenaltyDemotesSeenTokens) {
  std::vector<float> logits = {2.0f, 1.9f, -1.0f};
  SamplingParams p;
  p.repetition_penalty = 1.3f;
  Sampler s(p);
  const std::vector<int32_t> history = {0, 2, 0};
  EXPECT_EQ(s.Sample(logits, history), 1);
  EXPECT_FLOAT_EQ(logits[0], 2.0f / 1.3f);
  EXPECT_FLOAT_EQ(logits[2], -1.3f);  // negative logits are multiplied
  EXPECT_FLOAT_EQ(logits[1], 1.9f);
}

TEST(Sampler, PresenceAndFrequencyPenaltiesCountGeneratedTokensOnly) {
  SamplingParams p;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  Sampler s(p);
  std::vector<float> logits = {3.0f, 2.9f, 2.0f, 1.0f};
  const std::vector<int32_t> history = {2, 0, 0, 3};  // prompt {2}, generated {0, 0, 3}
  const int32_t t = s.Sample(logits, history, std::span<const int32_t>(history).subspan(1));
  EXPECT_FLOAT_EQ(logits[0], 3.0f - 0.5f - 2 * 0.25f);
  EXPECT_FLOAT_EQ(logits[3], 1.0f - 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(logits[2], 2.0f);  // only in the prompt
  EXPECT_EQ(t, 1);
  SamplingParams bad;
  bad.frequency_penalty = 2.5f;
  EXPECT_NE(bad.Validate().message().find("frequency_penalty"), std::string::npos);
}

TEST(Sampler, ValidateNamesTheParameter) {
  SamplingParams p;
  p.top_p = 0.0f;
  EXPECT_NE(p.Validate().message().find("top_p"), std::string::npos);
  p = SamplingParams{};
  p.temperature = -1;
  EXPECT_NE(p.Validate().message().find("temperature"), std::string::npos);
  p = SamplingParams{};
  p.repetition_penalty = 0;
  EXPECT_FALSE(p.Validate().ok());
  EXPECT_TRUE(SamplingParams{}.Validate().ok());
}

}  // namespace
}  // namespace meshlm::engine
