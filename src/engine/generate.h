// Generation of one sequence and the end-to-end benchmark, driven from rank 0 through
// an Executor (one process or a whole job).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "base/status.h"
#include "engine/executor.h"
#include "engine/sampler.h"

namespace meshlm::engine {

struct GenerateOptions {
  size_t max_new_tokens = 128;
  SamplingParams sampling;
  std::vector<int32_t> eos_ids;  // generation stops after emitting one of these
  bool ignore_eos = false;
};

struct GenerateStats {
  size_t prompt_tokens = 0;
  size_t gen_tokens = 0;
  size_t decode_steps = 0;  // forward passes after the prompt
  double prefill_seconds = 0;
  double decode_seconds = 0;
  bool stopped_by_eos = false;
};

/// Rank 0: runs the prompt, then samples up to max_new_tokens tokens, calling on_token
/// for each (return false to stop early). Errors: empty prompt, bad ids, context
/// exceeded, bad sampling parameters, a failed peer.
Result<GenerateStats> Generate(Executor& executor, std::span<const int32_t> prompt,
                               const GenerateOptions& options,
                               const std::function<bool(int32_t)>& on_token);

struct BenchResult {
  size_t prompt_tokens = 0;
  size_t gen_tokens = 0;
  size_t batch = 1;            // sequences decoded together
  double prefill_seconds = 0;  // per sequence
  // Decode: wall time of gen_tokens steps, each producing one token for every sequence.
  double decode_seconds = 0;
  double seconds = 0;
  double comm_seconds_per_token = 0;     // during decode
  double compute_seconds_per_token = 0;  // during decode
  size_t peak_rss_bytes = 0;
  double prompt_tps() const { return prefill_seconds > 0 ? prompt_tokens / prefill_seconds : 0; }
  /// Generated tokens per second over all sequences of the batch.
  double gen_tps() const {
    return decode_seconds > 0 ? static_cast<double>(gen_tokens * batch) / decode_seconds : 0;
  }
};

/// Rank 0: prefills `prompt_tokens` pseudo-random tokens, then runs `gen_tokens` greedy
/// decode steps (ignoring EOS); `repeats` runs, keeping the median of each phase.
Result<BenchResult> RunBench(Executor& executor, size_t prompt_tokens, size_t gen_tokens,
                             size_t repeats, size_t batch = 1);

/// The process's peak resident set size so far.
size_t PeakRssBytes();

}  // namespace meshlm::engine
