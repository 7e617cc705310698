// `meshlm config`: ssh to every host, discover interfaces and cables, check the topology the
// backend needs, and report or write the result (table, Graphviz, hostfile, setup commands).
//
// Every ssh is bounded by a deadline and hosts are queried in parallel, so an unreachable
// host costs one timeout, named with the likely fix, never a hang.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "cluster/topology.h"

namespace meshlm::cluster {

struct ConfigOptions {
  std::vector<std::string> hosts;  // ssh destinations
  LinkKind over = LinkKind::kAll;
  /// "" (checked as a full mesh, written as MLX's list form), tcp or ring.
  std::string backend;
  bool dot = false;         // Graphviz on stdout instead of the table
  std::string output;       // hostfile path; "" for none
  bool auto_setup = false;  // run the address plan where passwordless sudo works
  std::vector<std::string> ssh_args;
  double timeout_s = 10;  // per ssh round trip
  bool verbose = false;
  /// Count a subnet ssh uses that joins exactly two hosts as their rail.
  bool ssh_link_as_rail = false;
};

/// What `meshlm config` found and did, for the caller to print.
struct ConfigReport {
  /// Every host answered and the topology is what the backend needs (the hostfile, if
  /// asked for, was written).
  bool complete = false;
  /// For stdout: the topology table (or Graphviz with --dot), the address plan and the
  /// hostfile written (those two go to `err` with --dot, so stdout stays one graph).
  std::string out;
  /// For stderr: unreachable hosts, problems found, failed setup steps, timings.
  std::string err;
};

/// Runs `meshlm config`: errors for bad options only; a host that does not answer or an
/// incomplete topology is a report with `complete` false.
Result<ConfigReport> ConfigCommand(const ConfigOptions& options);

}  // namespace meshlm::cluster
