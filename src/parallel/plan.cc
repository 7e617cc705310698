// Shard planning: layer split, tensor-parallel checks, memory per rank.
#include "parallel/plan.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <numeric>
#include <set>
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

std::string Bytes(size_t b) {
  if (b >= size_t{10} << 30) return fmt::format("{:.1f} GiB", b / 1073741824.0);
  return fmt::format("{:.1f} MiB", b / 1048576.0);
}

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
    if (used == 0 || used != item.size())
      return Error("[plan] {}: '{}' is not a number", flag, item);
    out.push_back(static_cast<size_t>(v));
  }
  return out;
}

namespace {

// Weights a rank holds for one layer, in elements: attention and the dense FFN (over
// `parts`: tp, or tp × ep when they are split over the stage), or the router plus E/ep
// experts (each over tp).
double LayerElements(const model::ModelConfig& c, size_t l, size_t parts, size_t tp, size_t ep) {
  const double D = c.hidden_size, Dh = c.head_dim;
  const double attn = (D * c.num_heads * Dh * 2 + D * c.num_heads_kv * Dh * 2) / parts;
  if (!model::IsMoeLayer(c, l)) return attn + 3.0 * D * c.intermediate_size / parts;
  const double experts = static_cast<double>(c.num_experts) / ep;
  return attn + D * c.num_experts + experts * 3.0 * D * c.moe_intermediate_size / tp;
}

// Stages the default layout makes: one per host when the ranks span several hosts joined
// only by TCP, each host's ranks are consecutive and equal in number, and no --ep asks
// for expert groups (which are meant to span hosts); 1 otherwise (tensor parallel).
size_t HostsPerStage(const PlanRequest& req, size_t layers) {
  if (req.fast_links || req.ep > 1 || req.host_of.size() != req.world_size) return 1;
  std::vector<size_t> runs;  // ranks in each run of one host
  for (size_t r = 0; r < req.host_of.size(); ++r) {
    if (r == 0 || req.host_of[r] != req.host_of[r - 1]) {
      runs.push_back(0);
    }
    ++runs.back();
  }
  const std::set<size_t> distinct(req.host_of.begin(), req.host_of.end());
  if (runs.size() < 2 || runs.size() != distinct.size() || runs.size() > layers) return 1;
  if (std::count(runs.begin(), runs.end(), runs[0]) != static_cast<long>(runs.size())) return 1;
  return runs.size();
}

// The split the request asks for, without the memory check.
Result<Plan> SplitRanks(const model::ModelConfig& c, const PlanRequest& req);

// OK when every rank's weights and KV cache fit its memory (or none was given).
Status CheckFits(const Plan& plan, const PlanRequest& req) {
  for (size_t i = 0; i < req.memory.size() && i < plan.ranks.size(); ++i) {
    const RankPlan& r = plan.ranks[i];
    if (r.total_bytes() > req.memory[i]) {
      return Error(
          "[plan] rank {} needs {} (weights {} + KV cache {} at context {}) but has {}; "
          "add ranks, lower --ctx, or use a quantized model",
          i, Bytes(r.total_bytes()), Bytes(r.weight_bytes), Bytes(r.kv_bytes), plan.context,
          Bytes(req.memory[i]));
    }
  }
  return OkStatus();
}

}  // namespace

double WeightElements(const model::ModelConfig& c) {
  double total =
      static_cast<double>(c.vocab_size) * c.hidden_size * (c.tie_word_embeddings ? 1 : 2);
  for (size_t l = 0; l < static_cast<size_t>(c.num_layers); ++l) {
    total += LayerElements(c, l, 1, 1, 1);
  }
  return total;
}

Result<Plan> MakePlan(const model::ModelConfig& c, const PlanRequest& req) {
  MESHLM_ASSIGN_OR_RETURN(Plan plan, SplitRanks(c, req));
  const Status fits_here = CheckFits(plan, req);
  if (fits_here.ok()) return plan;
  // It does not fit: name the layouts of the same ranks that would.
  std::vector<std::string> fits;
  const size_t world = req.world_size;
  for (size_t pp = 1; pp <= world; ++pp) {
    for (size_t ep = 1; ep * pp <= world; ++ep) {
      if (world % (pp * ep) != 0) continue;
      PlanRequest alt = req;
      alt.pp = pp;
      alt.ep = ep;
      alt.tp = world / (pp * ep);
      alt.layers.clear();
      if (alt.tp == req.tp && alt.pp == req.pp && alt.ep == std::max<size_t>(1, req.ep)) {
        continue;
      }
      auto other = SplitRanks(c, alt);
      if (other.ok() && CheckFits(*other, alt).ok()) {
        fits.push_back(fmt::format("tp={} pp={} ep={}", alt.tp, pp, ep));
      }
    }
  }
  if (fits.empty()) return Error("{}. No split of these {} ranks fits", fits_here.message(), world);
  return Error("{}. These splits of the same ranks would fit: {}", fits_here.message(),
               fmt::join(fits, "; "));
}

namespace {

Result<Plan> SplitRanks(const model::ModelConfig& c, const PlanRequest& req) {
  const size_t world = req.world_size;
  if (world == 0) return Error("[plan] world size must be at least 1");
  const size_t ep = req.ep ? req.ep : 1;
  MESHLM_RETURN_IF_ERROR(model::CheckExpertParallel(c, ep));
  const size_t hosts = HostsPerStage(req, c.num_layers);
  const size_t pp = req.pp ? req.pp : (req.tp ? std::max<size_t>(1, world / (req.tp * ep)) : hosts);
  const size_t tp = req.tp ? req.tp : std::max<size_t>(1, world / (pp * ep));
  if (tp * pp * ep != world) {
    return Error("[plan] tp={} x pp={}{} = {} ranks, but the job has {}", tp, pp,
                 ep > 1 ? fmt::format(" x ep={}", ep) : "", tp * pp * ep, world);
  }
  MESHLM_RETURN_IF_ERROR(model::CheckTensorParallel(c, tp));
  const size_t S = tp * ep;  // ranks per stage
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
            *std::min_element(req.memory.begin() + s * S, req.memory.begin() + (s + 1) * S));
      }
    }
    per_stage = Proportional(L, w);
  }

  Plan plan;
  plan.tp = tp;
  plan.pp = pp;
  plan.ep = ep;
  if (hosts > 1 && !req.pp && !req.tp) {
    plan.why = fmt::format(
        "one pipeline stage per host: the {} hosts are joined by TCP, where a "
        "tensor-parallel all-reduce in every layer costs more than it saves; a stage "
        "hands on one activation per step (give --tp or --pp to choose otherwise)",
        hosts);
  }
  // Attention (and the dense FFN and LM head) split over all of a stage's ranks when the
  // heads and the stored blocks allow: each rank then reads and caches only its heads.
  // Otherwise every expert group repeats the tensor-parallel split.
  plan.dense_over_stage = ep > 1 && model::SplitsDenseColumns(c, S);
  const size_t parts = plan.dense_parts();
  plan.context = req.context ? req.context : c.max_position_embeddings;
  const size_t D = c.hidden_size, Dh = c.head_dim, V = c.vocab_size;
  const double eb = req.weight_bytes_per_element;
  const size_t layer_kv =
      2 * (c.num_heads_kv / parts) * Dh * sizeof(float) * plan.context * req.sequences;
  size_t begin = 0;
  for (size_t s = 0; s < pp; ++s) {
    double elements = 0;
    for (size_t l = begin; l < begin + per_stage[s]; ++l) {
      elements += LayerElements(c, l, parts, tp, ep);
    }
    for (size_t e = 0; e < ep; ++e) {
      for (size_t r = 0; r < tp; ++r) {
        RankPlan rp;
        rp.shard.tp_rank = r;
        rp.shard.tp_size = tp;
        rp.shard.ep_rank = e;
        rp.shard.ep_size = ep;
        rp.shard.dense_over_stage = plan.dense_over_stage;
        rp.shard.layer_begin = begin;
        rp.shard.layer_end = begin + per_stage[s];
        MESHLM_RETURN_IF_ERROR(rp.shard.Resolve(L));
        double held = elements;
        if (rp.shard.last_stage) {
          held += model::SplitEven(V, parts, rp.shard.dense_rank()).size() * static_cast<double>(D);
        }
        rp.weight_bytes = static_cast<size_t>(held * eb);
        rp.kv_bytes = per_stage[s] * layer_kv;
        plan.ranks.push_back(rp);
      }
    }
    begin += per_stage[s];
  }
  return plan;
}

}  // namespace

std::string FormatPlan(const model::ModelConfig& c, const Plan& plan,
                       const std::vector<size_t>& memory) {
  std::string out = fmt::format("{} ranks: tp={} pp={} ep={} context={}\n", plan.ranks.size(),
                                plan.tp, plan.pp, plan.ep, plan.context);
  if (!plan.why.empty()) out += plan.why + "\n";
  if (plan.ep > 1) {
    out += plan.dense_over_stage
               ? fmt::format("attention and LM head split over each stage's {} ranks\n",
                             plan.stage_size())
               : fmt::format(
                     "attention and LM head repeated in each of the {} expert groups "
                     "(the heads or the weight blocks do not split {} ways)\n",
                     plan.ep, plan.stage_size());
  }
  const bool mem = memory.size() == plan.ranks.size();
  out += fmt::format("{:>4} {:>5} {:>9} {:>9} {:>7} {:>13} {:>9} {:>11} {:>11} {:>11}", "rank",
                     "stage", "layers", "heads", "kv", "ffn", "experts", "vocab", "weights",
                     "kv cache");
  out += mem ? fmt::format(" {:>11} {:>11}\n", "memory", "headroom") : "\n";
  for (size_t i = 0; i < plan.ranks.size(); ++i) {
    const auto& rp = plan.ranks[i];
    const size_t r = rp.shard.dense_rank(), parts = rp.shard.dense_size();
    const auto h = model::SplitEven(c.num_heads, parts, r);
    const auto kv = model::SplitEven(c.num_heads_kv, parts, r);
    // MoE layers split each expert's width over tp; dense layers the FFN width.
    const bool moe = c.num_experts > 0;
    const auto f = moe ? model::SplitEven(c.moe_intermediate_size, plan.tp, rp.shard.tp_rank)
                       : model::SplitEven(c.intermediate_size, parts, r);
    const auto v = model::SplitEven(c.vocab_size, parts, r);
    const auto x = model::SplitEven(c.num_experts, plan.ep, rp.shard.ep_rank);
    out += fmt::format(
        "{:>4} {:>5} {:>9} {:>9} {:>7} {:>13} {:>9} {:>11} {:>11} {:>11}", i, plan.stage_of(i),
        fmt::format("{}-{}", rp.shard.layer_begin, rp.shard.layer_end - 1),
        fmt::format("{}-{}", h.begin, h.end - 1), fmt::format("{}-{}", kv.begin, kv.end - 1),
        fmt::format("{}-{}", f.begin, f.end - 1),
        moe ? fmt::format("{}-{}", x.begin, x.end - 1) : "-",
        rp.shard.last_stage ? fmt::format("{}-{}", v.begin, v.end - 1) : "-",
        Bytes(rp.weight_bytes), Bytes(rp.kv_bytes));
    if (mem) {
      const double room = static_cast<double>(memory[i]) - static_cast<double>(rp.total_bytes());
      out += fmt::format(" {:>11} {:>11}", Bytes(memory[i]),
                         room < 0 ? "short " + Bytes(static_cast<size_t>(-room))
                                  : Bytes(static_cast<size_t>(room)));
    }
    out += "\n";
  }
  if (mem) {
    size_t tight = 0;
    double least = 1e300;
    for (size_t i = 0; i < plan.ranks.size(); ++i) {
      const double room =
          static_cast<double>(memory[i]) - static_cast<double>(plan.ranks[i].total_bytes());
      if (room < least) least = room, tight = i;
    }
    if (least >= 0) {
      out += fmt::format(
          "fits: every rank keeps at least {} free (rank {} is the tightest, {:.0f}% of its "
          "memory free) for activations, the runtime and the system\n",
          Bytes(static_cast<size_t>(least)), tight, 100.0 * least / memory[tight]);
    } else {
      out += fmt::format("does not fit: rank {} is short of {}\n", tight,
                         Bytes(static_cast<size_t>(-least)));
    }
  }
  return out;
}

}  // namespace meshlm::parallel
