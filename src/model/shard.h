// ShardSpec: which part of a model one rank holds (a tensor-parallel slice of a range
// of layers), and the checks that say which splits a model allows.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "base/status.h"
#include "model/config.h"

namespace meshlm::model {

struct ShardSpec {
  size_t tp_rank = 0;
  size_t tp_size = 1;
  /// Expert parallelism inside a stage: each of the ep groups holds E/ep of the experts,
  /// each expert's FFN split over the group's tp ranks.
  size_t ep_rank = 0;
  size_t ep_size = 1;
  /// How attention, the dense FFN layers and the LM head are split when ep > 1: over all
  /// tp × ep ranks of the stage (each rank its own heads), or, when false, over tp alone
  /// and repeated in every ep group (when the heads do not divide by tp × ep).
  bool dense_over_stage = false;
  size_t layer_begin = 0;
  size_t layer_end = 0;  // exclusive; 0 = through the last layer
  /// Whether this shard embeds tokens (the first pipeline stage) and computes logits
  /// (the last). Set by Resolve from the layer range.
  bool first_stage = true;
  bool last_stage = true;

  /// Fills layer_end and the stage flags for a model of `num_layers` layers; checks ranges.
  Status Resolve(size_t num_layers);
  bool whole() const { return tp_size == 1 && ep_size == 1 && first_stage && last_stage; }
  /// Ranks in this shard's stage, all of which hold a part of each MoE layer.
  size_t stage_size() const { return tp_size * ep_size; }
  /// This rank's part of the attention, dense FFN and LM head, and the number of parts.
  size_t dense_rank() const { return dense_over_stage ? ep_rank * tp_size + tp_rank : tp_rank; }
  size_t dense_size() const { return dense_over_stage ? stage_size() : tp_size; }
};

/// A half-open range [begin, end) of a dimension split `parts` ways: the first
/// `n % parts` parts are one longer.
struct Range {
  size_t begin = 0;
  size_t end = 0;
  size_t size() const { return end - begin; }
};
Range SplitEven(size_t n, size_t parts, size_t index);

/// Whether heads, KV heads and the dense FFN width divide into `parts` equal shares.
bool SplitsDense(const ModelConfig& config, size_t parts);
/// SplitsDense, and the column slices that split (of the attention output projection, and
/// of the dense layers' down projection) fall on whole blocks of the stored weights.
bool SplitsDenseColumns(const ModelConfig& config, size_t parts);
/// tp values (1..max) that divide heads, KV heads and the FFN width.
std::vector<size_t> ValidTensorParallel(const ModelConfig& config, size_t max_tp = 64);
/// OK when `tp` splits the model evenly, else an error listing the valid values:
/// "[plan] num_heads_kv=8 is not divisible by tp=3; valid tp: 1, 2, 4, 8".
Status CheckTensorParallel(const ModelConfig& config, size_t tp);

/// ep values (1..max) that divide the experts (only 1 for a dense model).
std::vector<size_t> ValidExpertParallel(const ModelConfig& config, size_t max_ep = 256);
/// OK when `ep` splits the experts evenly, else an error naming the counts and the valid
/// values: "[plan] num_experts=12 is not divisible by ep=5; valid ep: 1, 2, 3, 4, 6, 12".
Status CheckExpertParallel(const ModelConfig& config, size_t ep);

}  // namespace meshlm::model
