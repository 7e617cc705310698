// Sampling from logits.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

namespace meshlm::engine {

Status SamplingParams::Validate() const {
  if (!(temperature >= 0.0f) || !std::isfinite(temperature)) {
    return Error("[sampling] temperature {} must be >= 0", temperature);
  }
  if (top_k < 0) return Error("[sampling] top_k {} must be >= 0", top_k);
  if (!(top_p > 0.0f && top_p <= 1.0f))
    return Error("[sampling] top_p {} must be in (0, 1]", top_p);
  if (!(min_p >= 0.0f && min_p <= 1.0f))
    return Error("[sampling] min_p {} must be in [0, 1]", min_p);
  if (!(repetition_penalty > 0.0f) || !std::isfinite(repetition_penalty)) {
    return Error("[sampling] repetition_penalty {} must be > 0", repetition_penalty);
  }
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f)) {
    return Error("[sampling] presence_penalty {} must be in [-2, 2]", presence_penalty);
  }
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f)) {
    return Error("[sampling] frequency_penalty {} must be in [-2, 2]", frequency_penalty);
  }
  for (const auto& [token, bias] : logit_bias) {
    if (token < 0) return Error("[sampling] logit_bias token id {} is negative", token);
    if (!(bias >= -100.0f && bias <= 100.0f)) {
      return Error("[sampling] logit_bias {} for token {} must be in [-100, 100]", bias, token);
    }
  }
  return OkStatus();
}

int32_t Sampler::Sample(std::span<float> logits, std::span<const int32_t> history,
                        std::span<const int32_t> generated) {
  const int32_t V = static_cast<int32_t>(logits.size());
  for (const auto& [t, bias] : params_.logit_bias) {
    if (t >= 0 && t < V) logits[t] += bias;
  }
  if (params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f) {
    std::unordered_map<int32_t, int32_t> counts;
    for (int32_t t : generated) ++counts[t];
    for (const auto& [t, n] : counts) {
      if (t < 0 || t >= V) continue;
      logits[t] -= params_.presence_penalty + params_.frequency_penalty * static_cast<float>(n);
    }
  }
  if (params_.repetition_penalty != 1.0f) {
    // As in the CTRL paper and Hugging Face: each seen token once, positive logits
    // divided, negative multiplied.
    std::unordered_set<int32_t> seen(history.begin(), history.end());
    for (int32_t t : seen) {
      if (t < 0 || t >= V) continue;
      float& z = logits[t];
      z = z > 0 ? z / params_.repetition_penalty : z * params_.repetition_penalty;
    }
  }
  if (params_.temperature == 0.0f) {
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  // Candidates sorted by logit, descending; top-k first keeps the sort partial.
  candidates_.resize(V);
  for (int32_t i = 0; i < V; ++i) candidates_[i] = {logits[i] / params_.temperature, i};
  size_t n = candidates_.size();
  auto by_logit = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < n) {
    n = params_.top_k;
    std::partial_sort(candidates_.begin(), candidates_.begin() + n, candidates_.end(), by_logit);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_logit);
  }
  // Softmax over the survivors.
  const float max_z = candidates_[0].first;
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    candidates_[i].first = std::exp(candidates_[i].first - max_z);
    sum += candidates_[i].first;
  }
  for (size_t i = 0; i < n; ++i)
    candidates_[i].first = static_cast<float>(candidates_[i].first / sum);
  if (params_.min_p > 0.0f) {
    const float floor = params_.min_p * candidates_[0].first;
    size_t keep = 1;
    while (keep < n && candidates_[keep].first >= floor) ++keep;
    n = keep;
  }
  if (params_.top_p < 1.0f) {
    double cum = 0;
    size_t keep = 0;
    while (keep < n) {
      cum += candidates_[keep].first;
      ++keep;
      if (cum >= params_.top_p) break;
    }
    n = keep;
  }
  double total = 0;
  for (size_t i = 0; i < n; ++i) total += candidates_[i].first;
  const double u = std::uniform_real_distribution<double>(0.0, total)(rng_);
  double acc = 0;
  for (size_t i = 0; i < n; ++i) {
    acc += candidates_[i].first;
    if (u < acc) return candidates_[i].second;
  }
  return candidates_[n - 1].second;
}

}  // namespace meshlm::engine
