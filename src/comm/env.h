// Joining a job from the environment a launcher sets (meshlm's or MLX's).
//
//   MESHLM_RANK            this process's rank               (fallback MLX_RANK)
//   MESHLM_WORLD_SIZE      number of ranks                   (fallback: hosts in the hostfile)
//   MESHLM_COORDINATOR     host:port of rank 0's coordinator (fallback MLX_JACCL_COORDINATOR,
//                          then rank 0's first "ip:port" in an MLX ring hostfile)
//   MESHLM_BACKEND         tcp (default); mpi and verbs when built
//   MESHLM_HOSTFILE        hostfile path                     (fallback MLX_HOSTFILE)
//   MESHLM_SECRET          job secret for the HMAC handshake
//   MESHLM_RAILS           this rank's rail addresses: "1=10.0.1.1,10.0.2.1;2=10.0.3.1"
//   MESHLM_OP_TIMEOUT      seconds per op (default 30)
//   MESHLM_CONNECT_TIMEOUT seconds to form the group (default 30)
//   MESHLM_SMALL_BYTES, MESHLM_CHUNK_BYTES, MESHLM_STRIPE_BYTES: GroupOptions thresholds
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "comm/group.h"
#include "comm/tcp.h"

namespace meshlm::comm {

/// Reads the variables above into a TCP config. Without MESHLM_RANK and MLX_RANK the
/// process is alone: rank 0 of 1.
Result<TcpConfig> TcpConfigFromEnv();

/// Joins the job described by the environment with the backend it names.
Result<std::unique_ptr<Group>> JoinFromEnv();

/// MESHLM_RAILS codec. rails[j] lists addresses toward rank j.
std::string FormatRails(const std::vector<std::vector<std::string>>& rails);
Result<std::vector<std::vector<std::string>>> ParseRails(const std::string& s, int world_size);

}  // namespace meshlm::comm
