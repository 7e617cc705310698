// `meshlm config`: ssh to every host, discover interfaces and cables, check the topology the
// backend needs, and print or write the result (table, Graphviz, hostfile, setup commands).
//
// Every ssh is bounded by a deadline and hosts are queried in parallel, so an unreachable
// host costs one timeout, named with the likely fix, never a hang.
#pragma once

#include <string>
#include <vector>

#include "cluster/topology.h"

namespace meshlm::cluster {

struct ConfigOptions {
  std::vector<std::string> hosts;  // ssh destinations
  LinkKind over = LinkKind::kAll;
  /// "" (checked as a full mesh, written as MLX's list form), tcp, ring, jaccl, mpi.
  std::string backend;
  bool dot = false;         // Graphviz on stdout instead of the table
  std::string output;       // hostfile path; "" for none
  bool auto_setup = false;  // run the address plan where passwordless sudo works
  std::vector<std::string> ssh_args;
  double timeout_s = 10;  // per ssh round trip
  bool verbose = false;
};

/// Runs `meshlm config`. Returns the exit code: 0 when every host answered and the
/// topology is complete, 1 when not (what was found is still printed), 2 for bad options.
int ConfigCommand(const ConfigOptions& options);

}  // namespace meshlm::cluster
