// Shard planning: layer split, tensor-parallel checks, memory per rank.
#include "parallel/plan.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <numeric>
#include <sstream>

namespace meshlm::parallel {
namespace {

// Splits `layers` over stages in proportion to `weights` (at least one layer each),
// by largest remainder so the split is deterministic.
std::vector<size_t> Proportional(size_t layers, const std::vector<double>& weights) {
  const size_t n = weights.size();
  const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
  std::vector<size_t> out(n, 1);
  size_t left = layers - n;
  std::vector<std::pair<double, size_t>> rem;
  for (size_t i = 0; i < n; ++i) {
    const double share = (layers * weights[i] / total) - 1.0;
    const size_t whole = share > 0 ? std::min<size_t>(static_cast<size_t>(share), left) : 0;
    out[i] += whole;
    left -= whole;
    rem.push_back({share - whole, i});
  }
  std::stable_sort(rem.begin(), rem.end(), [](auto a, auto b) { return a.first > b.first; });
  for (size_t k = 0; left > 0; k = (k + 1) % n, --left) ++out[rem[k].second];
  return out;
}

std::string Bytes(size_t b) { return fmt::format("{:.1f} MiB", b / 1048576.0); }

}  // namespace

Result<std::vector<size_t>> ParseSizeList(const std::string& text, const char* flag) {
  std::vector<size_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    unsigned long long v = 0;
    try {
      v = std::stoull(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size()) return Error("[plan] {}: '{}' is not a number", flag, item);
    out.push_back(static_cast<size_t>(v));
  }
  return out;
}

Result<Plan> MakePlan(const model::ModelConfig& c, const PlanRequest& req) {
  const size_t world = req.world_size;
  if (world == 0) return Error("[plan] world size must be at least 1");
  const size_t pp = req.pp ? req.pp : (req.tp ? std::max<size_t>(1, world / req.tp) : 1);
  const size_t tp = req.tp ? req.tp : world / pp;
  if (tp * pp != world) {
    return Error("[plan] tp={} x pp={} = {} ranks, but the job has {}", tp, pp, tp * pp, world);
  }
  MESHLM_RETURN_IF_ERROR(model::CheckTensorParallel(c, tp));
  const size_t L = c.num_layers;
  if (pp > L) return Error("[plan] pp={} exceeds the model's {} layers", pp, L);
  std::vector<size_t> per_stage;
  if (!req.layers.empty()) {
    if (req.layers.size() != pp) {
      return Error("[plan] --layers lists {} stages but pp={}", req.layers.size(), pp);
    }
    const size_t sum = std::accumulate(req.layers.begin(), req.layers.end(), size_t{0});
    if (sum != L || std::count(req.layers.begin(), req.layers.end(), 0u) > 0) {
      return Error("[plan] --layers {} must be positive and add up to the model's {} layers",
                   fmt::join(req.layers, ","), L);
    }
    per_stage = req.layers;
  } else {
    std::vector<double> w(pp, 1.0);
    if (!req.memory.empty()) {
      if (req.memory.size() != world) {
        return Error("[plan] memory given for {} ranks, the job has {}", req.memory.size(), world);
      }
      // A stage is as strong as its smallest member.
      for (size_t s = 0; s < pp; ++s) {
        w[s] = static_cast<double>(
            *std::min_element(req.memory.begin() + s * tp, req.memory.begin() + (s + 1) * tp));
      }
    }
    per_stage = Proportional(L, w);
  }

  Plan plan;
  plan.tp = tp;
  plan.pp = pp;
  plan.context = req.context ? req.context : c.max_position_embeddings;
  const size_t D = c.hidden_size, F = c.intermediate_size, Dh = c.head_dim, V = c.vocab_size;
  const size_t eb = req.weight_bytes_per_element;
  const size_t layer_weights = (D * c.num_heads * Dh * 2 + D * c.num_heads_kv * Dh * 2 + 3 * D * F) * eb / tp;
  const size_t layer_kv = 2 * (c.num_heads_kv / tp) * Dh * sizeof(float) * plan.context * req.sequences;
  size_t begin = 0;
  for (size_t s = 0; s < pp; ++s) {
    for (size_t r = 0; r < tp; ++r) {
      RankPlan rp;
      rp.shard.tp_rank = r;
      rp.shard.tp_size = tp;
      rp.shard.layer_begin = begin;
      rp.shard.layer_end = begin + per_stage[s];
      MESHLM_RETURN_IF_ERROR(rp.shard.Resolve(L));
      rp.weight_bytes = per_stage[s] * layer_weights;
      if (rp.shard.last_stage) rp.weight_bytes += model::SplitEven(V, tp, r).size() * D * eb;
      rp.kv_bytes = per_stage[s] * layer_kv;
      plan.ranks.push_back(rp);
    }
    begin += per_stage[s];
  }
  if (!req.memory.empty()) {
    for (size_t i = 0; i < world; ++i) {
      if (plan.ranks[i].total_bytes() > req.memory[i]) {
        return Error("[plan] rank {} needs {} (weights {} + KV cache {} at context {}) but has {}; "
                     "add ranks, lower --ctx, or use a quantized model", i,
                     Bytes(plan.ranks[i].total_bytes()), Bytes(plan.ranks[i].weight_bytes),
                     Bytes(plan.ranks[i].kv_bytes), plan.context, Bytes(req.memory[i]));
      }
    }
  }
  return plan;
}

std::string FormatPlan(const model::ModelConfig& c, const Plan& plan) {
  std::string out = fmt::format("{} ranks: tp={} pp={} context={}\n", plan.ranks.size(), plan.tp,
                                plan.pp, plan.context);
  out += fmt::format("{:>4} {:>5} {:>9} {:>9} {:>7} {:>13} {:>11} {:>11} {:>11}\n", "rank",
                     "stage", "layers", "heads", "kv", "ffn", "vocab", "weights", "kv cache");
  for (size_t i = 0; i < plan.ranks.size(); ++i) {
    const auto& rp = plan.ranks[i];
    const size_t r = rp.shard.tp_rank, tp = plan.tp;
    const auto h = model::SplitEven(c.num_heads, tp, r), kv = model::SplitEven(c.num_heads_kv, tp, r);
    const auto f = model::SplitEven(c.intermediate_size, tp, r);
    const auto v = model::SplitEven(c.vocab_size, tp, r);
    out += fmt::format("{:>4} {:>5} {:>9} {:>9} {:>7} {:>13} {:>11} {:>11} {:>11}\n", i,
                       plan.stage_of(i), fmt::format("{}-{}", rp.shard.layer_begin, rp.shard.layer_end - 1),
                       fmt::format("{}-{}", h.begin, h.end - 1), fmt::format("{}-{}", kv.begin, kv.end - 1),
                       fmt::format("{}-{}", f.begin, f.end - 1),
                       rp.shard.last_stage ? fmt::format("{}-{}", v.begin, v.end - 1) : "-",
                       Bytes(rp.weight_bytes), Bytes(rp.kv_bytes));
  }
  return out;
}

}  // namespace meshlm::parallel
