// Plan: how a model is split over ranks — tensor- and expert-parallel groups inside
// pipeline stages — and what each rank must hold in memory. Made from config.json alone,
// before any weight is read.
//
// Rank layout: rank = (stage * ep + ep_rank) * tp + tp_rank, so rank 0 is the first
// stage's first member (it embeds tokens and drives every step), a stage's tp × ep
// members are consecutive, and so are the tp members of each expert group.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "base/status.h"
#include "model/config.h"
#include "model/shard.h"

namespace meshlm::parallel {

struct PlanRequest {
  size_t world_size = 1;
  size_t tp = 0;  // 0 = world_size / pp
  size_t pp = 0;  // 0 = 1
  size_t ep = 0;  // 0 = 1; experts split over ep groups of each stage
  /// Explicit layers per stage (sums to the model's layers), or empty.
  std::vector<size_t> layers;
  /// Bytes each rank can use, to split layers in proportion; empty = equal split.
  std::vector<size_t> memory;
  size_t context = 0;    // KV-cache positions per rank to budget for; 0 = the model's
  size_t sequences = 1;  // sequences cached at once
  double weight_bytes_per_element = 2;  // of the stored matrices (0.5625 for Q4_0, …)
  /// The host of each rank (ranks with equal values share one host), or empty: one host.
  std::vector<size_t> host_of;
  /// Whether the hosts are joined by links fast enough for a tensor-parallel all-reduce
  /// in every layer (RDMA); false over TCP.
  bool fast_links = false;
};

struct RankPlan {
  model::ShardSpec shard;
  size_t weight_bytes = 0;
  size_t kv_bytes = 0;
  size_t total_bytes() const { return weight_bytes + kv_bytes; }
};

struct Plan {
  size_t tp = 1;
  size_t pp = 1;
  size_t ep = 1;
  /// Attention, dense FFN layers and the LM head split over each stage's tp × ep ranks
  /// (ep > 1 and the heads divide), rather than over tp in each expert group.
  bool dense_over_stage = false;
  size_t context = 0;
  std::vector<RankPlan> ranks;  // by rank
  /// Why this layout, when it was chosen rather than asked for ("" otherwise).
  std::string why;
  size_t stage_size() const { return tp * ep; }
  size_t dense_parts() const { return dense_over_stage ? tp * ep : tp; }
  size_t stage_of(size_t rank) const { return rank / stage_size(); }
  size_t tp_rank_of(size_t rank) const { return rank % tp; }
  size_t ep_rank_of(size_t rank) const { return rank / tp % ep; }
};

/// Checks the request against the model (divisibility, layer counts, memory when given)
/// and splits it. Errors say what would work instead.
Result<Plan> MakePlan(const model::ModelConfig& config, const PlanRequest& request);

/// A table: one row per rank with stage, layers, heads, FFN, experts and vocabulary
/// slices, and memory (weights + KV cache); with `memory` (bytes per rank) also each
/// rank's memory and headroom, and a line saying whether the plan fits.
std::string FormatPlan(const model::ModelConfig& config, const Plan& plan,
                       const std::vector<size_t>& memory = {});

/// The elements of the model's matrices (embedding, every layer's, the LM head unless
/// tied): its parameter count less the norms and biases.
double WeightElements(const model::ModelConfig& config);

/// Parses "--layers 10,18" style lists.
Result<std::vector<size_t>> ParseSizeList(const std::string& text, const char* flag);

}  // namespace meshlm::parallel
