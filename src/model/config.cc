// config.json and generation_config.json parsing.
#include "model/config.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "base/mapped_file.h"

namespace meshlm::model {

using nlohmann::json;

namespace {

// Reads an integer field; `required` fields give an error naming the file when absent.
Status GetInt(const json& j, const char* key, const std::string& path, bool required,
              int64_t* out) {
  if (!j.contains(key) || j[key].is_null()) {
    if (required) return Error("[config] '{}': missing field '{}'", path, key);
    return OkStatus();
  }
  if (!j[key].is_number_integer()) {
    return Error("[config] '{}': field '{}' must be an integer, got {}", path, key, j[key].dump());
  }
  *out = j[key].get<int64_t>();
  if (*out < 0) return Error("[config] '{}': field '{}' is negative ({})", path, key, *out);
  return OkStatus();
}

Status GetFloat(const json& j, const char* key, const std::string& path, float* out) {
  if (!j.contains(key) || j[key].is_null()) return OkStatus();
  if (!j[key].is_number()) {
    return Error("[config] '{}': field '{}' must be a number, got {}", path, key, j[key].dump());
  }
  *out = j[key].get<float>();
  return OkStatus();
}

// Token id fields are an int or a list of ints.
Status GetIds(const json& j, const char* key, const std::string& path, std::vector<int32_t>* out) {
  if (!j.contains(key) || j[key].is_null()) return OkStatus();
  out->clear();
  const json& v = j[key];
  if (v.is_number_integer()) {
    out->push_back(v.get<int32_t>());
    return OkStatus();
  }
  if (v.is_array()) {
    for (const auto& e : v) {
      if (!e.is_number_integer()) break;
      out->push_back(e.get<int32_t>());
    }
    if (out->size() == v.size()) return OkStatus();
  }
  return Error("[config] '{}': field '{}' must be a token id or a list of ids, got {}", path, key,
               v.dump());
}

Result<json> ParseJson(const std::string& text, const std::string& path) {
  try {
    json j = json::parse(text);
    if (!j.is_object()) return Error("[config] '{}' is not a JSON object", path);
    return j;
  } catch (const json::exception& e) {
    return Error("[config] '{}' is not valid JSON: {}", path, e.what());
  }
}

// The expert fields of Qwen3MoeForCausalLM and MixtralForCausalLM config.json files.
Status ParseMoe(const json& j, const std::string& path, ModelConfig* c) {
  const bool mixtral = c->arch == Arch::kMixtral;
  // Mixtral names the expert count num_local_experts; Qwen3-MoE num_experts.
  const char* count_key = mixtral ? "num_local_experts" : "num_experts";
  MESHLM_RETURN_IF_ERROR(GetInt(j, count_key, path, true, &c->num_experts));
  MESHLM_RETURN_IF_ERROR(GetInt(j, "num_experts_per_tok", path, true, &c->num_experts_per_tok));
  if (c->num_experts == 0) return Error("[config] '{}': {} must be positive", path, count_key);
  if (mixtral) {
    // Every layer is sparse and each expert is an intermediate_size-wide SwiGLU; the
    // router's top-k weights are renormalised (a softmax over the chosen experts).
    c->moe_intermediate_size = c->intermediate_size;
    c->norm_topk_prob = true;
    c->moe_layers.assign(c->num_layers, true);
    return CheckMoeConfig(*c, path);
  }
  MESHLM_RETURN_IF_ERROR(GetInt(j, "moe_intermediate_size", path, true, &c->moe_intermediate_size));
  c->norm_topk_prob = false;
  if (j.contains("norm_topk_prob") && !j["norm_topk_prob"].is_null()) {
    if (!j["norm_topk_prob"].is_boolean()) {
      return Error("[config] '{}': field 'norm_topk_prob' must be true or false, got {}", path,
                   j["norm_topk_prob"].dump());
    }
    c->norm_topk_prob = j["norm_topk_prob"].get<bool>();
  }
  int64_t step = 1;
  MESHLM_RETURN_IF_ERROR(GetInt(j, "decoder_sparse_step", path, false, &step));
  if (step == 0) return Error("[config] '{}': decoder_sparse_step must be positive", path);
  std::vector<bool> dense(c->num_layers, false);
  if (j.contains("mlp_only_layers") && !j["mlp_only_layers"].is_null()) {
    const json& m = j["mlp_only_layers"];
    if (!m.is_array()) {
      return Error(
          "[config] '{}': field 'mlp_only_layers' must be a list of layer indices, "
          "got {}",
          path, m.dump());
    }
    for (const json& e : m) {
      if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() >= c->num_layers) {
        return Error("[config] '{}': mlp_only_layers entry {} is not a layer index in [0, {})",
                     path, e.dump(), c->num_layers);
      }
      dense[e.get<int64_t>()] = true;
    }
  }
  // As Qwen3-MoE decides it: layer l is sparse when (l + 1) % decoder_sparse_step == 0
  // and l is not listed in mlp_only_layers.
  c->moe_layers.resize(c->num_layers);
  for (int64_t l = 0; l < c->num_layers; ++l) {
    c->moe_layers[l] = !dense[l] && (l + 1) % step == 0;
  }
  return CheckMoeConfig(*c, path);
}

}  // namespace

Result<ModelConfig> ParseModelConfig(const std::string& text, const std::string& path) {
  MESHLM_ASSIGN_OR_RETURN(json j, ParseJson(text, path));
  ModelConfig c;
  if (!j.contains("architectures") || !j["architectures"].is_array() ||
      j["architectures"].empty() || !j["architectures"][0].is_string()) {
    return Error("[config] '{}': missing 'architectures' list", path);
  }
  c.arch_name = j["architectures"][0].get<std::string>();
  if (c.arch_name == "LlamaForCausalLM") {
    c.arch = Arch::kLlama;
  } else if (c.arch_name == "MistralForCausalLM") {
    c.arch = Arch::kMistral;
  } else if (c.arch_name == "Qwen2ForCausalLM") {
    c.arch = Arch::kQwen2;
    c.attention_bias = true;
  } else if (c.arch_name == "Qwen3ForCausalLM") {
    c.arch = Arch::kQwen3;
    c.qk_norm = true;
  } else if (c.arch_name == "Qwen3MoeForCausalLM") {
    c.arch = Arch::kQwen3Moe;
    c.qk_norm = true;
  } else if (c.arch_name == "MixtralForCausalLM") {
    c.arch = Arch::kMixtral;
  } else {
    return Error(
        "[config] '{}': architecture '{}' unsupported (supported: LlamaForCausalLM, "
        "MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Qwen3MoeForCausalLM, "
        "MixtralForCausalLM)",
        path, c.arch_name);
  }
  MESHLM_RETURN_IF_ERROR(GetInt(j, "hidden_size", path, true, &c.hidden_size));
  MESHLM_RETURN_IF_ERROR(GetInt(j, "intermediate_size", path, true, &c.intermediate_size));
  MESHLM_RETURN_IF_ERROR(GetInt(j, "num_hidden_layers", path, true, &c.num_layers));
  MESHLM_RETURN_IF_ERROR(GetInt(j, "num_attention_heads", path, true, &c.num_heads));
  c.num_heads_kv = c.num_heads;
  MESHLM_RETURN_IF_ERROR(GetInt(j, "num_key_value_heads", path, false, &c.num_heads_kv));
  MESHLM_RETURN_IF_ERROR(GetInt(j, "vocab_size", path, true, &c.vocab_size));
  c.max_position_embeddings = 4096;
  MESHLM_RETURN_IF_ERROR(
      GetInt(j, "max_position_embeddings", path, false, &c.max_position_embeddings));
  if (c.hidden_size == 0 || c.num_heads == 0 || c.num_heads_kv == 0 || c.num_layers == 0 ||
      c.vocab_size == 0 || c.intermediate_size == 0) {
    return Error(
        "[config] '{}': hidden_size, intermediate_size, num_hidden_layers, "
        "num_attention_heads, num_key_value_heads and vocab_size must be positive",
        path);
  }
  if (c.num_heads % c.num_heads_kv != 0) {
    return Error(
        "[config] '{}': num_attention_heads={} is not a multiple of "
        "num_key_value_heads={}",
        path, c.num_heads, c.num_heads_kv);
  }
  c.head_dim = c.hidden_size / c.num_heads;
  MESHLM_RETURN_IF_ERROR(GetInt(j, "head_dim", path, false, &c.head_dim));
  if (c.head_dim == 0 || c.head_dim % 2 != 0) {
    return Error("[config] '{}': head_dim={} must be positive and even", path, c.head_dim);
  }
  MESHLM_RETURN_IF_ERROR(GetFloat(j, "rms_norm_eps", path, &c.rms_norm_eps));
  MESHLM_RETURN_IF_ERROR(GetFloat(j, "rope_theta", path, &c.rope_theta));
  if (j.contains("quantization") && j["quantization"].is_object()) {  // MLX quantized
    MESHLM_RETURN_IF_ERROR(GetInt(j["quantization"], "group_size", path, false, &c.column_unit));
    if (c.column_unit <= 0) {
      return Error("[config] '{}': quantization.group_size={} must be positive", path,
                   c.column_unit);
    }
  }
  if (j.contains("tie_word_embeddings") && j["tie_word_embeddings"].is_boolean()) {
    c.tie_word_embeddings = j["tie_word_embeddings"].get<bool>();
  }
  if (j.contains("attention_bias") && j["attention_bias"].is_boolean()) {
    c.attention_bias = c.attention_bias || j["attention_bias"].get<bool>();
  }
  if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) {
    const json& rs = j["rope_scaling"];
    std::string type;
    if (rs.contains("rope_type") && rs["rope_type"].is_string()) type = rs["rope_type"];
    if (type.empty() && rs.contains("type") && rs["type"].is_string()) type = rs["type"];
    if (type == "default") type.clear();
    if (!type.empty() && type != "llama3" && type != "linear") {
      return Error("[config] '{}': rope_scaling type '{}' unsupported (supported: llama3, linear)",
                   path, type);
    }
    c.rope_scaling.type = type;
    MESHLM_RETURN_IF_ERROR(GetFloat(rs, "factor", path, &c.rope_scaling.factor));
    MESHLM_RETURN_IF_ERROR(GetFloat(rs, "low_freq_factor", path, &c.rope_scaling.low_freq_factor));
    MESHLM_RETURN_IF_ERROR(
        GetFloat(rs, "high_freq_factor", path, &c.rope_scaling.high_freq_factor));
    MESHLM_RETURN_IF_ERROR(GetInt(rs, "original_max_position_embeddings", path, false,
                                  &c.rope_scaling.original_max_position_embeddings));
  }
  MESHLM_RETURN_IF_ERROR(GetIds(j, "bos_token_id", path, &c.bos_token_ids));
  MESHLM_RETURN_IF_ERROR(GetIds(j, "eos_token_id", path, &c.eos_token_ids));
  if (c.arch == Arch::kQwen3Moe || c.arch == Arch::kMixtral) {
    MESHLM_RETURN_IF_ERROR(ParseMoe(j, path, &c));
  }
  return c;
}

Status CheckMoeConfig(const ModelConfig& c, const std::string& where) {
  if (c.num_experts <= 0) return OkStatus();
  if (c.num_experts_per_tok <= 0 || c.num_experts_per_tok > c.num_experts) {
    return Error("[config] '{}': num_experts_per_tok={} must lie in [1, num_experts={}]", where,
                 c.num_experts_per_tok, c.num_experts);
  }
  if (c.moe_intermediate_size <= 0) {
    return Error(
        "[config] '{}': the experts' FFN width (moe_intermediate_size) must be "
        "positive, got {}",
        where, c.moe_intermediate_size);
  }
  if (c.num_experts > 4096) {
    return Error("[config] '{}': num_experts={} is beyond the supported 4096", where,
                 c.num_experts);
  }
  if (c.moe_layers.size() != static_cast<size_t>(c.num_layers)) {
    return Error("[config] '{}': {} MoE layer flags for {} layers", where, c.moe_layers.size(),
                 c.num_layers);
  }
  return OkStatus();
}

Result<ModelConfig> LoadModelConfig(const std::string& dir) {
  const std::string path = dir + "/config.json";
  if (!FileExists(path))
    return Error("[config] '{}' not found (is '{}' a model folder?)", path, dir);
  MESHLM_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseModelConfig(text, path);
}

Result<GenerationDefaults> LoadGenerationDefaults(const std::string& dir,
                                                  const ModelConfig& config) {
  GenerationDefaults g;
  g.eos_token_ids = config.eos_token_ids;
  const std::string path = dir + "/generation_config.json";
  if (!FileExists(path)) return g;
  MESHLM_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  MESHLM_ASSIGN_OR_RETURN(json j, ParseJson(text, path));
  MESHLM_RETURN_IF_ERROR(GetIds(j, "eos_token_id", path, &g.eos_token_ids));
  const bool sample = j.contains("do_sample") && j["do_sample"].is_boolean() && j["do_sample"];
  if (sample) {
    g.temperature = 1.0f;
    MESHLM_RETURN_IF_ERROR(GetFloat(j, "temperature", path, &g.temperature));
    MESHLM_RETURN_IF_ERROR(GetFloat(j, "top_p", path, &g.top_p));
    MESHLM_RETURN_IF_ERROR(GetFloat(j, "min_p", path, &g.min_p));
    int64_t top_k = 0;
    MESHLM_RETURN_IF_ERROR(GetInt(j, "top_k", path, false, &top_k));
    g.top_k = static_cast<int32_t>(top_k);
  }
  MESHLM_RETURN_IF_ERROR(GetFloat(j, "repetition_penalty", path, &g.repetition_penalty));
  return g;
}

std::vector<float> RopeInvFreq(const ModelConfig& c) {
  const int64_t half = c.head_dim / 2;
  std::vector<float> inv(half);
  for (int64_t i = 0; i < half; ++i) {
    // As Hugging Face computes it: in float32, theta ** (2i / Dh).
    inv[i] = 1.0f / std::pow(c.rope_theta, static_cast<float>(2 * i) / c.head_dim);
  }
  const RopeScaling& rs = c.rope_scaling;
  if (rs.type == "linear") {
    for (float& f : inv) f /= rs.factor;
  } else if (rs.type == "llama3") {
    // Long wavelengths are slowed by `factor`, short ones kept, and the band between
    // interpolated smoothly.
    const float old_len = static_cast<float>(rs.original_max_position_embeddings);
    const float low_wavelen = old_len / rs.low_freq_factor;
    const float high_wavelen = old_len / rs.high_freq_factor;
    for (float& f : inv) {
      const float wavelen = 2.0f * static_cast<float>(M_PI) / f;
      if (wavelen > low_wavelen) {
        f = f / rs.factor;
      } else if (wavelen >= high_wavelen) {
        const float smooth =
            (old_len / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
        f = (1.0f - smooth) * f / rs.factor + smooth * f;
      }
    }
  }
  return inv;
}

}  // namespace meshlm::model
