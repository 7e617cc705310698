// Shard ranges and tensor-parallel checks.
#include "model/shard.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

namespace meshlm::model {

Status ShardSpec::Resolve(size_t num_layers) {
  if (tp_size == 0 || tp_rank >= tp_size) {
    return Error("[shard] tensor-parallel rank {} is outside a group of {}", tp_rank, tp_size);
  }
  if (ep_size == 0 || ep_rank >= ep_size) {
    return Error("[shard] expert-parallel rank {} is outside a group of {}", ep_rank, ep_size);
  }
  if (layer_end == 0) layer_end = num_layers;
  if (layer_begin >= layer_end || layer_end > num_layers) {
    return Error("[shard] layer range [{}, {}) is not inside the model's {} layers", layer_begin,
                 layer_end, num_layers);
  }
  first_stage = layer_begin == 0;
  last_stage = layer_end == num_layers;
  return OkStatus();
}

Range SplitEven(size_t n, size_t parts, size_t index) {
  const size_t base = n / parts, extra = n % parts;
  const size_t begin = index * base + std::min(index, extra);
  return {begin, begin + base + (index < extra ? 1 : 0)};
}

bool SplitsDense(const ModelConfig& c, size_t parts) {
  const int64_t n = static_cast<int64_t>(parts);
  return n > 0 && c.num_heads % n == 0 && c.num_heads_kv % n == 0 && c.intermediate_size % n == 0;
}

bool SplitsDenseColumns(const ModelConfig& c, size_t parts) {
  const int64_t n = static_cast<int64_t>(parts), unit = c.column_unit;
  const bool dense_layers =
      c.num_experts == 0 || std::count(c.moe_layers.begin(), c.moe_layers.end(), false) > 0;
  return SplitsDense(c, parts) && (c.num_heads * c.head_dim / n) % unit == 0 &&
         (!dense_layers || (c.intermediate_size / n) % unit == 0);
}

std::vector<size_t> ValidTensorParallel(const ModelConfig& c, size_t max_tp) {
  std::vector<size_t> valid;
  for (size_t tp = 1; tp <= max_tp; ++tp) {
    if (SplitsDense(c, tp) && (c.num_experts == 0 || c.moe_intermediate_size % tp == 0)) {
      valid.push_back(tp);
    }
  }
  return valid;
}

Status CheckTensorParallel(const ModelConfig& c, size_t tp) {
  if (tp == 0) return Error("[plan] tp must be at least 1");
  const char* what = nullptr;
  int64_t value = 0;
  if (c.num_heads_kv % tp != 0) {
    what = "num_heads_kv";
    value = c.num_heads_kv;
  } else if (c.num_heads % tp != 0) {
    what = "num_heads";
    value = c.num_heads;
  } else if (c.intermediate_size % tp != 0) {
    what = "intermediate_size";
    value = c.intermediate_size;
  } else if (c.num_experts > 0 && c.moe_intermediate_size % tp != 0) {
    what = "moe_intermediate_size";
    value = c.moe_intermediate_size;
  }
  if (what == nullptr) return OkStatus();
  return Error("[plan] {}={} is not divisible by tp={}; valid tp: {}", what, value, tp,
               fmt::join(ValidTensorParallel(c), ", "));
}

std::vector<size_t> ValidExpertParallel(const ModelConfig& c, size_t max_ep) {
  std::vector<size_t> valid = {1};
  for (size_t ep = 2; ep <= max_ep && c.num_experts > 0; ++ep) {
    if (c.num_experts % ep == 0) valid.push_back(ep);
  }
  return valid;
}

Status CheckExpertParallel(const ModelConfig& c, size_t ep) {
  if (ep == 0) return Error("[plan] ep must be at least 1");
  if (ep == 1) return OkStatus();
  if (c.num_experts == 0) {
    return Error("[plan] ep={} needs a mixture-of-experts model; {} is dense", ep, c.arch_name);
  }
  if (c.num_experts % ep == 0) return OkStatus();
  return Error("[plan] num_experts={} is not divisible by ep={}; valid ep: {}", c.num_experts, ep,
               fmt::join(ValidExpertParallel(c), ", "));
}

}  // namespace meshlm::model
