// Model: a loaded Llama-family decoder (Llama 2/3, Mistral, Qwen2, Qwen3) and its forward
// pass over a batch of sequences.
//
// Goals: weights used in place from the mmap'd files; one forward call processes any mix
// of prompts (many tokens) and decode steps (one token) as shared matmuls.
// Non-goals here: sampling (engine), sharding across ranks (parallel).
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/safetensors.h"
#include "model/weights.h"

namespace meshlm::model {

struct LoadOptions {
  /// Context limit in positions; 0 = the model's max_position_embeddings. A value above
  /// the model's limit is an error.
  size_t max_context = 0;
};

/// One sequence's share of a forward step: `num_tokens` tokens at positions
/// cache->length() onwards. The cache grows by num_tokens.
struct SeqStep {
  KvCache* cache = nullptr;
  const int32_t* tokens = nullptr;
  size_t num_tokens = 0;
  bool all_logits = false;  // logits for every token, not only the last
};

class Model {
 public:
  static Result<std::unique_ptr<Model>> Load(const std::string& dir, const LoadOptions& options);

  const ModelConfig& config() const { return config_; }
  const GenerationDefaults& generation_defaults() const { return generation_; }
  size_t max_context() const { return max_context_; }
  /// Bytes of weights read per decoded token (every matrix once, plus the embedding row).
  size_t weight_bytes() const;

  std::unique_ptr<KvCache> NewCache() const;

  /// Checks that the steps fit their caches and that token ids are in range.
  Status Validate(std::span<const SeqStep> steps) const;

  /// Runs the decoder over every step's tokens and writes logits: for each step in order,
  /// num_tokens rows when all_logits, else one row; logits: [rows, V]. Call Validate
  /// first for outside input. Not thread-safe (uses internal scratch).
  void Forward(std::span<const SeqStep> steps, float* logits, ThreadPool& pool);

  /// Test hook: called after each layer with the residual stream x: [T, D].
  std::function<void(size_t layer, const float* x, size_t T)> layer_observer;

 private:
  Model() = default;
  void Layer(size_t l, std::span<const SeqStep> steps, size_t T, ThreadPool& pool);

  ModelConfig config_;
  GenerationDefaults generation_;
  std::unique_ptr<TensorStore> store_;
  ModelWeights w_;
  std::vector<float> inv_freq_;
  size_t max_context_ = 0;

  // Scratch, grown as needed: x [T, D], xn [T, D], q [T, H*Dh], k/v [T, Hk*Dh],
  // attn [T, H*Dh], gate/up [T, F], cos/sin [T, Dh/2].
  std::vector<float> x_, xn_, q_, k_, v_, attn_, gate_, up_, cos_, sin_, rows_;
};

}  // namespace meshlm::model
