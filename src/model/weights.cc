// Weight lookup and validation against the config.
#include "model/weights.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace meshlm::model {
namespace {

Result<const TensorInfo*> GetChecked(const TensorStore& store, const std::string& name,
                                     std::vector<int64_t> shape) {
  MESHLM_ASSIGN_OR_RETURN(const TensorInfo* t, store.Get(name));
  if (t->shape != shape) {
    return Error("[model] tensor '{}' in '{}' has shape [{}] but config.json implies [{}]", name,
                 t->file, fmt::join(t->shape, ", "), fmt::join(shape, ", "));
  }
  if (t->dtype != DType::kF32 && t->dtype != DType::kF16 && t->dtype != DType::kBF16) {
    return Error("[model] tensor '{}' in '{}' has dtype {}; supported: F32, F16, BF16", name,
                 t->file, DTypeName(t->dtype));
  }
  return t;
}

Result<kernels::Weight> GetMatrix(const TensorStore& store, const std::string& name, int64_t rows,
                                  int64_t cols) {
  MESHLM_ASSIGN_OR_RETURN(const TensorInfo* t, GetChecked(store, name, {rows, cols}));
  return kernels::Weight{t->data, t->dtype, static_cast<size_t>(rows), static_cast<size_t>(cols),
                         static_cast<size_t>(cols)};
}

// Small vectors (norms, biases) are converted to f32 once at load.
Result<std::vector<float>> GetVector(const TensorStore& store, const std::string& name, int64_t n) {
  MESHLM_ASSIGN_OR_RETURN(const TensorInfo* t, GetChecked(store, name, {n}));
  std::vector<float> v(n);
  kernels::ConvertToF32(t->data, t->dtype, n, v.data());
  return v;
}

}  // namespace

Result<ModelWeights> LoadWeights(const ModelConfig& c, const TensorStore& store) {
  ModelWeights w;
  const int64_t D = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const int64_t q_dim = c.num_heads * c.head_dim, kv_dim = c.num_heads_kv * c.head_dim;
  MESHLM_ASSIGN_OR_RETURN(w.embed, GetMatrix(store, "model.embed_tokens.weight", V, D));
  w.layers.resize(c.num_layers);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    LayerWeights& lw = w.layers[l];
    const std::string p = fmt::format("model.layers.{}.", l);
    MESHLM_ASSIGN_OR_RETURN(lw.attn_norm, GetVector(store, p + "input_layernorm.weight", D));
    MESHLM_ASSIGN_OR_RETURN(lw.ffn_norm, GetVector(store, p + "post_attention_layernorm.weight", D));
    MESHLM_ASSIGN_OR_RETURN(lw.wq, GetMatrix(store, p + "self_attn.q_proj.weight", q_dim, D));
    MESHLM_ASSIGN_OR_RETURN(lw.wk, GetMatrix(store, p + "self_attn.k_proj.weight", kv_dim, D));
    MESHLM_ASSIGN_OR_RETURN(lw.wv, GetMatrix(store, p + "self_attn.v_proj.weight", kv_dim, D));
    MESHLM_ASSIGN_OR_RETURN(lw.wo, GetMatrix(store, p + "self_attn.o_proj.weight", D, q_dim));
    if (c.attention_bias) {
      MESHLM_ASSIGN_OR_RETURN(lw.bq, GetVector(store, p + "self_attn.q_proj.bias", q_dim));
      MESHLM_ASSIGN_OR_RETURN(lw.bk, GetVector(store, p + "self_attn.k_proj.bias", kv_dim));
      MESHLM_ASSIGN_OR_RETURN(lw.bv, GetVector(store, p + "self_attn.v_proj.bias", kv_dim));
    }
    if (c.qk_norm) {
      MESHLM_ASSIGN_OR_RETURN(lw.q_norm, GetVector(store, p + "self_attn.q_norm.weight", c.head_dim));
      MESHLM_ASSIGN_OR_RETURN(lw.k_norm, GetVector(store, p + "self_attn.k_norm.weight", c.head_dim));
    }
    MESHLM_ASSIGN_OR_RETURN(lw.w_gate, GetMatrix(store, p + "mlp.gate_proj.weight", F, D));
    MESHLM_ASSIGN_OR_RETURN(lw.w_up, GetMatrix(store, p + "mlp.up_proj.weight", F, D));
    MESHLM_ASSIGN_OR_RETURN(lw.w_down, GetMatrix(store, p + "mlp.down_proj.weight", D, F));
  }
  MESHLM_ASSIGN_OR_RETURN(w.final_norm, GetVector(store, "model.norm.weight", D));
  if (store.Find("lm_head.weight") != nullptr) {
    MESHLM_ASSIGN_OR_RETURN(w.lm_head, GetMatrix(store, "lm_head.weight", V, D));
  } else if (c.tie_word_embeddings) {
    w.lm_head = w.embed;
  } else {
    return Error("[model] tensor 'lm_head.weight' not found in '{}' and tie_word_embeddings is "
                 "false in config.json", store.dir());
  }
  return w;
}

}  // namespace meshlm::model
