// The host flags shared by the subcommands that run on several hosts.
#include "cli/host_flags.h"

namespace meshlm::cli {

void AddHostFlags(CLI::App& cmd, const HostFlags& flags) {
  if (flags.processes) {
    cmd.add_option("-n,--processes", *flags.processes,
                   "Local ranks to start; with --hosts, ranks per host (default: one process)");
  }
  if (flags.hostfile) {
    CLI::Option* o =
        cmd.add_option("--hostfile", *flags.hostfile, "MLX JSON hostfile (one rank per host)");
    if (flags.hostfile_required) o->required();
  }
  if (flags.ssh_args) {
    cmd.add_option("--ssh-arg", *flags.ssh_args,
                   "extra argument for ssh, as --ssh-arg=-p2222 (repeatable)")
        ->allow_extra_args(false);
  }
}

}  // namespace meshlm::cli
