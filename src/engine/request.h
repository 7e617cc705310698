// What a client asks the engine for (GenRequest) and what comes back (Event), without the
// model or executor headers, so that the HTTP side can build requests on its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/sampler.h"

namespace meshlm::model {
struct GenerationDefaults;
}  // namespace meshlm::model

namespace meshlm::engine {

class Grammar;

/// What a request asks the engine for.
struct GenRequest {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  size_t max_tokens = 0;          // 0: up to the context
  std::vector<std::string> stop;  // strings that end generation; never emitted
  bool ignore_eos = false;
  /// When set, every sampled token keeps the output inside this grammar (structured
  /// output), and the end of sequence comes only once the output is complete. The
  /// driver samples such sequences itself, from the full logits of each step.
  std::shared_ptr<const Grammar> grammar;
  /// A lazy grammar: the output is free until these bytes appear in it (a tool-call
  /// marker), and from there on follows `grammar`, which is fed the output from the
  /// marker's start plus trigger_skip bytes (0: the grammar begins with the marker).
  std::string grammar_trigger;
  size_t trigger_skip = 0;
  /// Special tokens come out as text (a tool-call marker such as [TOOL_CALLS] is one).
  bool keep_special = false;
  /// Log-probabilities of each sampled token and of this many most likely ones
  /// (OpenAI's logprobs/top_logprobs); -1: none. Costs a row of logits per step to rank 0.
  int32_t logprobs = -1;
};

/// A sampled token's log-probability under the model (the softmax of its logits, before
/// sampling settings), with the most likely alternatives.
struct TokenLogprob {
  int32_t id = -1;
  std::string bytes;  // what the token adds to the text (may be part of a character)
  float logprob = 0;
  std::vector<TokenLogprob> top;  // most likely first; their own `top` is empty
};

/// One piece of a request's output, in order.
struct Event {
  enum class Kind { kText, kDone, kError };
  Kind kind = Kind::kText;
  std::string text;              // kText: newly final text; kError: the message
  std::string finish_reason;     // kDone: "stop" or "length"
  size_t prompt_tokens = 0;      // kDone
  size_t completion_tokens = 0;  // kDone: every sampled token, the final one included
  size_t cached_tokens = 0;      // kDone: prompt tokens whose keys and values were reused
  /// With GenRequest::logprobs: the tokens sampled since the last event (the end of
  /// sequence excluded), in order.
  std::vector<TokenLogprob> logprobs;
};

/// The sampling a model's generation_config.json asks for, as the defaults of a request
/// that does not set them (the penalties and the seed keep SamplingParams' defaults).
SamplingParams DefaultSampling(const model::GenerationDefaults& defaults);

}  // namespace meshlm::engine
