// Generation loop and benchmark.
#include "engine/generate.h"

#include <sys/resource.h>

#include <algorithm>
#include <random>

#include "base/clock.h"

namespace meshlm::engine {

Result<GenerateStats> Generate(model::Model& model, ThreadPool& pool,
                               std::span<const int32_t> prompt, const GenerateOptions& options,
                               const std::function<bool(int32_t)>& on_token) {
  if (prompt.empty()) return Error("[generate] the prompt is empty");
  MESHLM_RETURN_IF_ERROR(options.sampling.Validate());
  const size_t V = model.config().vocab_size;
  auto cache = model.NewCache();
  if (prompt.size() >= cache->capacity()) {
    return Error("[generate] prompt of {} tokens does not fit the context of {}", prompt.size(),
                 cache->capacity());
  }
  std::vector<int32_t> history(prompt.begin(), prompt.end());
  std::vector<float> logits(V);
  Sampler sampler(options.sampling);
  GenerateStats stats;
  stats.prompt_tokens = prompt.size();

  model::SeqStep step{cache.get(), prompt.data(), prompt.size(), false};
  MESHLM_RETURN_IF_ERROR(model.Validate({&step, 1}));
  double t0 = NowSeconds();
  model.Forward({&step, 1}, logits.data(), pool);
  stats.prefill_seconds = NowSeconds() - t0;

  t0 = NowSeconds();
  while (stats.gen_tokens < options.max_new_tokens) {
    const int32_t token = sampler.Sample(logits, history);
    history.push_back(token);
    ++stats.gen_tokens;
    const bool eos = !options.ignore_eos && std::find(options.eos_ids.begin(),
                                                      options.eos_ids.end(), token) !=
                                                options.eos_ids.end();
    if (!on_token(token) || eos) {
      stats.stopped_by_eos = eos;
      break;
    }
    if (stats.gen_tokens == options.max_new_tokens || cache->length() + 1 > cache->capacity()) {
      break;
    }
    step = model::SeqStep{cache.get(), &history.back(), 1, false};
    model.Forward({&step, 1}, logits.data(), pool);
    ++stats.decode_steps;
  }
  stats.decode_seconds = NowSeconds() - t0;
  return stats;
}

Result<BenchResult> RunBench(model::Model& model, ThreadPool& pool, size_t prompt_tokens,
                             size_t gen_tokens, size_t repeats) {
  const size_t V = model.config().vocab_size;
  if (prompt_tokens == 0) return Error("[bench] --prompt-tokens must be at least 1");
  if (prompt_tokens + gen_tokens > model.max_context()) {
    return Error("[bench] {} prompt + {} generated tokens exceed the context of {}", prompt_tokens,
                 gen_tokens, model.max_context());
  }
  std::mt19937 rng(7);
  std::vector<int32_t> prompt(prompt_tokens);
  for (auto& t : prompt) t = static_cast<int32_t>(rng() % V);
  std::vector<float> logits(V);
  std::vector<double> prefill, decode;
  const double start = NowSeconds();
  for (size_t r = 0; r < std::max<size_t>(repeats, 1); ++r) {
    auto cache = model.NewCache();
    model::SeqStep step{cache.get(), prompt.data(), prompt.size(), false};
    double t0 = NowSeconds();
    model.Forward({&step, 1}, logits.data(), pool);
    prefill.push_back(NowSeconds() - t0);
    t0 = NowSeconds();
    for (size_t i = 0; i < gen_tokens; ++i) {
      const int32_t token =
          static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      step = model::SeqStep{cache.get(), &token, 1, false};
      model.Forward({&step, 1}, logits.data(), pool);
    }
    decode.push_back(NowSeconds() - t0);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  BenchResult r;
  r.prompt_tokens = prompt_tokens;
  r.gen_tokens = gen_tokens;
  r.prefill_seconds = median(prefill);
  r.decode_seconds = median(decode);
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
