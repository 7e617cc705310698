// An in-process group of N members joined by mailboxes, for unit tests of the
// collective algorithms, framing checks and deadlines without sockets.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "comm/group.h"

namespace meshlm::comm {

class LoopbackHub;

struct LoopbackWorld {
  /// groups[r] is member r; use each from its own thread.
  std::vector<std::unique_ptr<Group>> groups;
  std::shared_ptr<LoopbackHub> hub;
  /// Marks member `rank` dead, as if its process had been killed: peers waiting on it
  /// fail at once, naming it.
  void Kill(int rank);
};

/// Makes `n` members that talk through in-process mailboxes.
LoopbackWorld MakeLoopbackWorld(int n, GroupOptions options = {});

}  // namespace meshlm::comm
