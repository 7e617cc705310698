// Job start-up shared by generate and bench.
#include "cli/job.h"

#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <thread>

#include "base/log.h"
#include "cluster/gate.h"
#include "base/meminfo.h"
#include "comm/env.h"
#include "engine/generate.h"
#include "model/gguf_model.h"
#include "model/model.h"
#include "parallel/plan.h"

namespace meshlm::cli {

void AddJobFlags(CLI::App* cmd, JobFlags* f) {
  // Without --model, the demo model bundled in the source tree.
  f->model = MESHLM_DEFAULT_MODEL;
  cmd->add_option("--model", f->model,
                  "Model folder or .gguf file (default: the bundled demo model)");
  cmd->add_option("--threads", f->threads,
                  "Worker threads per rank (default: the host's cores / its ranks)");
  cmd->add_option("--ctx", f->ctx, "Context limit in tokens (at most the model's)");
  cmd->add_option("--tp", f->tp, "Tensor-parallel ranks per stage (default: world / pp)");
  cmd->add_option("--pp", f->pp, "Pipeline stages (default: 1)");
  cmd->add_option("--ep", f->ep,
                  "Expert-parallel groups per stage: each holds 1/ep of every MoE layer's "
                  "experts (default: 1)");
  cmd->add_option("--layers", f->layers, "Layers per stage, e.g. 10,18 (default: even split)");
  cmd->add_flag("--no-gate", f->no_gate,
                "Skip the start checks (links, same meshlm and model on every rank)");
}

namespace {

// What each rank learns about the others at start-up: which share a host (their cores and
// memory are shared) and how much memory each can use.
struct Peers {
  std::vector<size_t> local;   // ranks on each rank's host
  std::vector<size_t> memory;  // bytes each rank may use: its host's available / local
};

Result<Peers> ExchangeHostInfo(comm::Group& world) {
  char name[256] = {};
  ::gethostname(name, sizeof(name) - 1);
  const uint64_t mine[2] = {std::hash<std::string>{}(name), MemAvailableBytes()};
  std::vector<uint64_t> all(2 * world.size());
  MESHLM_RETURN_IF_ERROR(world.AllGather(mine, sizeof(mine), all.data()));
  Peers p;
  for (int r = 0; r < world.size(); ++r) {
    size_t local = 0;
    for (int q = 0; q < world.size(); ++q) local += all[2 * q] == all[2 * r];
    p.local.push_back(local);
    p.memory.push_back(all[2 * r + 1] / local);
  }
  return p;
}

}  // namespace

Result<Job> StartJob(const JobFlags& f, size_t default_ctx) {
  Job job;
  MESHLM_ASSIGN_OR_RETURN(job.world, comm::JoinFromEnv());
  // Before any weight is read: a broken link, a split launch or another copy of the model
  // on some rank stops every rank here with a report.
  if (!f.no_gate) {
    MESHLM_ASSIGN_OR_RETURN(cluster::GateReport gate,
                            cluster::RunStartGate(*job.world, f.model, MESHLM_VERSION));
    MESHLM_LOG_DEBUG("[gate] rank {}: links {:.1f} ms (all_sum latency {:.0f} us), model "
                     "manifest {:.1f} ms ({} files hashed)",
                     job.world->rank(), gate.comm_ms, gate.latency_us, gate.manifest_ms,
                     gate.hashed_files);
  }
  MESHLM_ASSIGN_OR_RETURN(model::ModelConfig config, model::LoadModelConfigOfPath(f.model));
  parallel::PlanRequest req;
  req.world_size = job.world->size();
  req.tp = f.tp;
  req.pp = f.pp;
  req.ep = f.ep;
  req.context = f.ctx ? f.ctx : default_ctx;
  if (!f.layers.empty()) {
    MESHLM_ASSIGN_OR_RETURN(req.layers, parallel::ParseSizeList(f.layers, "--layers"));
  }
  // Pipeline stages get layers in proportion to their ranks' memory, and a plan that
  // does not fit is refused before any weight is read.
  Peers peers{{1}, {MemAvailableBytes()}};
  if (job.world->size() > 1) {
    MESHLM_ASSIGN_OR_RETURN(peers, ExchangeHostInfo(*job.world));
  }
  if (std::count(peers.memory.begin(), peers.memory.end(), size_t{0}) == 0) {
    req.memory = peers.memory;
  }
  MESHLM_ASSIGN_OR_RETURN(parallel::Plan plan, parallel::MakePlan(config, req));
  model::LoadOptions load;
  load.max_context = req.context;
  load.shard = plan.ranks[job.world->rank()].shard;
  MESHLM_ASSIGN_OR_RETURN(auto m, model::Model::Load(f.model, load));
  // Default threads: the host's cores shared by the ranks on it, since spinning workers
  // of several ranks on the same cores slow every collective down.
  const size_t cores = std::max(1u, std::thread::hardware_concurrency());
  const size_t threads =
      f.threads ? f.threads : std::max<size_t>(1, cores / peers.local[job.world->rank()]);
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
