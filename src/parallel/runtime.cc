// Runtime: sub-groups, all-sum hooks, stage transfers and the vocabulary gather.
#include "parallel/runtime.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "base/clock.h"

namespace meshlm::parallel {

Runtime::Runtime(comm::Group& world, model::Model* model, const Plan& plan)
    : world_(world), model_(model), plan_(plan) {}
Runtime::~Runtime() = default;

Status Runtime::Timed(const Status& s, double since) {
  comm_seconds_ += NowSeconds() - since;
  return s;
}

Result<std::unique_ptr<Runtime>> Runtime::Create(comm::Group& world, model::Model* model,
                                                 const Plan& plan) {
  if (plan.ranks.size() != static_cast<size_t>(world.size())) {
    return Error("[parallel] the plan has {} ranks but the job has {}", plan.ranks.size(),
                 world.size());
  }
  std::unique_ptr<Runtime> rt(new Runtime(world, model, plan));
  const size_t rank = world.rank(), stage = plan.stage_of(rank);
  rt->tp_rank_ = plan.tp_rank_of(rank);
  Runtime* self = rt.get();
  // Split is collective: every rank makes the same calls in the same order.
  const bool over_stage = plan.dense_over_stage;
  auto sum_over = [self](comm::Group* g) {
    return [self, g](float* data, size_t n) {
      const double t0 = NowSeconds();
      return self->Timed(g->AllReduce(data, n, DType::kF32, comm::ReduceOp::kSum), t0);
    };
  };
  if (plan.tp > 1 && !over_stage) {
    // One tensor-parallel group per (stage, expert group).
    const int color = static_cast<int>(stage * plan.ep + plan.ep_rank_of(rank));
    MESHLM_ASSIGN_OR_RETURN(rt->tp_group_, world.Split(color, static_cast<int>(rt->tp_rank_)));
    rt->dense_group_ = rt->tp_group_.get();
  }
  if (plan.ep > 1) {
    // Each rank's experts give a partial sum of every token's MoE output, and every rank
    // needs the whole sum (for its heads of the next layer, or for all of them when
    // attention is repeated per expert group): an all-reduce over the stage.
    MESHLM_ASSIGN_OR_RETURN(rt->stage_group_,
                            world.Split(static_cast<int>(stage), static_cast<int>(rank)));
    model->stage_all_sum = sum_over(rt->stage_group_.get());
    if (over_stage) rt->dense_group_ = rt->stage_group_.get();
  }
  if (rt->dense_group_ != nullptr) model->all_sum = sum_over(rt->dense_group_);
  return rt;
}

Status Runtime::Forward(std::span<const model::SeqStep> steps, size_t T, float* hidden,
                        float* logits, ThreadPool& pool) {
  const size_t D = model_->config().hidden_size;
  const int rank = world_.rank(), stride = static_cast<int>(plan_.stage_size());
  if (!first_stage()) {
    const double t0 = NowSeconds();
    MESHLM_RETURN_IF_ERROR(Timed(world_.Recv(hidden, T * D * 4, rank - stride), t0));
  }
  float* out = last_stage() ? logits : hidden;
  MESHLM_RETURN_IF_ERROR(model_->Forward(steps, hidden, out, pool));
  if (last_stage()) return OkStatus();
  const double t0 = NowSeconds();
  return Timed(world_.Send(hidden, T * D * 4, rank + stride), t0);
}

Status Runtime::BestTokens(const float* logits, size_t n, std::vector<int32_t>* ids) {
  const model::Range mine = model_->vocab_range();
  const size_t vloc = mine.size(), tp = model_->shard().dense_size();
  struct Best {
    float value;
    int32_t id;
  };
  std::vector<Best> best(n);
  for (size_t i = 0; i < n; ++i) {
    const float* row = logits + i * vloc;
    const size_t k = std::max_element(row, row + vloc) - row;
    best[i] = {row[k], static_cast<int32_t>(mine.begin + k)};
  }
  if (tp > 1) {
    std::vector<Best> all(n * tp);
    const double t0 = NowSeconds();
    MESHLM_RETURN_IF_ERROR(
        Timed(dense_group_->AllGather(best.data(), n * sizeof(Best), all.data()), t0));
    for (size_t i = 0; i < n; ++i) {
      for (size_t r = 1; r < tp; ++r) {  // shards ascend in id: ties keep the lowest id
        if (all[r * n + i].value > best[i].value) best[i] = all[r * n + i];
      }
    }
  }
  ids->resize(n);
  for (size_t i = 0; i < n; ++i) (*ids)[i] = best[i].id;
  return OkStatus();
}

Result<float*> Runtime::GatherRows(float* logits, size_t n) {
  const size_t tp = model_->shard().dense_size(), V = model_->config().vocab_size;
  if (tp == 1) return logits;
  // Slices padded to one size, so one all-gather carries them.
  const size_t vloc = model_->vocab_range().size(), vpad = (V + tp - 1) / tp;
  std::vector<float> padded(n * vpad, -std::numeric_limits<float>::infinity());
  for (size_t i = 0; i < n; ++i) std::memcpy(&padded[i * vpad], logits + i * vloc, vloc * 4);
  std::vector<float> all(tp * n * vpad);
  const double t0 = NowSeconds();
  MESHLM_RETURN_IF_ERROR(
      Timed(dense_group_->AllGather(padded.data(), padded.size() * 4, all.data()), t0));
  if (gathered_.size() < n * V) gathered_.resize(n * V);
  for (size_t r = 0; r < tp; ++r) {
    const model::Range vr = model::SplitEven(V, tp, r);
    for (size_t i = 0; i < n; ++i) {
      std::memcpy(&gathered_[i * V + vr.begin], &all[(r * n + i) * vpad], vr.size() * 4);
    }
  }
  return gathered_.data();
}

Status Runtime::ToDriver(void* data, size_t n) {
  if (plan_.pp == 1 || n == 0) return OkStatus();
  const double t0 = NowSeconds();
  if (world_.rank() == last_lead()) return Timed(world_.Send(data, n, 0), t0);
  if (world_.rank() == 0) return Timed(world_.Recv(data, n, last_lead()), t0);
  return OkStatus();
}

}  // namespace meshlm::parallel
