// Job start-up shared by generate and bench.
#include "cli/job.h"

#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <functional>
#include <thread>

#include "comm/env.h"
#include "engine/generate.h"
#include "model/gguf_model.h"
#include "model/model.h"
#include "parallel/plan.h"

namespace meshlm::cli {

void AddJobFlags(CLI::App* cmd, JobFlags* f) {
  cmd->add_option("--model", f->model, "Model folder (Hugging Face layout)")->required();
  cmd->add_option("--threads", f->threads,
                  "Worker threads per rank (default: the host's cores / its ranks)");
  cmd->add_option("--ctx", f->ctx, "Context limit in tokens (at most the model's)");
  cmd->add_option("--tp", f->tp, "Tensor-parallel ranks per stage (default: world / pp)");
  cmd->add_option("--pp", f->pp, "Pipeline stages (default: 1)");
  cmd->add_option("--layers", f->layers, "Layers per stage, e.g. 10,18 (default: even split)");
}

namespace {

// Threads per rank when --threads is not given: the host's cores shared by the ranks
// that run on it (found by exchanging host names), since spinning workers of several
// ranks on the same cores slow every collective down.
Result<size_t> DefaultThreads(comm::Group& world) {
  const size_t cores = std::max(1u, std::thread::hardware_concurrency());
  if (world.size() == 1) return cores;
  char name[256] = {};
  ::gethostname(name, sizeof(name) - 1);
  const uint64_t mine = std::hash<std::string>{}(name);
  std::vector<uint64_t> all(world.size());
  MESHLM_RETURN_IF_ERROR(world.AllGather(&mine, sizeof(mine), all.data()));
  const size_t local = std::count(all.begin(), all.end(), mine);
  return std::max<size_t>(1, cores / local);
}

}  // namespace

Result<Job> StartJob(const JobFlags& f, size_t default_ctx) {
  Job job;
  MESHLM_ASSIGN_OR_RETURN(job.world, comm::JoinFromEnv());
  MESHLM_ASSIGN_OR_RETURN(model::ModelConfig config, model::LoadModelConfigOfPath(f.model));
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
  size_t threads = f.threads;
  if (threads == 0) {
    MESHLM_ASSIGN_OR_RETURN(threads, DefaultThreads(*job.world));
  }
  job.pool = std::make_unique<ThreadPool>(threads);
  MESHLM_ASSIGN_OR_RETURN(job.executor,
                          engine::Executor::Create(*job.world, std::move(m), plan, *job.pool));
  return job;
}

int RunJob(Job& job, const char* what, const std::function<Status()>& drive) {
  const int rank = job.world->rank();
  Status s;
  if (rank != 0) {
    s = job.executor->RunWorker();
  } else {
    s = drive();
    const Status stop = job.executor->Shutdown();
    if (s.ok()) s = stop;
  }
  if (s.ok()) {
    const uint64_t mine = engine::PeakRssBytes();
    std::vector<uint64_t> all(job.world->size());
    s = job.world->AllGather(&mine, sizeof(mine), all.data());
    job.peak_rss.assign(all.begin(), all.end());
  }
  if (!s.ok()) {
    fmt::print(stderr, "meshlm {} (rank {}): {}\n", what, rank, s.message());
    return 1;
  }
  return 0;
}

}  // namespace meshlm::cli
