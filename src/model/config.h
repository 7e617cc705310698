// ModelConfig: a model's hyperparameters, read from a Hugging Face config.json, and the
// defaults of generation_config.json.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace meshlm::model {

enum class Arch { kLlama, kMistral, kQwen2, kQwen3, kQwen3Moe, kMixtral };

struct RopeScaling {
  std::string type;  // "" (none), "llama3", "linear"
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string arch_name;          // as written in config.json
  int64_t hidden_size = 0;        // D
  int64_t intermediate_size = 0;  // F
  int64_t num_layers = 0;         // L
  int64_t num_heads = 0;          // H
  int64_t num_heads_kv = 0;       // Hk
  int64_t head_dim = 0;           // Dh
  int64_t vocab_size = 0;         // V
  int64_t max_position_embeddings = 0;
  float rms_norm_eps = 1e-6f;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v projections carry biases (Qwen2)
  bool qk_norm = false;         // per-head RMSNorm of q and k before RoPE (Qwen3)
  // Mixture of experts (Qwen3-MoE, Mixtral); num_experts = 0 for a dense model.
  int64_t num_experts = 0;            // E
  int64_t num_experts_per_tok = 0;    // K, experts each token is routed to
  int64_t moe_intermediate_size = 0;  // Fe, one expert's FFN width
  /// Whether the top-K routing weights are divided by their sum (Qwen3-MoE's
  /// norm_topk_prob; Mixtral always does).
  bool norm_topk_prob = true;
  /// Per layer: true where the FFN is a mixture of experts (Qwen3-MoE's
  /// decoder_sparse_step and mlp_only_layers); empty for a dense model.
  std::vector<bool> moe_layers;
  std::vector<int32_t> bos_token_ids;
  std::vector<int32_t> eos_token_ids;
  /// Weights along a row that share one scale, the widest over the stored matrices: 1
  /// for float, 32 for Q8_0/Q4_0, 256 for K-quants, the group size of an MLX folder. A
  /// column split must fall on multiples of it.
  int64_t column_unit = 1;
};

/// Whether layer l's FFN is a mixture of experts.
inline bool IsMoeLayer(const ModelConfig& c, size_t l) {
  return l < c.moe_layers.size() && c.moe_layers[l];
}

/// Checks the expert fields against each other (E, K, Fe, the MoE layer list); `where`
/// names the file in errors.
Status CheckMoeConfig(const ModelConfig& config, const std::string& where);

struct GenerationDefaults {
  std::vector<int32_t> eos_token_ids;
  float temperature = 0.0f;  // 0 = greedy
  int32_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
};

/// Parses config.json text; `path` names it in errors.
Result<ModelConfig> ParseModelConfig(const std::string& json_text, const std::string& path);
/// Reads DIR/config.json.
Result<ModelConfig> LoadModelConfig(const std::string& dir);
/// Reads DIR/generation_config.json when present (defaults otherwise; eos from config).
Result<GenerationDefaults> LoadGenerationDefaults(const std::string& dir,
                                                  const ModelConfig& config);

/// The inverse RoPE frequencies [head_dim / 2], with the configured scaling applied.
std::vector<float> RopeInvFreq(const ModelConfig& config);

}  // namespace meshlm::model
