// Job start-up shared by generate and bench.
#include "cli/job.h"

#include <fmt/format.h>

#include "comm/env.h"
#include "model/model.h"
#include "parallel/plan.h"

namespace meshlm::cli {

void AddJobFlags(CLI::App* cmd, JobFlags* f) {
  cmd->add_option("--model", f->model, "Model folder (Hugging Face layout)")->required();
  cmd->add_option("--threads", f->threads, "Worker threads per rank (0 = one per core)");
  cmd->add_option("--ctx", f->ctx, "Context limit in tokens (at most the model's)");
  cmd->add_option("--tp", f->tp, "Tensor-parallel ranks per stage (default: world / pp)");
  cmd->add_option("--pp", f->pp, "Pipeline stages (default: 1)");
  cmd->add_option("--layers", f->layers, "Layers per stage, e.g. 10,18 (default: even split)");
}

Result<Job> StartJob(const JobFlags& f, size_t default_ctx) {
  Job job;
  MESHLM_ASSIGN_OR_RETURN(job.world, comm::JoinFromEnv());
  MESHLM_ASSIGN_OR_RETURN(model::ModelConfig config, model::LoadModelConfig(f.model));
  parallel::PlanRequest req;
  req.world_size = job.world->size();
  req.tp = f.tp;
  req.pp = f.pp;
  req.context = f.ctx ? f.ctx : default_ctx;
  if (!f.layers.empty()) {
    MESHLM_ASSIGN_OR_RETURN(req.layers, parallel::ParseSizeList(f.layers, "--layers"));
  }
  MESHLM_ASSIGN_OR_RETURN(parallel::Plan plan, parallel::MakePlan(config, req));
  model::LoadOptions load;
  load.max_context = req.context;
  load.shard = plan.ranks[job.world->rank()].shard;
  MESHLM_ASSIGN_OR_RETURN(auto m, model::Model::Load(f.model, load));
  job.pool = std::make_unique<ThreadPool>(f.threads);
  MESHLM_ASSIGN_OR_RETURN(job.executor,
                          engine::Executor::Create(*job.world, std::move(m), plan, *job.pool));
  return job;
}

int RunJob(Job& job, const char* what, const std::function<Status()>& drive) {
  const int rank = job.world->rank();
  if (rank != 0) {
    const Status s = job.executor->RunWorker();
    if (!s.ok()) {
      fmt::print(stderr, "meshlm {} (rank {}): {}\n", what, rank, s.message());
      return 1;
    }
    return 0;
  }
  Status s = drive();
  const Status stop = job.executor->Shutdown();
  if (s.ok()) s = stop;
  if (!s.ok()) {
    fmt::print(stderr, "meshlm {}: {}\n", what, s.message());
    return 1;
  }
  return 0;
}

}  // namespace meshlm::cli
