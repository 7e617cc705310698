// Running a command on another host (over ssh) or on this one, with a deadline, capturing
// its output: what the cluster tools (config, verify, sync) build on.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace meshlm::cluster {

struct CommandResult {
  /// Exit code; 128 + signal when killed by a signal; 124 when the deadline passed.
  int code = -1;
  bool timed_out = false;
  std::string out;
  std::string err;
};

/// Runs argv (searched on PATH) with `input` on its stdin, stopping it (SIGTERM, then SIGKILL
/// after 1 s) when `timeout_s` passes. Errors only when it could not start.
Result<CommandResult> RunCommand(const std::vector<std::string>& argv, const std::string& input,
                                 double timeout_s);

/// The argv that runs `remote_command` (a shell command line) on `dest` over ssh, never
/// prompting: ssh -o BatchMode=yes -T [ssh_args...] dest remote_command.
std::vector<std::string> SshArgv(const std::string& dest, const std::vector<std::string>& ssh_args,
                                 const std::string& remote_command);

/// Runs `remote_command` on `dest` over ssh; an empty `dest` runs it locally with sh -c.
Result<CommandResult> RunOnHost(const std::string& dest, const std::vector<std::string>& ssh_args,
                                const std::string& remote_command, const std::string& input,
                                double timeout_s);

}  // namespace meshlm::cluster
