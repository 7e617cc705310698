// The TCP backend: bootstrap through a coordinator, a full mesh of sockets (one per rail
// per pair of ranks), and framed, deadline-bound data transfer.
//
// Goals: needs nothing but sockets; never hangs (every wait is a poll with a timeout);
// strangers and garbage are refused at the handshake; large messages stripe over rails.
// Non-goals: encryption of the data path (the secret authenticates, it does not hide).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "comm/group.h"

namespace meshlm::comm {

struct TcpConfig {
  int rank = 0;
  int world_size = 1;
  /// "ip:port" or "host:port" where rank 0 listens for the others.
  std::string coordinator;
  /// Shared by all ranks of the job; proves membership (HMAC challenge).
  std::string secret;
  /// rails[j]: this rank's addresses (IPv4 or interface names), one per rail, on the
  /// links toward rank j. Rail k here and rail k on rank j must be the two ends of one
  /// link. Empty (or an empty row): one rail over the address seen by the coordinator.
  std::vector<std::vector<std::string>> rails;
  /// How this rank names itself in errors; default: the host name.
  std::string host;
  GroupOptions options;
};

/// Joins the job: rank 0 runs the coordinator, every rank authenticates, then the mesh
/// forms. Fails (never hangs) after options.connect_timeout_s. World size 1 returns the
/// singleton group without touching the network.
Result<std::unique_ptr<Group>> ConnectTcpGroup(const TcpConfig& config);

}  // namespace meshlm::comm
