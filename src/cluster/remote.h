// Running a command on another host (over ssh) or on this one, with a deadline, capturing
// its output: what the cluster tools (config, verify, sync) build on.
#pragma once

#include <sys/types.h>

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

/// A child process (its own process group) with non-blocking pipes to its stdin and stdout
/// when asked for (else /dev/null) and always to its stderr: what streams data through ssh.
/// Destroying it kills the group and reaps the child.
class Subprocess {
 public:
  /// Starts argv (searched on PATH). A program that cannot run exits 127 with a message.
  static Result<Subprocess> Start(const std::vector<std::string>& argv, bool want_in,
                                  bool want_out);
  Subprocess() = default;
  Subprocess(Subprocess&& o) noexcept { *this = std::move(o); }
  Subprocess& operator=(Subprocess&& o) noexcept;
  ~Subprocess();

  /// Reads what stderr has now into err_text (up to 8 KiB kept).
  void DrainErr();
  void CloseIn();
  /// Closes stdin and waits up to `timeout_s` for the exit (killing the group after that);
  /// returns the exit code, 128 + signal when killed.
  int Wait(double timeout_s);
  /// SIGKILL to the whole process group.
  void Kill();

  pid_t pid = -1;
  int in = -1, out = -1, err = -1;  // -1 when not piped or closed
  std::string err_text;
};

/// The argv that runs the shell command `cmd` on `dest` over ssh (see SshArgv), or on this
/// host with sh -c when `dest` is empty.
std::vector<std::string> HostArgv(const std::string& dest, const std::vector<std::string>& ssh_args,
                                  const std::string& cmd);

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

/// What a failed ssh run (exit 255 or no answer) most likely means, with the fix:
/// an unresolvable name, sshd not listening, a key not accepted, an unreachable host or an
/// unknown host key; else ssh's first line.
std::string SshFix(const CommandResult& r, double timeout_s);

}  // namespace meshlm::cluster
