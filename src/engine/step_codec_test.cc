// Tests for the step message codec.
#include "engine/step_codec.h"

#include <gtest/gtest.h>

#include <random>

namespace meshlm::engine {
namespace {

StepMessage Sample() {
  StepMessage m;
  SeqWork a;
  a.id = 42;
  a.start = true;
  a.params.temperature = 0.7f;
  a.params.top_k = 40;
  a.params.top_p = 0.9f;
  a.params.min_p = 0.05f;
  a.params.repetition_penalty = 1.1f;
  a.params.seed = 1234567890123ull;
  a.params.logit_bias = {{17, -100.0f}, {151935, 2.5f}};
  a.tokens = {1, 2, 3, 151935};
  a.fork = true;
  a.fork_from = 9;
  a.fork_len = 300;
  SeqWork b;
  b.id = 7;
  b.release = true;
  m.seqs = {a, b};
  return m;
}

TEST(StepCodec, RoundTrips) {
  const std::string bytes = EncodeStep(Sample());
  auto m = DecodeStep(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  ASSERT_TRUE(m.ok()) << m.status().message();
  ASSERT_EQ(m->seqs.size(), 2u);
  EXPECT_EQ(m->seqs[0].id, 42u);
  EXPECT_TRUE(m->seqs[0].start);
  EXPECT_FALSE(m->seqs[0].release);
  EXPECT_EQ(m->seqs[0].tokens, (std::vector<int32_t>{1, 2, 3, 151935}));
  EXPECT_FLOAT_EQ(m->seqs[0].params.min_p, 0.05f);
  EXPECT_EQ(m->seqs[0].params.seed, 1234567890123ull);
  EXPECT_EQ(m->seqs[0].params.top_k, 40);
  const std::vector<std::pair<int32_t, float>> bias = {{17, -100.0f}, {151935, 2.5f}};
  EXPECT_EQ(m->seqs[0].params.logit_bias, bias);
  EXPECT_TRUE(m->seqs[1].params.logit_bias.empty());
  EXPECT_TRUE(m->seqs[1].release);
  EXPECT_TRUE(m->seqs[1].tokens.empty());
  EXPECT_TRUE(m->seqs[0].fork);
  EXPECT_EQ(m->seqs[0].fork_from, 9u);
  EXPECT_EQ(m->seqs[0].fork_len, 300u);
  EXPECT_FALSE(m->seqs[1].fork);
  // A fork that does not start is refused.
  StepMessage bad = Sample();
  bad.seqs[0].start = false;
  const std::string b = EncodeStep(bad);
  auto r = DecodeStep(reinterpret_cast<const uint8_t*>(b.data()), b.size());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("fork must start"), std::string::npos);
}

TEST(StepCodec, KindsRoundTripAndUnknownKindsAreRefused) {
  for (StepKind kind : {StepKind::kStep, StepKind::kShutdown, StepKind::kReport}) {
    StepMessage msg;
    msg.kind = kind;
    const std::string bytes = EncodeStep(msg);
    auto m = DecodeStep(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    ASSERT_TRUE(m.ok()) << m.status().message();
    EXPECT_EQ(m->kind, kind);
  }
  StepMessage msg;
  msg.kind = static_cast<StepKind>(4);
  const std::string bytes = EncodeStep(msg);
  auto m = DecodeStep(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("unknown message kind 4"), std::string::npos)
      << m.status().message();
}

TEST(StepCodec, RejectsTruncationAndGarbage) {
  const std::string bytes = EncodeStep(Sample());
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto m = DecodeStep(reinterpret_cast<const uint8_t*>(bytes.data()), n);
    EXPECT_FALSE(m.ok()) << "accepted a message cut at " << n;
  }
  std::string extra = bytes + "x";
  EXPECT_FALSE(DecodeStep(reinterpret_cast<const uint8_t*>(extra.data()), extra.size()).ok());
  std::mt19937 rng(3);
  for (int i = 0; i < 5000; ++i) {
    std::string b = bytes;
    b[rng() % b.size()] = static_cast<char>(rng());
    auto m = DecodeStep(reinterpret_cast<const uint8_t*>(b.data()), b.size());
    if (m.ok()) {
      size_t tokens = 0;
      for (const auto& s : m->seqs) tokens += s.tokens.size();
      EXPECT_LE(tokens * 4, b.size());
    }
  }
}

}  // namespace
}  // namespace meshlm::engine
