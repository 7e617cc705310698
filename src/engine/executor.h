// Executor: runs engine steps on every rank of a job. Rank 0 decides each step and
// broadcasts it; every rank runs its shard through the parallel runtime (all-sums inside
// a stage, activations passed stage to stage); the last stage samples and returns the
// tokens to rank 0. A job of one process is the same code with a group of one.
//
// Goals: rank 0 alone reads user input; workers only decode step messages. Several
// sequences in one step are split into micro-batches, one per stage, so the pipeline's
// stages work at the same time. Non-goals: scheduling (which sequences run) — the caller
// decides.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "base/thread_pool.h"
#include "comm/group.h"
#include "engine/sampler.h"
#include "engine/step_codec.h"
#include "model/model.h"
#include "parallel/plan.h"
#include "parallel/runtime.h"

namespace meshlm::engine {

struct StepTimes {
  double compute_seconds = 0;
  double comm_seconds = 0;
};

class Executor {
 public:
  /// `world` is the whole job (it must outlive the executor); `model` this rank's shard
  /// as plan.ranks[world.rank()] says.
  static Result<std::unique_ptr<Executor>> Create(comm::Group& world,
                                                  std::unique_ptr<model::Model> model,
                                                  const parallel::Plan& plan, ThreadPool& pool);
  /// A job of one process holding the whole model.
  static Result<std::unique_ptr<Executor>> CreateLocal(std::unique_ptr<model::Model> model,
                                                       ThreadPool& pool);
  ~Executor();

  bool is_driver() const { return world_.rank() == 0; }
  const model::Model& model() const { return *model_; }
  int world_size() const { return world_.size(); }
  /// The ranks the step or probe in progress has long been waiting for. Thread-safe.
  std::vector<int> WaitingOn() const { return world_.WaitingOn(); }
  /// Time since the last ResetTimes.
  const StepTimes& times() const { return times_; }
  void ResetTimes() {
    earlier_.compute_seconds += times_.compute_seconds;
    earlier_.comm_seconds += times_.comm_seconds;
    times_ = {};
  }
  /// Time since the executor was made.
  StepTimes total_times() const {
    return {earlier_.compute_seconds + times_.compute_seconds,
            earlier_.comm_seconds + times_.comm_seconds};
  }
  /// Rank 0 only: every rank's total_times(), in rank order. One small message to the
  /// workers and one all-gather of 16 bytes per rank.
  Result<std::vector<StepTimes>> GatherTimes();

  /// Rank 0 only: checks the work against the model (ids in range, contexts), runs it on
  /// every rank, and returns one sampled token per sequence that fed tokens, in order.
  /// With `logits`, also returns those rows' full logits: [sequences, V].
  Result<std::vector<int32_t>> Step(std::vector<SeqWork> work,
                                    std::vector<float>* logits = nullptr);
  /// Rank 0 only: ends every worker's RunWorker loop.
  Status Shutdown();
  /// Ranks other than 0: runs steps until Shutdown (OK) or an error (a failed peer).
  Status RunWorker();

 private:
  struct Sequence;
  Executor(comm::Group& world, ThreadPool& pool);
  Status Validate(const std::vector<SeqWork>& work) const;
  Result<std::vector<int32_t>> Execute(const StepMessage& msg);
  Status RunMicroBatch(const std::vector<Sequence*>& seqs, bool full_rows,
                       std::vector<int32_t>* tokens, float* rows_out);
  Status SampleRows(const std::vector<Sequence*>& seqs, float* logits, bool full_rows,
                    std::vector<int32_t>* tokens, float* rows_out);
  Status Timed(const Status& s, double since);

  std::unique_ptr<comm::Group> owned_world_;  // CreateLocal's group of one
  comm::Group& world_;
  ThreadPool& pool_;
  std::unique_ptr<model::Model> model_;
  std::unique_ptr<parallel::Runtime> runtime_;
  size_t pp_ = 1;
  std::map<uint64_t, std::unique_ptr<Sequence>> seqs_;
  StepTimes times_, earlier_;
  Status ShareTimes(std::vector<StepTimes>* all);
  std::vector<float> hidden_, logits_, step_logits_;
};

}  // namespace meshlm::engine
