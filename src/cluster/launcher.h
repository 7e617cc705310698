// The launcher: starts one process per rank, locally or over ssh, and supervises them.
//
// Goals: each rank's output tagged with its rank; stdin broadcast to every rank; the job's
// exit code is the first failing rank's; when any rank fails or dies, every other rank,
// local or remote, is stopped (no orphans); when the launcher itself dies, its ranks stop
// within about a second (a parent-death signal, and meshlm ranks watch their output). A fresh secret per job reaches the ranks
// through the environment (local) or ssh's stdin (remote), never a command line.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace meshlm::cluster {

struct LaunchOptions {
  /// Local ranks (-n) when no hosts are given; with hosts, ranks per host (default 1).
  int processes = 0;
  /// --hosts a,b: one entry per host; "localhost" and this host's name run locally.
  std::vector<std::string> hosts;
  /// --hostfile: MLX JSON hostfile; its ssh names, ips, links and envs are used.
  std::string hostfile;
  std::string backend = "tcp";
  /// Extra environment for every rank, "K=V".
  std::vector<std::string> env;
  bool verbose = false;
  /// The command each rank runs (argv).
  std::vector<std::string> command;
  /// Coordinator port on rank 0's host; 0 picks one.
  int port = 0;
  /// Extra ssh arguments (e.g. "-p", "2222", "-i", "key"), before the host name.
  std::vector<std::string> ssh_args;
  /// Seconds between SIGTERM and SIGKILL when stopping ranks.
  double grace_s = 2.0;
};

/// Runs the job to completion. Returns the exit code the launcher should exit with: 0 when
/// every rank succeeded, else the first failing rank's code (128 + signal for a signal).
/// Errors are for jobs that could not start (bad flags, unreadable hostfile).
Result<int> Launch(const LaunchOptions& options);

/// In a process started by the launcher (MESHLM_WATCH_LAUNCHER=1, stderr a pipe or
/// socket): a thread that stops this process group within about a second once its
/// stderr has no reader, that is, once the launcher, or the ssh session that carried the
/// rank to its host, is gone. Elsewhere it does nothing.
void WatchLauncher();

/// Quotes `s` for a POSIX shell.
std::string ShellQuote(const std::string& s);

}  // namespace meshlm::cluster
