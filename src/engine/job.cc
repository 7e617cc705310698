// Job start-up and run: join, check, plan, load, build the Executor; drive or serve.
#include "engine/job.h"

#include <unistd.h>

#include <algorithm>
#include <functional>
#include <thread>

#include "base/clock.h"
#include "base/log.h"
#include "base/meminfo.h"
#include "comm/env.h"
#include "engine/generate.h"
#include "model/gguf_model.h"
#include "model/model.h"
#include "parallel/plan.h"

namespace meshlm::engine {

namespace {

// What each rank learns about the others at start-up: which share a host (their cores and
// memory are shared) and how much memory each can use.
struct Peers {
  std::vector<size_t> local;   // ranks on each rank's host
  std::vector<size_t> memory;  // bytes each rank may use: its host's available / local
  std::vector<size_t> host;    // each rank's host, as the first rank on it
};

Result<Peers> ExchangeHostInfo(comm::Group& world) {
  char name[256] = {};
  ::gethostname(name, sizeof(name) - 1);
  const uint64_t mine[2] = {std::hash<std::string>{}(name), MemAvailableBytes()};
  std::vector<uint64_t> all(2 * world.size());
  MESHLM_RETURN_IF_ERROR(world.AllGather(mine, sizeof(mine), all.data()));
  Peers p;
  for (int r = 0; r < world.size(); ++r) {
    size_t local = 0, first = r;
    for (int q = 0; q < world.size(); ++q) {
      local += all[2 * q] == all[2 * r];
      if (all[2 * q] == all[2 * r]) first = std::min<size_t>(first, q);
    }
    p.local.push_back(local);
    p.host.push_back(first);
    p.memory.push_back(all[2 * r + 1] / local);
  }
  return p;
}

}  // namespace

Result<Job> StartJob(const JobOptions& f, size_t default_ctx, const JobCheck& check) {
  Job job;
  MESHLM_ASSIGN_OR_RETURN(job.world, comm::JoinFromEnv());
  const double t0 = NowSeconds();
  if (check) MESHLM_RETURN_IF_ERROR(check(*job.world));
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
  Peers peers{{1}, {MemAvailableBytes()}, {0}};
  if (job.world->size() > 1) {
    MESHLM_ASSIGN_OR_RETURN(peers, ExchangeHostInfo(*job.world));
  }
  if (std::count(peers.memory.begin(), peers.memory.end(), size_t{0}) == 0) {
    req.memory = peers.memory;
  }
  // Without --tp/--pp, ranks on several hosts get a pipeline stage per host: the
  // collectives run over TCP (req.fast_links stays false).
  req.host_of = peers.host;
  MESHLM_ASSIGN_OR_RETURN(parallel::Plan plan, parallel::MakePlan(config, req));
  if (job.world->rank() == 0 && !plan.why.empty()) MESHLM_LOG_INFO("[plan] {}", plan.why);
  model::LoadOptions load;
  load.max_context = req.context;
  load.shard = plan.ranks[job.world->rank()].shard;
  load.show_progress = job.world->rank() == 0;
  MESHLM_ASSIGN_OR_RETURN(auto m, model::Model::Load(f.model, load));
  // Default threads: the host's cores shared by the ranks on it, since spinning workers
  // of several ranks on the same cores slow every collective down.
  const size_t cores = std::max(1u, std::thread::hardware_concurrency());
  const size_t threads =
      f.threads ? f.threads : std::max<size_t>(1, cores / peers.local[job.world->rank()]);
  job.pool = std::make_unique<ThreadPool>(threads);
  MESHLM_ASSIGN_OR_RETURN(job.executor,
                          Executor::Create(*job.world, std::move(m), plan, *job.pool));
  // The slowest rank's, which is when the job can start.
  const double mine = NowSeconds() - t0;
  std::vector<double> all(job.world->size(), mine);
  if (job.world->size() > 1) {
    MESHLM_RETURN_IF_ERROR(job.world->AllGather(&mine, sizeof(mine), all.data()));
  }
  job.load_seconds = *std::max_element(all.begin(), all.end());
  return job;
}

Status RunJob(Job& job, const std::function<Status()>& drive) {
  Status s;
  if (job.world->rank() != 0) {
    s = job.executor->RunWorker();
  } else {
    s = drive();
    const Status stop = job.executor->Shutdown();
    if (s.ok()) s = stop;
  }
  if (s.ok()) {
    const uint64_t mine = PeakRssBytes();
    std::vector<uint64_t> all(job.world->size());
    s = job.world->AllGather(&mine, sizeof(mine), all.data());
    job.peak_rss.assign(all.begin(), all.end());
  }
  return s;
}

}  // namespace meshlm::engine
