// Model weights: views into mmap'd tensors, checked against the config.
#pragma once

#include <vector>

#include "kernels/kernels.h"
#include "model/config.h"
#include "model/safetensors.h"

namespace meshlm::model {

struct LayerWeights {
  std::vector<float> attn_norm;  // [D]
  std::vector<float> ffn_norm;   // [D]
  std::vector<float> q_norm;     // [Dh], Qwen3 only
  std::vector<float> k_norm;     // [Dh], Qwen3 only
  kernels::Weight wq;            // [H*Dh, D]
  kernels::Weight wk;            // [Hk*Dh, D]
  kernels::Weight wv;            // [Hk*Dh, D]
  kernels::Weight wo;            // [D, H*Dh]
  std::vector<float> bq, bk, bv;  // Qwen2 only: [H*Dh], [Hk*Dh], [Hk*Dh]
  kernels::Weight w_gate;        // [F, D]
  kernels::Weight w_up;          // [F, D]
  kernels::Weight w_down;        // [D, F]
};

struct ModelWeights {
  kernels::Weight embed;    // [V, D]
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;  // [D]
  kernels::Weight lm_head;  // [V, D]; the embedding table when tied
};

/// Finds and checks every tensor the config calls for. Errors name the tensor, the file
/// and the expected and actual shapes or dtypes.
Result<ModelWeights> LoadWeights(const ModelConfig& config, const TensorStore& store);

}  // namespace meshlm::model
