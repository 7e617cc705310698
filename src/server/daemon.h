// Detached servers: `meshlm serve --detach` leaves a state file that `meshlm stop` reads
// to stop the server (and, through the launcher, every rank).
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace meshlm::server {

/// $XDG_RUNTIME_DIR, else /tmp: where state and log files live.
std::string StateDir();
/// The state file of this user's server on `port`.
std::string StatePath(int port);

/// Forks. The child (which returns true) is in its own session, with stdin from /dev/null
/// and stdout/stderr in the log file; it goes on to start the server. The parent writes
/// the state file, waits until http://host:port/health answers (or the child exits) and
/// returns false with *exit_code set: 0 when the server is ready.
Result<bool> Detach(const std::string& host, int port, double ready_timeout_s, int* exit_code);

/// Stops the detached servers (all of this user's, or the one on `port` when non-zero):
/// SIGTERM, then SIGKILL to the whole process group after `grace_s`. Lists what it stopped.
Result<std::vector<std::string>> StopServers(int port, double grace_s);

}  // namespace meshlm::server
