// Model weights: views into mmap'd tensors, checked against the config.
#pragma once

#include <memory>
#include <vector>

#include "base/mapped_file.h"
#include "kernels/kernels.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/shard.h"

namespace meshlm::model {

/// Shapes below are of the whole model; a tensor-parallel shard holds H/tp heads,
/// Hk/tp KV heads and F/tp FFN columns of each layer, and V/tp rows of the LM head.
/// One expert's SwiGLU: [Fe, D], [Fe, D], [D, Fe] (Fe/tp columns of it in a shard).
struct ExpertWeights {
  kernels::Weight gate;
  kernels::Weight up;
  kernels::Weight down;
};

/// A mixture-of-experts FFN. Every rank holds the whole router (it routes every token)
/// and the experts [expert_begin, expert_begin + experts.size()) of its expert-parallel
/// share.
struct MoeWeights {
  kernels::Weight router;  // [E, D]
  size_t expert_begin = 0;
  std::vector<ExpertWeights> experts;
};

struct LayerWeights {
  std::vector<float> attn_norm;   // [D]
  std::vector<float> ffn_norm;    // [D]
  std::vector<float> q_norm;      // [Dh], Qwen3 only
  std::vector<float> k_norm;      // [Dh], Qwen3 only
  kernels::Weight wq;             // [H*Dh, D]
  kernels::Weight wk;             // [Hk*Dh, D]
  kernels::Weight wv;             // [Hk*Dh, D]
  kernels::Weight wo;             // [D, H*Dh]
  std::vector<float> bq, bk, bv;  // Qwen2 only: [H*Dh], [Hk*Dh], [Hk*Dh]
  kernels::Weight w_gate;         // [F, D]
  kernels::Weight w_up;           // [F, D]
  kernels::Weight w_down;         // [D, F]
  /// Set in MoE layers, which have no dense w_gate/w_up/w_down.
  std::unique_ptr<MoeWeights> moe;
};

struct ModelWeights {
  kernels::Weight embed;             // [V, D]; the whole table (rows are paged in as used)
  std::vector<LayerWeights> layers;  // this shard's layers only
  std::vector<float> final_norm;     // [D]
  kernels::Weight lm_head;           // [V, D]; the embedding table when tied
  /// Copies of column slices (tensor-parallel shards of o_proj and down_proj).
  std::vector<std::vector<uint8_t>> owned;
  /// The matrices in the packed layout of tensor/quant.h, when the kernels in use read it faster
  /// (kernels::PackedLayoutHelps); their mapped source pages are dropped after the copy.
  std::unique_ptr<HugePageBuffer> packed;
};

/// Finds and checks every tensor the config calls for, and takes this shard's slices of
/// them (views into the mmap'd files: only the slices' pages are ever read). Q8_0, Q4_0,
/// Q4_K, Q6_K and MLX 4-bit matrices are repacked into `packed` when that makes the
/// matmuls faster. Errors name
/// the tensor, the file and the expected and actual shapes or dtypes.
Result<ModelWeights> LoadWeights(const ModelConfig& config, const TensorStore& store,
                                 const ShardSpec& shard);

}  // namespace meshlm::model
