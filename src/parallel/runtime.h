// Runtime: one rank's part in a tensor-, expert- and pipeline-parallel job. It forms the
// sub-groups the plan calls for, gives the model its all-sum hooks, passes activations
// from stage to stage, and gathers the vocabulary slices of the logits.
//
// Goals: the engine sees one call per micro-batch (Forward) and one per sampling
// decision (BestTokens / GatherRows), whatever the layout; a job of one process is the
// same code with groups of one. Non-goals: sequences, sampling, step messages (engine).
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "base/thread_pool.h"
#include "comm/group.h"
#include "model/model.h"
#include "parallel/plan.h"

namespace meshlm::parallel {

class Runtime {
 public:
  /// `world` must outlive the runtime; `model` is this rank's shard as
  /// plan.ranks[world.rank()] says, and is kept alive by the caller.
  static Result<std::unique_ptr<Runtime>> Create(comm::Group& world, model::Model* model,
                                                 const Plan& plan);
  ~Runtime();

  bool first_stage() const { return model_->shard().first_stage; }
  bool last_stage() const { return model_->shard().last_stage; }
  /// The rank that returns the last stage's tokens to rank 0.
  int last_lead() const { return static_cast<int>((plan_.pp - 1) * plan_.stage_size()); }
  /// Seconds spent in collectives and stage transfers since the runtime was made.
  double comm_seconds() const { return comm_seconds_; }

  /// Runs this stage over `steps` (T tokens in all): takes the previous stage's hidden
  /// states [T, D] (later stages), runs the shard, and sends its hidden states on (all but
  /// the last stage). The last stage writes this rank's logits to `logits`: one row of
  /// vocab_range().size() per step. `hidden` is scratch of at least T * D floats.
  Status Forward(std::span<const model::SeqStep> steps, size_t T, float* hidden, float* logits,
                 ThreadPool& pool);

  /// Last stage: every row's highest logit across the vocabulary slices of the ranks
  /// that split the LM head (ties keep the lowest id). Only (value, id) pairs cross the network.
  Status BestTokens(const float* logits, size_t rows, std::vector<int32_t>* ids);
  /// Last stage: whole rows [rows, V] from every member's slice. Returns `logits` itself
  /// when tp = 1, else a buffer owned by the runtime; the sampler may change the rows.
  Result<float*> GatherRows(float* logits, size_t rows);

  /// Sends (last_lead) or receives (rank 0) `n` bytes between the last stage and rank 0;
  /// a no-op for other ranks and for a single stage.
  Status ToDriver(void* data, size_t n);

 private:
  Runtime(comm::Group& world, model::Model* model, const Plan& plan);
  Status Timed(const Status& s, double since);

  comm::Group& world_;
  model::Model* model_;
  Plan plan_;
  size_t tp_rank_ = 0;
  std::unique_ptr<comm::Group> tp_group_;     // this rank's tensor-parallel group
  std::unique_ptr<comm::Group> stage_group_;  // all tp × ep ranks of its stage (ep > 1)
  // The ranks that split attention, the dense FFN and the vocabulary (one of the above).
  comm::Group* dense_group_ = nullptr;
  double comm_seconds_ = 0;
  std::vector<float> gathered_;
};

}  // namespace meshlm::parallel
