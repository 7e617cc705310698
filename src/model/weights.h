// Model weights: views into mmap'd tensors, checked against the config.
#pragma once

#include <concepts>
#include <initializer_list>
#include <memory>
#include <type_traits>
#include <vector>

#include "base/mapped_file.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/shard.h"
#include "tensor/matrix.h"

namespace meshlm::model {

/// Shapes below are of the whole model; a tensor-parallel shard holds H/tp heads,
/// Hk/tp KV heads and F/tp FFN columns of each layer, and V/tp rows of the LM head.
/// One expert's SwiGLU: [Fe, D], [Fe, D], [D, Fe] (Fe/tp columns of it in a shard).
struct ExpertWeights {
  Matrix gate;
  Matrix up;
  Matrix down;
};

/// A mixture-of-experts FFN. Every rank holds the whole router (it routes every token)
/// and the experts [expert_begin, expert_begin + experts.size()) of its expert-parallel
/// share.
struct MoeWeights {
  Matrix router;  // [E, D]
  size_t expert_begin = 0;
  std::vector<ExpertWeights> experts;
};

struct LayerWeights {
  std::vector<float> attn_norm;   // [D]
  std::vector<float> ffn_norm;    // [D]
  std::vector<float> q_norm;      // [Dh], Qwen3 only
  std::vector<float> k_norm;      // [Dh], Qwen3 only
  Matrix wq;                      // [H*Dh, D]
  Matrix wk;                      // [Hk*Dh, D]
  Matrix wv;                      // [Hk*Dh, D]
  Matrix wo;                      // [D, H*Dh]
  std::vector<float> bq, bk, bv;  // Qwen2 only: [H*Dh], [Hk*Dh], [Hk*Dh]
  Matrix w_gate;                  // [F, D]
  Matrix w_up;                    // [F, D]
  Matrix w_down;                  // [D, F]
  /// Set in MoE layers, which have no dense w_gate/w_up/w_down.
  std::unique_ptr<MoeWeights> moe;
};

struct ModelWeights {
  Matrix embed;                      // [V, D]; the whole table (rows are paged in as used)
  std::vector<LayerWeights> layers;  // this shard's layers only
  std::vector<float> final_norm;     // [D]
  Matrix lm_head;                    // [V, D]; the embedding table when tied
  /// Copies of column slices (tensor-parallel shards of o_proj and down_proj).
  std::vector<std::vector<uint8_t>> owned;
  /// The matrices in the packed layout of tensor/quant.h, when the kernels in use read it faster
  /// (kernels::PackedLayoutHelps); their mapped source pages are dropped after the copy.
  std::unique_ptr<HugePageBuffer> packed;
};

/// Calls fn(m) for each matrix of one expert: gate, up, down. E is ExpertWeights or
/// const ExpertWeights.
template <class E, class Fn>
requires std::same_as<std::remove_const_t<E>, ExpertWeights>
void ForEachMatrix(E& e, Fn&& fn) {
  fn(e.gate);
  fn(e.up);
  fn(e.down);
}

/// Calls fn(m, is_expert) for each matrix a layer holds, in this order: wq, wk, wv, wo,
/// then the dense FFN's w_gate, w_up, w_down, or in a MoE layer the router and each held
/// expert's gate, up and down (is_expert true only for those: a token reads
/// num_experts_per_tok of all experts). L is LayerWeights or const LayerWeights.
template <class L, class Fn>
requires std::same_as<std::remove_const_t<L>, LayerWeights>
void ForEachMatrix(L& l, Fn&& fn) {
  for (auto* m : {&l.wq, &l.wk, &l.wv, &l.wo}) fn(*m, false);
  if (!l.moe) {
    for (auto* m : {&l.w_gate, &l.w_up, &l.w_down}) fn(*m, false);
    return;
  }
  // The experts are as const as the layer.
  std::conditional_t<std::is_const_v<L>, const MoeWeights, MoeWeights>& moe = *l.moe;
  fn(moe.router, false);
  for (auto& e : moe.experts) ForEachMatrix(e, [&](auto& m) { fn(m, true); });
}

/// Finds and checks every tensor the config calls for, and takes this shard's slices of
/// them (views into the mmap'd files: only the slices' pages are ever read). Q8_0, Q4_0,
/// Q4_K, Q6_K and MLX 4-bit matrices are repacked into `packed` when that makes the
/// matmuls faster. Errors name the tensor, the file and the expected and actual shapes or
/// dtypes.
Result<ModelWeights> LoadWeights(const ModelConfig& config, const TensorStore& store,
                                 const ShardSpec& shard, bool show_progress = false);

}  // namespace meshlm::model
