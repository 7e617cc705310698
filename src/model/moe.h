// Mixture-of-experts FFN (Qwen3-MoE, Mixtral): routing, tokens grouped by expert, and
// this shard's share of the experts' SwiGLUs.
//
// Goals: each selected expert's weights stream once per step for all the tokens routed
// to it (prefill and batched decode alike); experts no token chose are never read.
// Non-goals: combining shards' partial outputs (the model's stage all-sum does it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/aligned_vector.h"
#include "base/thread_pool.h"
#include "model/config.h"
#include "model/weights.h"

namespace meshlm::model {

/// Each token's K chosen experts and their weights, token by token: expert[t * K + j].
struct Routing {
  size_t k = 0;
  std::vector<int32_t> expert;
  std::vector<float> weight;
};

/// Picks every token's top-K experts from router logits [T, E]: a softmax over all E,
/// the K largest (ties to the lower expert id), divided by their sum when
/// `norm_topk_prob`. Deterministic and independent of the thread count.
void Route(const float* logits, size_t T, size_t E, size_t K, bool norm_topk_prob, Routing* out);

/// Scratch for MoeForward, grown as needed and reused across layers.
struct MoeScratch {
  AlignedVector<float> logits, xs, gate, up, ys;
  Routing routing;
  std::vector<uint32_t> order;  // token-slot indices grouped by expert
};

/// out: [T, D] = Σ over each token's chosen experts that this shard holds of
/// weight · down(silu(gate(x)) · up(x)), x = xn: [T, D]. With tensor parallelism the
/// experts hold Fe/tp columns and `out` is this rank's partial sum; the caller sums the
/// stage. Not thread-safe (uses `scratch`).
void MoeForward(const ModelConfig& config, const MoeWeights& w, const float* xn, size_t T,
                float* out, MoeScratch* scratch, ThreadPool& pool);

}  // namespace meshlm::model
