// Sampler: picks the next token from logits (greedy, temperature, top-k, top-p, min-p,
// repetition penalty), reproducibly for a given seed.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include "base/status.h"

namespace meshlm::engine {

struct SamplingParams {
  float temperature = 0.0f;         // 0 = greedy (argmax)
  int32_t top_k = 0;                // 0 = off
  float top_p = 1.0f;               // 1 = off
  float min_p = 0.0f;               // 0 = off; keeps tokens with p >= min_p * p_max
  float repetition_penalty = 1.0f;  // 1 = off; divides positive logits of seen tokens
  // OpenAI's penalties over the generated tokens: a token's logit drops by
  // presence_penalty once it has appeared and by frequency_penalty per appearance.
  float presence_penalty = 0.0f;   // 0 = off; [-2, 2]
  float frequency_penalty = 0.0f;  // 0 = off; [-2, 2]
  // OpenAI's logit_bias: added to a token's logit before anything else; each in
  // [-100, 100] (-100 in effect bans the token, 100 all but forces it).
  std::vector<std::pair<int32_t, float>> logit_bias;
  uint64_t seed = 0;

  /// Errors name the parameter and its allowed range.
  Status Validate() const;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

  /// Chooses a token from logits: [V] (modified in place by the bias and penalties). `history` is
  /// the prompt and the tokens generated so far, for the repetition penalty; `generated`
  /// the tokens generated so far, for the presence and frequency penalties.
  int32_t Sample(std::span<float> logits, std::span<const int32_t> history,
                 std::span<const int32_t> generated = {});

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;
};

}  // namespace meshlm::engine
