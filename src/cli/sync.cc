// meshlm sync: copy a model from rank 0's host (or this machine) to every host that lacks
// it or holds another copy; resumable, verified on arrival, with progress on stderr.
#include "cluster/sync.h"

#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/host_flags.h"

namespace meshlm::cli {

void AddSyncCommand(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand(
      "sync", "Copy the model to every host that lacks it or differs (resumable, verified)");
  auto o = std::make_shared<cluster::SyncOptions>();
  AddHostFlags(*sub,
               {.hostfile = &o->hostfile, .hostfile_required = true, .ssh_args = &o->ssh_args});
  sub->add_option("--model", o->model, "model folder or .gguf file, at the same path on every host")
      ->required();
  sub->add_option("--remote-meshlm", o->remote_meshlm,
                  "meshlm's path on the hosts (default: this binary's path)");
  sub->add_option("--timeout", o->timeout_s, "seconds per control command (default 30)");
  sub->add_option("--stall", o->stall_s,
                  "fail a transfer that makes no progress for this many seconds (default 30)");
  sub->add_flag("--from-here", o->from_here,
                "make this machine's copy the reference, even where host 0's differs");
  sub->add_flag("--delete", o->remove_extra, "remove files on hosts that the source lacks");
  sub->add_flag("--dry-run", o->dry_run, "say what would be sent, send nothing");
  sub->callback([o, exit_code] {
    o->version = MESHLM_VERSION;
    if (!(o->timeout_s > 0) || !(o->stall_s > 0)) {
      std::fprintf(stderr, "[sync] --timeout and --stall must be positive\n");
      *exit_code = 2;
      return;
    }
    // Hosts see the same absolute path.
    std::error_code ec;
    o->model = std::filesystem::absolute(o->model, ec).lexically_normal().string();
    if (o->model.size() > 1 && o->model.back() == '/') o->model.pop_back();
    auto r = cluster::SyncModel(*o, stderr);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().message().c_str());
      *exit_code = 1;
      return;
    }
    std::printf(
        "synced: %d hosts updated, %d files, %.1f MB sent (%.1f MB resumed) in %.1f s "
        "(%.1f MB/s)\n",
        r->hosts_updated, r->files_sent, r->bytes_sent / 1e6, r->bytes_resumed / 1e6, r->seconds,
        r->bytes_sent / 1e6 / std::max(1e-3, r->seconds));
    *exit_code = 0;
  });
}

}  // namespace meshlm::cli
