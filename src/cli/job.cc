// Job flags, and the start gate that `generate`, `bench` and `serve` run before loading.
#include "cli/job.h"

#include <fmt/format.h>

#include <filesystem>

#include "base/log.h"
#include "cli/commands.h"
#include "cluster/gate.h"
#include "cluster/verify.h"

namespace meshlm::cli {

std::string DefaultModel() {
  const std::filesystem::path exe = cluster::SelfExe();
  const auto installed = exe.parent_path().parent_path() / "share/meshlm/models/meshlm-demo-6m";
  std::error_code ec;
  if (std::filesystem::is_directory(installed, ec)) return installed.string();
  return MESHLM_SOURCE_MODEL;
}

void AddJobFlags(CLI::App* cmd, JobFlags* f) {
  // Without --model, the demo model bundled in the source tree.
  f->model = DefaultModel();
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

Result<engine::Job> StartJob(const JobFlags& f, size_t default_ctx,
                             cluster::GateReport* gate_report) {
  engine::JobCheck gate;
  // Before any weight is read: a broken link, a split launch or another copy of the model
  // on some rank stops every rank here with a report.
  if (!f.no_gate) {
    gate = [&f, gate_report](comm::Group& world) -> Status {
      MESHLM_ASSIGN_OR_RETURN(cluster::GateReport report,
                              cluster::RunStartGate(world, f.model, MESHLM_VERSION));
      MESHLM_LOG_DEBUG(
          "[gate] rank {}: links {:.1f} ms (all_sum latency {:.0f} us), model "
          "manifest {:.1f} ms ({} files hashed)",
          world.rank(), report.comm_ms, report.latency_us, report.manifest_ms, report.hashed_files);
      if (world.rank() == 0) {
        for (const cluster::LinkProbe& l : report.links) {
          MESHLM_LOG_DEBUG("[gate] link {}-{}: {:.1f} us, {:.2f} GB/s", l.a, l.b, l.latency_us,
                           l.gbytes_per_s);
        }
      }
      if (gate_report != nullptr) *gate_report = report;
      return OkStatus();
    };
  }
  return engine::StartJob(f, default_ctx, gate);
}

int RunJob(engine::Job& job, const char* what, const std::function<Status()>& drive) {
  const Status s = engine::RunJob(job, drive);
  if (!s.ok()) {
    fmt::print(stderr, "meshlm {} (rank {}): {}\n", what, job.world->rank(), s.message());
    return 1;
  }
  return 0;
}

}  // namespace meshlm::cli
