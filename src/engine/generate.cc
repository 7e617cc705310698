// Generation loop and benchmark on top of the Executor.
#include "engine/generate.h"

#include <sys/resource.h>

#include <algorithm>
#include <random>

#include "base/clock.h"

namespace meshlm::engine {
namespace {
constexpr uint64_t kSeqId = 1;
}  // namespace

Result<GenerateStats> Generate(Executor& ex, std::span<const int32_t> prompt,
                               const GenerateOptions& options,
                               const std::function<bool(int32_t)>& on_token) {
  if (prompt.empty()) return Error("[generate] the prompt is empty");
  MESHLM_RETURN_IF_ERROR(options.sampling.Validate());
  const size_t ctx = ex.model().max_context();
  if (prompt.size() >= ctx) {
    return Error("[generate] prompt of {} tokens does not fit the context of {}", prompt.size(),
                 ctx);
  }
  GenerateStats stats;
  stats.prompt_tokens = prompt.size();
  SeqWork w;
  w.id = kSeqId;
  w.start = true;
  w.params = options.sampling;
  w.tokens.assign(prompt.begin(), prompt.end());
  double t0 = NowSeconds();
  MESHLM_ASSIGN_OR_RETURN(std::vector<int32_t> out, ex.Step({w}));
  stats.prefill_seconds = NowSeconds() - t0;
  size_t length = prompt.size();
  t0 = NowSeconds();
  for (;;) {
    const int32_t token = out[0];
    ++stats.gen_tokens;
    const bool eos =
        !options.ignore_eos &&
        std::find(options.eos_ids.begin(), options.eos_ids.end(), token) != options.eos_ids.end();
    stats.stopped_by_eos = eos;
    const bool more =
        on_token(token) && !eos && stats.gen_tokens < options.max_new_tokens && length < ctx;
    SeqWork next;
    next.id = kSeqId;
    if (!more) {
      next.release = true;
      MESHLM_RETURN_IF_ERROR(ex.Step({next}).status());
      break;
    }
    next.tokens = {token};
    ++length;
    MESHLM_ASSIGN_OR_RETURN(out, ex.Step({next}));
    ++stats.decode_steps;
  }
  stats.decode_seconds = NowSeconds() - t0;
  return stats;
}

Result<BenchResult> RunBench(Executor& ex, size_t prompt_tokens, size_t gen_tokens, size_t repeats,
                             size_t batch) {
  const size_t V = ex.model().config().vocab_size;
  if (prompt_tokens == 0) return Error("[bench] --prompt-tokens must be at least 1");
  if (batch == 0) return Error("[bench] --batch must be at least 1");
  if (prompt_tokens + gen_tokens > ex.model().max_context()) {
    return Error("[bench] {} prompt + {} generated tokens exceed the context of {}", prompt_tokens,
                 gen_tokens, ex.model().max_context());
  }
  std::mt19937 rng(7);
  // Each sequence of a batch has its own random prompt.
  std::vector<std::vector<int32_t>> prompts(batch, std::vector<int32_t>(prompt_tokens));
  for (auto& p : prompts) {
    for (auto& t : p) t = static_cast<int32_t>(rng() % V);
  }
  std::vector<double> prefill, decode, comm, compute;
  const double start = NowSeconds();
  for (size_t r = 0; r < std::max<size_t>(repeats, 1); ++r) {
    // Prompts run one after another (prompt speed is per sequence); then all sequences
    // decode together, one step for all of them.
    std::vector<int32_t> last(batch);
    double t0 = NowSeconds();
    for (size_t b = 0; b < batch; ++b) {
      SeqWork w;
      w.id = kSeqId + b;
      w.start = true;
      w.tokens = prompts[b];
      MESHLM_ASSIGN_OR_RETURN(std::vector<int32_t> out, ex.Step({w}));
      last[b] = out[0];
    }
    prefill.push_back((NowSeconds() - t0) / static_cast<double>(batch));
    ex.ResetTimes();
    t0 = NowSeconds();
    for (size_t i = 0; i < gen_tokens; ++i) {
      std::vector<SeqWork> step(batch);
      for (size_t b = 0; b < batch; ++b) {
        step[b].id = kSeqId + b;
        step[b].tokens = {last[b]};
      }
      MESHLM_ASSIGN_OR_RETURN(last, ex.Step(step));
    }
    decode.push_back(NowSeconds() - t0);
    comm.push_back(ex.times().comm_seconds / std::max<size_t>(gen_tokens, 1));
    compute.push_back(ex.times().compute_seconds / std::max<size_t>(gen_tokens, 1));
    std::vector<SeqWork> done(batch);
    for (size_t b = 0; b < batch; ++b) {
      done[b].id = kSeqId + b;
      done[b].release = true;
    }
    MESHLM_RETURN_IF_ERROR(ex.Step(done).status());
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  BenchResult r;
  r.prompt_tokens = prompt_tokens;
  r.gen_tokens = gen_tokens;
  r.batch = batch;
  r.prefill_seconds = median(prefill);
  r.decode_seconds = median(decode);
  r.comm_seconds_per_token = median(comm);
  r.compute_seconds_per_token = median(compute);
  r.seconds = NowSeconds() - start;
  r.peak_rss_bytes = PeakRssBytes();
  return r;
}

size_t PeakRssBytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<size_t>(ru.ru_maxrss) * 1024;
}

}  // namespace meshlm::engine
