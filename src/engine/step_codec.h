// The step message rank 0 broadcasts to every rank: which sequences start, which tokens
// each one feeds, which end. Plain little-endian fields, every length checked on decode.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/sampler.h"

namespace meshlm::engine {

/// One sequence's share of a step.
struct SeqWork {
  uint64_t id = 0;
  bool start = false;           // create the sequence (cache, sampler) before feeding
  bool release = false;         // drop the sequence after this step
  // With start: the new sequence's cache begins as a copy of the first fork_len positions
  // of sequence fork_from's (a cached prefix, or a sibling of n > 1), then feeds tokens.
  bool fork = false;
  uint64_t fork_from = 0;
  uint32_t fork_len = 0;
  SamplingParams params;        // read when start is set
  std::vector<int32_t> tokens;  // fed this step; a token is sampled when non-empty
};

/// kReport: every rank shares its compute and communication time (no sequences).
enum class StepKind : uint32_t { kStep = 1, kShutdown = 2, kReport = 3 };

struct StepMessage {
  StepKind kind = StepKind::kStep;
  bool return_logits = false;  // rank 0 also wants each sampled row's full logits
  std::vector<SeqWork> seqs;
};

std::string EncodeStep(const StepMessage& msg);
/// Errors name what is malformed; never reads past `size`.
Result<StepMessage> DecodeStep(const uint8_t* data, size_t size);

}  // namespace meshlm::engine
