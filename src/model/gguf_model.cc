// GGUF metadata → ModelConfig, GGUF tensor names → Hugging Face names, tokenizer metadata.
#include "model/gguf_model.h"

#include <fmt/format.h>

#include <cstring>

namespace meshlm::model {
namespace {

// GGUF suffix after "blk.N." → Hugging Face suffix after "model.layers.N.".
constexpr std::pair<const char*, const char*> kLayerNames[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_q_norm.weight", "self_attn.q_norm.weight"},
    {"attn_k_norm.weight", "self_attn.k_norm.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
    // Mixtures of experts: the router, and each kind of expert matrix stacked
    // [E, rows, cols] (the name weights.cc looks for, as MLX folders store them).
    {"ffn_gate_inp.weight", "mlp.gate.weight"},
    {"ffn_gate_exps.weight", "mlp.switch_mlp.gate_proj.weight"},
    {"ffn_up_exps.weight", "mlp.switch_mlp.up_proj.weight"},
    {"ffn_down_exps.weight", "mlp.switch_mlp.down_proj.weight"},
};

// llama.cpp's converter reorders the rows of each llama attn_q/attn_k head so that RoPE
// pairs adjacent elements (2j, 2j+1); meshlm rotates halves as Hugging Face does (j and
// j + Dh/2). GGUF row 2j + a of a head is Hugging Face row a·Dh/2 + j; this undoes it
// into an owned copy (rows are whole blocks, so it works for every tensor type).
Result<const uint8_t*> UnpermuteRows(const GgufTensor& t, int64_t heads, int64_t head_dim,
                                     const std::string& path, std::vector<uint8_t>* out) {
  const uint64_t rows = t.dims.size() == 2 ? t.dims[1] : 0;
  if (rows != static_cast<uint64_t>(heads * head_dim)) {
    return Error("[gguf] '{}': tensor '{}' has {} rows, expected {} heads × {}", path, t.name, rows,
                 heads, head_dim);
  }
  const size_t row_bytes = t.nbytes / rows, half = head_dim / 2;
  out->resize(t.nbytes);
  for (int64_t h = 0; h < heads; ++h) {
    for (size_t j = 0; j < half; ++j) {
      for (size_t a = 0; a < 2; ++a) {
        const size_t src = h * head_dim + 2 * j + a, dst = h * head_dim + a * half + j;
        std::memcpy(out->data() + dst * row_bytes, t.data + src * row_bytes, row_bytes);
      }
    }
  }
  return static_cast<const uint8_t*>(out->data());
}

// Mixture-of-experts keys: expert_count, expert_used_count and the experts' width
// (expert_feed_forward_length; Mixtral files, labelled llama, use feed_forward_length).
// A layer is sparse where its router tensor ffn_gate_inp is present.
Status ReadExperts(const GgufFile& f, const std::string& p, ModelConfig* c) {
  MESHLM_ASSIGN_OR_RETURN(c->num_experts, f.GetInt(p + "expert_count", 0));
  if (c->num_experts == 0) {
    if (c->arch == Arch::kQwen3Moe) {
      return Error("[gguf] '{}': architecture qwen3moe without {}expert_count", f.path(), p);
    }
    return OkStatus();
  }
  if (c->arch == Arch::kLlama) c->arch = Arch::kMixtral;
  MESHLM_ASSIGN_OR_RETURN(c->num_experts_per_tok, f.GetInt(p + "expert_used_count"));
  MESHLM_ASSIGN_OR_RETURN(c->moe_intermediate_size,
                          f.GetInt(p + "expert_feed_forward_length", c->intermediate_size));
  // llama.cpp renormalises the top-k weights for both architectures unless told otherwise.
  c->norm_topk_prob = true;
  if (f.Find(p + "expert_weights_norm") != nullptr) {
    MESHLM_ASSIGN_OR_RETURN(c->norm_topk_prob, f.GetBool(p + "expert_weights_norm"));
  }
  c->moe_layers.assign(c->num_layers, false);
  for (int64_t l = 0; l < c->num_layers; ++l) {
    c->moe_layers[l] = f.FindTensor(fmt::format("blk.{}.ffn_gate_inp.weight", l)) != nullptr;
  }
  return CheckMoeConfig(*c, f.path());
}

Status ReadConfig(const GgufFile& f, const std::string& arch, ModelConfig* c) {
  const std::string p = arch + ".";
  c->arch_name = arch;
  if (arch == "llama") {
    c->arch = Arch::kLlama;
  } else if (arch == "qwen2") {
    c->arch = Arch::kQwen2;
    c->attention_bias = true;
  } else if (arch == "qwen3") {
    c->arch = Arch::kQwen3;
    c->qk_norm = true;
  } else if (arch == "qwen3moe") {
    c->arch = Arch::kQwen3Moe;
    c->qk_norm = true;
  } else {
    return Error(
        "[gguf] '{}': architecture '{}' unsupported (supported: llama, qwen2, qwen3, "
        "qwen3moe)",
        f.path(), arch);
  }
  MESHLM_ASSIGN_OR_RETURN(c->hidden_size, f.GetInt(p + "embedding_length"));
  MESHLM_ASSIGN_OR_RETURN(c->intermediate_size, f.GetInt(p + "feed_forward_length"));
  MESHLM_ASSIGN_OR_RETURN(c->num_layers, f.GetInt(p + "block_count"));
  MESHLM_ASSIGN_OR_RETURN(c->num_heads, f.GetInt(p + "attention.head_count"));
  MESHLM_ASSIGN_OR_RETURN(c->num_heads_kv, f.GetInt(p + "attention.head_count_kv", c->num_heads));
  MESHLM_ASSIGN_OR_RETURN(c->max_position_embeddings, f.GetInt(p + "context_length", 4096));
  if (c->hidden_size <= 0 || c->intermediate_size <= 0 || c->num_layers <= 0 || c->num_heads <= 0 ||
      c->num_heads_kv <= 0 || c->max_position_embeddings <= 0 || c->num_layers > 100000 ||
      c->num_heads % c->num_heads_kv != 0) {
    return Error(
        "[gguf] '{}': hyperparameters out of range: embedding_length={} "
        "feed_forward_length={} block_count={} head_count={} head_count_kv={}",
        f.path(), c->hidden_size, c->intermediate_size, c->num_layers, c->num_heads,
        c->num_heads_kv);
  }
  MESHLM_ASSIGN_OR_RETURN(c->head_dim,
                          f.GetInt(p + "attention.key_length", c->hidden_size / c->num_heads));
  if (c->head_dim <= 0 || c->head_dim % 2 != 0) {
    return Error("[gguf] '{}': head dimension {} must be positive and even", f.path(), c->head_dim);
  }
  MESHLM_ASSIGN_OR_RETURN(double eps, f.GetFloat(p + "attention.layer_norm_rms_epsilon", 1e-5));
  MESHLM_ASSIGN_OR_RETURN(double theta, f.GetFloat(p + "rope.freq_base", 10000.0));
  c->rms_norm_eps = static_cast<float>(eps);
  c->rope_theta = static_cast<float>(theta);
  if (f.Find(p + "rope.scaling.type") != nullptr) {
    MESHLM_ASSIGN_OR_RETURN(std::string type, f.GetString(p + "rope.scaling.type"));
    if (type == "linear") {
      MESHLM_ASSIGN_OR_RETURN(double factor, f.GetFloat(p + "rope.scaling.factor"));
      c->rope_scaling.type = "linear";
      c->rope_scaling.factor = static_cast<float>(factor);
    } else if (type != "none") {
      return Error("[gguf] '{}': rope scaling '{}' unsupported (supported: none, linear)", f.path(),
                   type);
    }
  }
  const GgufTensor* embd = f.FindTensor("token_embd.weight");
  if (embd == nullptr || embd->dims.size() != 2) {
    return Error("[gguf] '{}': tensor 'token_embd.weight' missing or not 2-D", f.path());
  }
  c->vocab_size = static_cast<int64_t>(embd->dims[1]);
  c->tie_word_embeddings = f.FindTensor("output.weight") == nullptr;
  return ReadExperts(f, p, c);
}

}  // namespace

std::string GgufToHfName(const std::string& n) {
  if (n == "token_embd.weight") return "model.embed_tokens.weight";
  if (n == "output_norm.weight") return "model.norm.weight";
  if (n == "output.weight") return "lm_head.weight";
  if (n.rfind("blk.", 0) != 0) return "";
  const size_t dot = n.find('.', 4);
  if (dot == std::string::npos || dot == 4 || dot - 4 > 6) return "";
  for (size_t i = 4; i < dot; ++i) {
    if (n[i] < '0' || n[i] > '9') return "";
  }
  const std::string layer = n.substr(4, dot - 4), rest = n.substr(dot + 1);
  for (const auto& [g, h] : kLayerNames) {
    if (rest == g) return "model.layers." + layer + "." + h;
  }
  return "";
}

Result<GgufTokenizer> ReadGgufTokenizer(const GgufFile& f) {
  GgufTokenizer t;
  if (f.Find("tokenizer.ggml.model") == nullptr) return t;
  MESHLM_ASSIGN_OR_RETURN(t.model, f.GetString("tokenizer.ggml.model"));
  if (f.Find("tokenizer.ggml.pre") != nullptr) {
    MESHLM_ASSIGN_OR_RETURN(t.pre, f.GetString("tokenizer.ggml.pre"));
  }
  MESHLM_ASSIGN_OR_RETURN(const std::vector<std::string>* tokens,
                          f.GetStrings("tokenizer.ggml.tokens"));
  t.tokens = *tokens;
  const size_t n = t.tokens.size();
  if (f.Find("tokenizer.ggml.scores") != nullptr) {
    MESHLM_ASSIGN_OR_RETURN(const std::vector<double>* s, f.GetFloats("tokenizer.ggml.scores"));
    if (s->size() != n) {
      return Error("[gguf] '{}': tokenizer.ggml.scores has {} entries for {} tokens", f.path(),
                   s->size(), n);
    }
    t.scores.assign(s->begin(), s->end());
  }
  if (f.Find("tokenizer.ggml.token_type") != nullptr) {
    MESHLM_ASSIGN_OR_RETURN(const std::vector<int64_t>* tt, f.GetInts("tokenizer.ggml.token_type"));
    if (tt->size() != n) {
      return Error("[gguf] '{}': tokenizer.ggml.token_type has {} entries for {} tokens", f.path(),
                   tt->size(), n);
    }
    t.token_types.assign(tt->begin(), tt->end());
  }
  if (f.Find("tokenizer.ggml.merges") != nullptr) {
    MESHLM_ASSIGN_OR_RETURN(const std::vector<std::string>* m,
                            f.GetStrings("tokenizer.ggml.merges"));
    t.merges = *m;
  }
  struct IdKey {
    const char* key;
    int64_t* out;
  };
  for (const IdKey& k : {IdKey{"tokenizer.ggml.bos_token_id", &t.bos_id},
                         IdKey{"tokenizer.ggml.eos_token_id", &t.eos_id},
                         IdKey{"tokenizer.ggml.eot_token_id", &t.eot_id},
                         IdKey{"tokenizer.ggml.unknown_token_id", &t.unk_id},
                         IdKey{"tokenizer.ggml.padding_token_id", &t.pad_id}}) {
    MESHLM_ASSIGN_OR_RETURN(*k.out, f.GetInt(k.key, -1));
    if (*k.out < -1 || *k.out >= static_cast<int64_t>(n)) {
      return Error("[gguf] '{}': {} = {} is not a token id (vocabulary of {})", f.path(), k.key,
                   *k.out, n);
    }
  }
  t.add_bos = t.model == "llama";
  if (f.Find("tokenizer.ggml.add_bos_token") != nullptr) {
    MESHLM_ASSIGN_OR_RETURN(t.add_bos, f.GetBool("tokenizer.ggml.add_bos_token"));
  }
  if (f.Find("tokenizer.ggml.add_eos_token") != nullptr) {
    MESHLM_ASSIGN_OR_RETURN(t.add_eos, f.GetBool("tokenizer.ggml.add_eos_token"));
  }
  if (f.Find("tokenizer.ggml.add_space_prefix") != nullptr) {
    MESHLM_ASSIGN_OR_RETURN(t.add_space_prefix, f.GetBool("tokenizer.ggml.add_space_prefix"));
  }
  if (f.Find("tokenizer.chat_template") != nullptr) {
    MESHLM_ASSIGN_OR_RETURN(t.chat_template, f.GetString("tokenizer.chat_template"));
  }
  return t;
}

namespace {
Status ConfigAndTokenizer(const GgufFile& f, ModelConfig* c, GgufTokenizer* tok) {
  MESHLM_ASSIGN_OR_RETURN(std::string arch, f.GetString("general.architecture"));
  MESHLM_RETURN_IF_ERROR(ReadConfig(f, arch, c));
  MESHLM_ASSIGN_OR_RETURN(*tok, ReadGgufTokenizer(f));
  for (const GgufTensor& t : f.contents().tensors) {
    if (t.quant) c->column_unit = std::max<int64_t>(c->column_unit, QuantBlockElems(*t.quant));
  }
  if (tok->bos_id >= 0) c->bos_token_ids = {static_cast<int32_t>(tok->bos_id)};
  if (tok->eos_id >= 0) c->eos_token_ids = {static_cast<int32_t>(tok->eos_id)};
  if (tok->eot_id >= 0 && tok->eot_id != tok->eos_id) {
    c->eos_token_ids.push_back(static_cast<int32_t>(tok->eot_id));
  }
  return OkStatus();
}
}  // namespace

Result<ModelConfig> LoadModelConfigOfPath(const std::string& path) {
  if (!path.ends_with(".gguf")) return LoadModelConfig(path);
  MESHLM_ASSIGN_OR_RETURN(auto f, GgufFile::Open(path));
  ModelConfig c;
  GgufTokenizer tok;
  MESHLM_RETURN_IF_ERROR(ConfigAndTokenizer(*f, &c, &tok));
  return c;
}

Result<GgufModel> LoadGgufModel(const std::string& path) {
  GgufModel m;
  MESHLM_ASSIGN_OR_RETURN(m.file, GgufFile::Open(path));
  const GgufFile& f = *m.file;
  MESHLM_RETURN_IF_ERROR(ConfigAndTokenizer(f, &m.config, &m.tokenizer));
  const ModelConfig& c = m.config;
  if (const GgufTensor* rf = f.FindTensor("rope_freqs.weight")) {
    if (rf->dtype != DType::kF32 || rf->dims.size() != 1 ||
        rf->dims[0] != static_cast<uint64_t>(c.head_dim / 2)) {
      return Error("[gguf] '{}': tensor 'rope_freqs.weight' must be F32 [{}]", path,
                   c.head_dim / 2);
    }
    m.rope_freq_factors.resize(c.head_dim / 2);
    std::memcpy(m.rope_freq_factors.data(), rf->data, rf->nbytes);
    for (float v : m.rope_freq_factors) {
      if (!(v > 0)) return Error("[gguf] '{}': rope_freqs.weight holds {} (must be > 0)", path, v);
    }
  }
  // Pointers into `owned` buffers stay valid as it grows: moving a vector keeps its heap.
  m.owned.reserve(2 * static_cast<size_t>(c.num_layers));
  for (const GgufTensor& t : f.contents().tensors) {
    const std::string hf = GgufToHfName(t.name);
    if (hf.empty()) continue;
    TensorInfo info;
    info.name = hf;
    info.file = path;
    info.data = t.data;
    info.nbytes = t.nbytes;
    info.dtype = t.dtype ? *t.dtype : DType::kU8;
    info.quant = t.quant;
    for (auto it = t.dims.rbegin(); it != t.dims.rend(); ++it) {
      info.shape.push_back(static_cast<int64_t>(*it));
    }
    const bool is_q = hf.ends_with("q_proj.weight"), is_k = hf.ends_with("k_proj.weight");
    // Mixtral files are labelled llama and reordered the same way.
    if ((c.arch == Arch::kLlama || c.arch == Arch::kMixtral) && (is_q || is_k)) {
      m.owned.emplace_back();
      info.mapped = false;
      MESHLM_ASSIGN_OR_RETURN(info.data, UnpermuteRows(t, is_q ? c.num_heads : c.num_heads_kv,
                                                       c.head_dim, path, &m.owned.back()));
    }
    m.tensors.emplace(hf, std::move(info));
  }
  return m;
}

}  // namespace meshlm::model
