// Model loading and the decoder forward pass.
#include "model/model.h"

#include <cmath>
#include <cstring>

#include "base/check.h"
#include "kernels/kernels.h"
#include "kernels/quant_matmul.h"

namespace meshlm::model {

Result<std::unique_ptr<Model>> Model::Load(const std::string& dir, const LoadOptions& options) {
  std::unique_ptr<Model> m(new Model());
  if (dir.ends_with(".gguf")) {
    MESHLM_ASSIGN_OR_RETURN(GgufModel g, LoadGgufModel(dir));
    m->config_ = g.config;
    m->generation_.eos_token_ids = g.config.eos_token_ids;
    m->store_ = TensorStore::FromTensors(dir, std::move(g.tensors));
    m->gguf_ = std::make_unique<GgufModel>(std::move(g));
  } else {
    MESHLM_ASSIGN_OR_RETURN(m->config_, LoadModelConfig(dir));
    MESHLM_ASSIGN_OR_RETURN(m->generation_, LoadGenerationDefaults(dir, m->config_));
  }
  const size_t model_ctx = static_cast<size_t>(m->config_.max_position_embeddings);
  if (options.max_context > model_ctx) {
    return Error("[model] context {} exceeds the model's max_position_embeddings {} ({})",
                 options.max_context, model_ctx, dir + "/config.json");
  }
  m->max_context_ = options.max_context ? options.max_context : model_ctx;
  // The shard plan is checked before any weight is touched.
  m->shard_ = options.shard;
  const ModelConfig& c = m->config_;
  MESHLM_RETURN_IF_ERROR(m->shard_.Resolve(c.num_layers));
  MESHLM_RETURN_IF_ERROR(CheckMoeConfig(c, dir));
  MESHLM_RETURN_IF_ERROR(CheckTensorParallel(c, m->shard_.tp_size));
  MESHLM_RETURN_IF_ERROR(CheckExpertParallel(c, m->shard_.ep_size));
  const size_t parts = m->shard_.dense_size();
  if (!SplitsDense(c, parts)) {
    return Error(
        "[plan] attention over the stage's {} ranks needs num_heads={}, "
        "num_heads_kv={} and intermediate_size={} divisible by {}",
        parts, c.num_heads, c.num_heads_kv, c.intermediate_size, parts);
  }
  m->num_heads_ = c.num_heads / parts;
  m->num_heads_kv_ = c.num_heads_kv / parts;
  m->ffn_ = c.intermediate_size / parts;
  m->vocab_range_ = SplitEven(c.vocab_size, parts, m->shard_.dense_rank());
  if (!m->store_) {
    MESHLM_ASSIGN_OR_RETURN(m->store_, TensorStore::Open(dir));
  }
  MESHLM_ASSIGN_OR_RETURN(m->w_, LoadWeights(c, *m->store_, m->shard_, options.show_progress));
  m->inv_freq_ = RopeInvFreq(c);
  if (m->gguf_) {  // Llama 3 scaling, stored as divisors in GGUF files
    for (size_t i = 0; i < m->gguf_->rope_freq_factors.size(); ++i) {
      m->inv_freq_[i] /= m->gguf_->rope_freq_factors[i];
    }
  }
  return m;
}

size_t Model::weight_bytes() const {
  size_t total = MatrixBytes(w_.lm_head) + MatrixBytes(SliceRows(w_.embed, 0, 1));
  for (const auto& l : w_.layers) {
    // A token reads the router and K experts; this shard holds held/E of them.
    size_t experts = 0;
    ForEachMatrix(l, [&](const Matrix& m, bool is_expert) {
      (is_expert ? experts : total) += MatrixBytes(m);
    });
    if (experts > 0) total += experts * config_.num_experts_per_tok / config_.num_experts;
  }
  return total;
}

std::unique_ptr<KvCache> Model::NewCache() const {
  return std::make_unique<KvCache>(w_.layers.size(), num_heads_kv_ * config_.head_dim,
                                   max_context_);
}

Status Model::Validate(std::span<const SeqStep> steps) const {
  for (size_t s = 0; s < steps.size(); ++s) {
    const SeqStep& st = steps[s];
    if (st.cache == nullptr || st.num_tokens == 0) {
      return Error("[model] step {} has no cache or no tokens", s);
    }
    if (st.cache->length() + st.num_tokens > st.cache->capacity()) {
      return Error("[model] sequence of {} tokens exceeds the context of {}",
                   st.cache->length() + st.num_tokens, st.cache->capacity());
    }
    for (size_t i = 0; i < st.num_tokens; ++i) {
      if (st.tokens[i] < 0 || st.tokens[i] >= config_.vocab_size) {
        return Error("[model] token id {} out of range [0, {})", st.tokens[i], config_.vocab_size);
      }
    }
  }
  return OkStatus();
}

void Model::Forward(std::span<const SeqStep> steps, float* logits, ThreadPool& pool) {
  MESHLM_CHECK(shard_.whole(), "the single-process Forward needs the whole model");
  const Status s = Forward(steps, nullptr, logits, pool);
  MESHLM_CHECK(s.ok(), "{}", s.message());
}

Status Model::Forward(std::span<const SeqStep> steps, const float* hidden_in, float* out,
                      ThreadPool& pool) {
  const ModelConfig& c = config_;
  const size_t D = c.hidden_size, half = c.head_dim / 2;
  if (shard_.dense_size() > 1 && !all_sum) return Error("[model] a split model needs an all_sum");
  if (shard_.ep_size > 1 && !stage_all_sum) return Error("[model] ep > 1 needs a stage_all_sum");
  size_t T = 0, rows = 0;
  for (const SeqStep& st : steps) {
    T += st.num_tokens;
    rows += st.all_logits ? st.num_tokens : 1;
  }
  // x: [T, D], every step's tokens back to back.
  float* x = GrowTo(x_, T * D);
  std::vector<int32_t> positions;
  positions.reserve(T);
  for (const SeqStep& st : steps) {
    for (size_t i = 0; i < st.num_tokens; ++i) {
      positions.push_back(static_cast<int32_t>(st.cache->length() + i));
    }
  }
  if (shard_.first_stage) {
    std::vector<int32_t> ids;
    ids.reserve(T);
    for (const SeqStep& st : steps) ids.insert(ids.end(), st.tokens, st.tokens + st.num_tokens);
    kernels::EmbeddingLookup(w_.embed, ids.data(), T, x);
  } else {
    std::memcpy(x, hidden_in, T * D * sizeof(float));
  }
  kernels::RopeTable(positions.data(), T, inv_freq_.data(), half, GrowTo(cos_, T * half),
                     GrowTo(sin_, T * half));
  for (const SeqStep& st : steps) st.cache->Reserve(st.cache->length() + st.num_tokens);

  for (size_t l = 0; l < w_.layers.size(); ++l) {
    MESHLM_RETURN_IF_ERROR(Layer(l, steps, T, pool));
    if (layer_observer) layer_observer(shard_.layer_begin + l, x_.data(), T);
  }
  for (const SeqStep& st : steps) st.cache->set_length(st.cache->length() + st.num_tokens);
  if (!shard_.last_stage) {
    std::memcpy(out, x_.data(), T * D * sizeof(float));
    return OkStatus();
  }

  // Only the rows that need logits go through the final norm and the LM head.
  float* sel = GrowTo(rows_, rows * D);
  size_t r = 0, t0 = 0;
  for (const SeqStep& st : steps) {
    const size_t first = st.all_logits ? 0 : st.num_tokens - 1;
    for (size_t i = first; i < st.num_tokens; ++i, ++r) {
      std::memcpy(sel + r * D, x_.data() + (t0 + i) * D, D * sizeof(float));
    }
    t0 += st.num_tokens;
  }
  kernels::RmsNorm(sel, w_.final_norm.data(), rows, D, c.rms_norm_eps, sel);
  kernels::MatMul(sel, rows, w_.lm_head, nullptr, out, pool);
  return OkStatus();
}

Status Model::Layer(size_t l, std::span<const SeqStep> steps, size_t T, ThreadPool& pool) {
  const ModelConfig& c = config_;
  const LayerWeights& lw = w_.layers[l];
  // This shard's heads and FFN columns; the same as the model's when tp = 1.
  const size_t D = c.hidden_size, F = ffn_, Dh = c.head_dim;
  const size_t H = num_heads_, Hk = num_heads_kv_;
  const bool split = shard_.dense_size() > 1;
  const size_t q_dim = H * Dh, kv_dim = Hk * Dh;
  float* x = x_.data();
  float* xn = GrowTo(xn_, T * D);
  float* q = GrowTo(q_, T * q_dim);
  float* k = GrowTo(k_, T * kv_dim);
  float* v = GrowTo(v_, T * kv_dim);
  float* attn = GrowTo(attn_, T * q_dim);

  // Attention block. xn: [T, D]; q: [T, H, Dh]; k, v: [T, Hk, Dh].
  kernels::RmsNorm(x, lw.attn_norm.data(), T, D, c.rms_norm_eps, xn);
  kernels::MatMul(xn, T, lw.wq, lw.bq.empty() ? nullptr : lw.bq.data(), q, pool);
  kernels::MatMul(xn, T, lw.wk, lw.bk.empty() ? nullptr : lw.bk.data(), k, pool);
  kernels::MatMul(xn, T, lw.wv, lw.bv.empty() ? nullptr : lw.bv.data(), v, pool);
  if (c.qk_norm) {
    kernels::RmsNorm(q, lw.q_norm.data(), T * H, Dh, c.rms_norm_eps, q);
    kernels::RmsNorm(k, lw.k_norm.data(), T * Hk, Dh, c.rms_norm_eps, k);
  }
  kernels::ApplyRope(q, T, H, Dh, cos_.data(), sin_.data());
  kernels::ApplyRope(k, T, Hk, Dh, cos_.data(), sin_.data());
  const float scale = 1.0f / std::sqrt(static_cast<float>(Dh));
  size_t t0 = 0;
  for (const SeqStep& st : steps) {
    const size_t pos0 = st.cache->length();
    float* kc = st.cache->k(l);
    float* vc = st.cache->v(l);
    std::memcpy(kc + pos0 * kv_dim, k + t0 * kv_dim, st.num_tokens * kv_dim * sizeof(float));
    std::memcpy(vc + pos0 * kv_dim, v + t0 * kv_dim, st.num_tokens * kv_dim * sizeof(float));
    kernels::Attention(q + t0 * q_dim, st.num_tokens, pos0, H, Hk, Dh, kc, vc, kv_dim, scale,
                       attn + t0 * q_dim, pool);
    t0 += st.num_tokens;
  }
  // With tp > 1 each rank holds a partial sum of the projection over its heads.
  kernels::MatMul(attn, T, lw.wo, nullptr, xn, pool);
  if (split) MESHLM_RETURN_IF_ERROR(all_sum(xn, T * D));
  kernels::AddInPlace(x, xn, T * D);

  kernels::RmsNorm(x, lw.ffn_norm.data(), T, D, c.rms_norm_eps, xn);
  if (lw.moe) {
    // Every rank of the stage holds a share of the experts (and of their columns): the
    // partial outputs are summed over the whole stage.
    float* y = GrowTo(attn_, T * D);
    MoeForward(c, *lw.moe, xn, T, y, &moe_, pool);
    if (shard_.ep_size > 1) {
      MESHLM_RETURN_IF_ERROR(stage_all_sum(y, T * D));
    } else if (shard_.tp_size > 1) {
      MESHLM_RETURN_IF_ERROR(all_sum(y, T * D));
    }
    kernels::AddInPlace(x, y, T * D);
    return OkStatus();
  }
  // MLP block. gate, up: [T, F].
  float* gate = GrowTo(gate_, T * F);
  float* up = GrowTo(up_, T * F);
  kernels::MatMul(xn, T, lw.w_gate, nullptr, gate, pool);
  kernels::MatMul(xn, T, lw.w_up, nullptr, up, pool);
  kernels::SiluMul(gate, up, T * F, gate);
  kernels::MatMul(gate, T, lw.w_down, nullptr, xn, pool);
  if (split) MESHLM_RETURN_IF_ERROR(all_sum(xn, T * D));
  kernels::AddInPlace(x, xn, T * D);
  return OkStatus();
}

}  // namespace meshlm::model
