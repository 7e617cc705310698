// The flags that say which hosts a subcommand runs on (-n, --hostfile, --ssh-arg), defined
// once for serve, sync, verify, config, launch and commtest.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace meshlm::cli {

/// Where each flag's value goes; a null field leaves that flag out of the subcommand.
struct HostFlags {
  int* processes = nullptr;         // -n,--processes: local ranks
  std::string* hostfile = nullptr;  // --hostfile: MLX JSON hostfile
  bool hostfile_required = false;
  std::vector<std::string>* ssh_args = nullptr;  // --ssh-arg, repeatable
};

/// Adds the flags `flags` names to `cmd`; the pointed-to values must outlive the parse.
void AddHostFlags(CLI::App& cmd, const HostFlags& flags);

}  // namespace meshlm::cli
