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

#include "base/aligned_vector.h"
#include "base/thread_pool.h"
#include "model/config.h"
#include "model/gguf_model.h"
#include "model/kv_cache.h"
#include "model/moe.h"
#include "model/safetensors.h"
#include "model/shard.h"
#include "model/weights.h"

namespace meshlm::model {

struct LoadOptions {
  /// Context limit in positions; 0 = the model's max_position_embeddings. A value above
  /// the model's limit is an error.
  size_t max_context = 0;
  /// The part of the model this process holds; the default is all of it.
  ShardSpec shard;
  /// Show progress on stderr while packing and reading in the weights (one rank does).
  bool show_progress = false;
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
  /// `dir` is a Hugging Face folder (safetensors, possibly MLX-quantized) or a .gguf file.
  static Result<std::unique_ptr<Model>> Load(const std::string& dir, const LoadOptions& options);

  const ModelConfig& config() const { return config_; }
  const ShardSpec& shard() const { return shard_; }
  /// The LM-head rows (vocabulary ids) whose logits this shard computes.
  Range vocab_range() const { return vocab_range_; }
  const GenerationDefaults& generation_defaults() const { return generation_; }
  /// The tokenizer metadata of a model loaded from a .gguf file; null for a folder.
  const GgufTokenizer* gguf_tokenizer() const { return gguf_ ? &gguf_->tokenizer : nullptr; }
  size_t max_context() const { return max_context_; }
  /// Bytes of weights read per decoded token (every matrix once, plus the embedding row).
  size_t weight_bytes() const;
  /// Bytes of weights repacked at load into the packed layout of tensor/quant.h (0 when
  /// none was: other types, or kernels that read the file layout as fast).
  size_t packed_bytes() const { return w_.packed ? w_.packed->size() : 0; }

  std::unique_ptr<KvCache> NewCache() const;

  /// Checks that the steps fit their caches and that token ids are in range.
  Status Validate(std::span<const SeqStep> steps) const;

  /// Runs this shard over every step's tokens. The first pipeline stage embeds the steps'
  /// tokens (hidden_in is ignored); later stages start from hidden_in: [T, D], T the
  /// steps' total tokens. The last stage writes logits to `out`: for each step in order,
  /// num_tokens rows when all_logits, else one row, each of vocab_range().size(); other
  /// stages write the hidden state [T, D]. A split shard needs `all_sum` set; its
  /// error (a failed peer) is returned. Call Validate first for outside input.
  /// Not thread-safe (uses internal scratch).
  Status Forward(std::span<const SeqStep> steps, const float* hidden_in, float* out,
                 ThreadPool& pool);
  /// The whole model in one process: tokens in, logits [rows, V] out.
  void Forward(std::span<const SeqStep> steps, float* logits, ThreadPool& pool);

  /// Sums `n` floats, in place, across the ranks that split attention and the dense FFN
  /// (shard().dense_size() of them: the tensor-parallel group, or the whole stage when
  /// dense_over_stage). Set by the parallel layer when that is more than one.
  std::function<Status(float* data, size_t n)> all_sum;
  /// Sums `n` floats across the whole stage (tp × ep ranks), in place: the combine of a
  /// mixture-of-experts layer. Set by the parallel layer when ep > 1 (with ep = 1 the
  /// stage is the tensor-parallel group and all_sum serves).
  std::function<Status(float* data, size_t n)> stage_all_sum;

  /// Test hook: called after each layer with the residual stream x: [T, D].
  std::function<void(size_t layer, const float* x, size_t T)> layer_observer;

 private:
  Model() = default;
  Status Layer(size_t l, std::span<const SeqStep> steps, size_t T, ThreadPool& pool);

  ModelConfig config_;
  ShardSpec shard_;
  Range vocab_range_;
  size_t num_heads_ = 0, num_heads_kv_ = 0, ffn_ = 0;  // this shard's share
  GenerationDefaults generation_;
  std::unique_ptr<TensorStore> store_;
  std::unique_ptr<GgufModel> gguf_;  // keeps a GGUF file's map alive
  ModelWeights w_;
  std::vector<float> inv_freq_;
  size_t max_context_ = 0;

  // Scratch, grown as needed: x [T, D], xn [T, D], q [T, H*Dh], k/v [T, Hk*Dh],
  // attn [T, H*Dh], gate/up [T, F], cos/sin [T, Dh/2].
  AlignedVector<float> x_, xn_, q_, k_, v_, attn_, gate_, up_, cos_, sin_, rows_;
  MoeScratch moe_;
};

}  // namespace meshlm::model
