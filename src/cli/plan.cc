// meshlm plan: the shard plan and memory per rank for a model on a cluster, without
// loading any weight.
#include "parallel/plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>

#include "base/meminfo.h"
#include "cli/commands.h"
#include "cluster/hostfile.h"
#include "model/config.h"
#include "model/gguf_model.h"

namespace meshlm::cli {
namespace {

struct PlanFlags {
  std::string model;
  std::string hostfile;
  size_t n = 0;
  size_t tp = 0;
  size_t pp = 0;
  size_t ep = 0;
  size_t ctx = 0;
  double bits = 16;  // per stored weight
  std::string layers;
  std::string memory_gib;  // per rank, "16,16,8"
};

Status RunPlan(const PlanFlags& f) {
  MESHLM_ASSIGN_OR_RETURN(model::ModelConfig config, model::LoadModelConfigOfPath(f.model));
  parallel::PlanRequest req;
  std::string memory_note;
  cluster::Hostfile hosts;
  if (!f.hostfile.empty()) {
    MESHLM_ASSIGN_OR_RETURN(hosts, cluster::LoadHostfile(f.hostfile));
    req.world_size = hosts.hosts.size();
  } else {
    req.world_size = f.n;
  }
  if (req.world_size == 0) return Error("[plan] give --hostfile or -n");
  req.tp = f.tp;
  req.pp = f.pp;
  req.ep = f.ep;
  req.context = f.ctx;
  if (!f.layers.empty()) {
    MESHLM_ASSIGN_OR_RETURN(req.layers, parallel::ParseSizeList(f.layers, "--layers"));
  }
  if (!f.memory_gib.empty()) {
    MESHLM_ASSIGN_OR_RETURN(auto gib, parallel::ParseSizeList(f.memory_gib, "--memory"));
    for (size_t g : gib) req.memory.push_back(g << 30);
    memory_note = "memory per rank as given by --memory";
  } else if (f.hostfile.empty()) {
    // Local ranks share this host's available memory.
    const size_t avail = MemAvailableBytes();
    if (avail > 0) req.memory.assign(req.world_size, avail / req.world_size);
    memory_note = fmt::format("memory per rank: this host's available {:.1f} GiB / {} ranks",
                              avail / 1073741824.0, req.world_size);
  } else {
    // The hostfile's "memory_gb" of every host, when each has one.
    const bool all = std::all_of(hosts.hosts.begin(), hosts.hosts.end(),
                                 [](const cluster::HostEntry& h) { return h.memory_gb.has_value(); });
    if (all) {
      for (const cluster::HostEntry& h : hosts.hosts) {
        req.memory.push_back(static_cast<size_t>(*h.memory_gb * 1073741824.0));
      }
      memory_note = "memory per rank: the hostfile's memory_gb of each host";
    } else {
      memory_note = "memory not checked (give --memory GiB per rank, or memory_gb per host in "
                    "the hostfile)";
    }
  }
  // Weight bytes per element as stored (bf16 unless --bits says otherwise).
  if (!(f.bits > 0 && f.bits <= 32)) return Error("[plan] --bits {} must lie in (0, 32]", f.bits);
  req.weight_bytes_per_element = f.bits / 8;
  MESHLM_ASSIGN_OR_RETURN(parallel::Plan plan, parallel::MakePlan(config, req));
  fmt::print("{}", parallel::FormatPlan(config, plan));
  fmt::print("{}\n", memory_note);
  return OkStatus();
}

}  // namespace

void AddPlanCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<PlanFlags>();
  CLI::App* cmd =
      app.add_subcommand("plan", "Show how a model splits over ranks, without loading it");
  cmd->add_option("--model", f->model, "Model folder")->required();
  cmd->add_option("--hostfile", f->hostfile, "MLX JSON hostfile: one rank per host");
  cmd->add_option("-n", f->n, "Local ranks (without --hostfile)");
  cmd->add_option("--tp", f->tp, "Tensor-parallel ranks per stage (default: chosen from the ranks)");
  cmd->add_option("--pp", f->pp, "Pipeline stages (default: chosen from the ranks)");
  cmd->add_option("--ep", f->ep, "Expert-parallel groups per stage, MoE models (default: 1)");
  cmd->add_option("--bits", f->bits,
                  "Bits per stored weight, for the memory estimate (16; 8.5 for Q8_0, 4.5 for "
                  "Q4_0 or MLX 4-bit)");
  cmd->add_option("--ctx", f->ctx, "Context to budget the KV cache for (default: the model's)");
  cmd->add_option("--layers", f->layers, "Layers per stage, e.g. 10,18");
  cmd->add_option("--memory", f->memory_gib, "GiB available per rank, e.g. 64,64,32");
  cmd->callback([f, exit_code] {
    const Status s = RunPlan(*f);
    if (!s.ok()) {
      fmt::print(stderr, "meshlm plan: {}\n", s.message());
      *exit_code = 1;
    }
  });
}

}  // namespace meshlm::cli
