// meshlm config: discover which interfaces join which hosts, check the mesh, write the hostfile.
#include "cluster/config.h"

#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/host_flags.h"

namespace meshlm::cli {

void AddConfigCommand(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand(
      "config",
      "Discover the links between hosts over ssh, check the mesh, write a hostfile: "
      "`meshlm config --hosts a,b,c --output hosts.json`");
  auto o = std::make_shared<cluster::ConfigOptions>();
  auto over = std::make_shared<std::string>("all");
  sub->add_option("--hosts", o->hosts, "comma-separated ssh destinations, in rank order")
      ->delimiter(',')
      ->required()
      ->allow_extra_args(false);
  sub->add_option("--over", *over, "interfaces that may be rails: ethernet, thunderbolt or all");
  sub->add_option("--backend", o->backend,
                  "the backend to check for: tcp (a full mesh; default) or ring; also written "
                  "into the hostfile");
  sub->add_flag("--ssh-link-as-rail", o->ssh_link_as_rail,
                "count a subnet that ssh uses and that joins exactly two hosts as their rail "
                "(one cable carrying ssh too)");
  sub->add_flag("--dot", o->dot, "print the topology as Graphviz (one edge per cable)");
  sub->add_option("--output", o->output, "write the hostfile here (only when complete)");
  sub->add_flag("--auto-setup", o->auto_setup,
                "give links with no IPv4 their own /30, where passwordless sudo works");
  AddHostFlags(*sub, {.ssh_args = &o->ssh_args});
  sub->add_option("--timeout", o->timeout_s, "seconds per ssh round trip (default 10)");
  sub->add_flag("--verbose", o->verbose, "show timings");
  sub->callback([o, over, exit_code] {
    auto kind = cluster::ParseLinkKind(*over);
    if (!kind.ok()) {
      std::fprintf(stderr, "[config] %s\n", kind.status().message().c_str());
      *exit_code = 2;
      return;
    }
    if (!(o->timeout_s > 0)) {
      std::fprintf(stderr, "[config] --timeout must be positive\n");
      *exit_code = 2;
      return;
    }
    o->over = *kind;
    auto report = cluster::ConfigCommand(*o);
    if (!report.ok()) {
      std::fprintf(stderr, "%s\n", report.status().message().c_str());
      *exit_code = 2;
      return;
    }
    std::fputs(report->err.c_str(), stderr);
    std::fputs(report->out.c_str(), stdout);
    *exit_code = report->complete ? 0 : 1;
  });
}

}  // namespace meshlm::cli
