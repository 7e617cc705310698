// Transport: moves framed messages between ranks; the collective algorithms sit on top.
//
// A backend (in-process loopback, TCP) implements Exchange, which sends and receives a
// set of messages concurrently under one deadline. CollectiveGroup builds every op from
// rounds of Exchange, so the algorithms are the same, and tested, on every backend.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "comm/frame.h"
#include "comm/group.h"

namespace meshlm::comm {

/// `bytes` at `data` for global rank `peer`.
struct OutMessage {
  int peer;
  const void* data;
  size_t bytes;
};
struct InMessage {
  int peer;
  void* data;
  size_t bytes;
};

class Transport {
 public:
  virtual ~Transport() = default;
  /// This process's rank and the world size (global numbering).
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// "rank 1 (host-b)".
  virtual std::string PeerName(int global_rank) const = 0;
  virtual const GroupOptions& options() const = 0;
  /// Sends and receives all messages concurrently. Each message travels with `base`
  /// (msg_bytes set per message); a received header must match what this rank expects.
  /// At most one send and one receive per peer. Fails after `timeout_s`, at once when a
  /// peer died, aborted or desynchronized; after a failure the transport is broken and
  /// peers are told why.
  virtual Status Exchange(const FrameHeader& base, std::span<const OutMessage> sends,
                          std::span<const InMessage> recvs, double timeout_s) = 0;
  /// No deadline: returns when global rank `peer` has bytes for this rank or its link
  /// closed or broke. Backends that cannot wait return at once.
  virtual Status WaitReadable(int /*peer*/) { return OkStatus(); }
  /// The global ranks the running Exchange still waits for, once it has waited long enough
  /// to tell its peers (empty otherwise). Thread-safe: another thread may ask.
  virtual std::vector<int> WaitingOn() const { return {}; }
};

/// Implements Group on a Transport for the members `members` (global ranks; this rank is
/// among them). `group_id` tags frames so that sub-groups sharing links stay apart.
std::unique_ptr<Group> MakeCollectiveGroup(std::shared_ptr<Transport> transport,
                                           std::vector<int> members, uint32_t group_id);

}  // namespace meshlm::comm
