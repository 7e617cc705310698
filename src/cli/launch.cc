// meshlm launch: start one process per rank (locally or over ssh) and supervise them.
#include <cstdio>

#include "cli/commands.h"
#include "cli/host_flags.h"
#include "cluster/launcher.h"

namespace meshlm::cli {

/// Adds the launch flags shared by `launch` and `commtest` to `sub`.
void AddLaunchFlags(CLI::App* sub, cluster::LaunchOptions* o) {
  AddHostFlags(*sub,
               {.processes = &o->processes, .hostfile = &o->hostfile, .ssh_args = &o->ssh_args});
  sub->add_option("--hosts", o->hosts, "comma-separated hosts, one rank each (ssh unless local)")
      ->delimiter(',')
      ->allow_extra_args(false);
  sub->add_option("--backend", o->backend, "collective backend: tcp (default) or ring")
      ->check(CLI::IsMember({"tcp", "ring"}));
  sub->add_option("--env", o->env, "KEY=VALUE for every rank (repeatable)")
      ->allow_extra_args(false);
  sub->add_option("--port", o->port, "coordinator port on rank 0's host (default: pick one)");
  sub->add_flag("--verbose", o->verbose, "show what runs where");
}

void AddLaunchCommand(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand(
      "launch", "Run CMD as a job: `meshlm launch -n 4 -- CMD...` (output tagged by rank)");
  auto o = std::make_shared<cluster::LaunchOptions>();
  AddLaunchFlags(sub, o.get());
  sub->add_option("command", o->command, "the command each rank runs, after --")->required();
  sub->positionals_at_end();
  sub->callback([o, exit_code] {
    auto code = cluster::Launch(*o);
    if (!code.ok()) {
      std::fprintf(stderr, "%s\n", code.status().message().c_str());
      *exit_code = 2;
      return;
    }
    *exit_code = *code;
  });
}

}  // namespace meshlm::cli
