// `meshlm sync`: copy a model to every host of a hostfile that lacks it or holds a different
// copy, so that hosts never fetch models on their own.
//
// Source: the copy where sync runs when there is one (it must equal host 0's unless
// --from-here makes it the reference, host 0 included); otherwise host 0's copy, read over
// ssh and relayed through this machine. Run on host 0 (rank 0's host, the usual place),
// data goes over the hostfile's cables: to host i's end of its link with host 0 (the first
// IPv4 address in hosts[i].links[0]) when ssh answers there, else to its ssh name; run
// elsewhere, to the ssh names. One host and one file at a time, so each transfer owns the
// link. Files whose size and SHA-256 already match (by the hosts' manifests) are skipped.
//
// Per file: data is appended to PATH.meshlm-part on the host (an interrupted sync leaves
// what arrived; the next run resumes from its size), hashed there on arrival (sha256sum)
// and renamed into place only when the hash matches the source's. A transfer with no
// progress for `stall_s` fails.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "base/status.h"

namespace meshlm::cluster {

struct SyncOptions {
  std::string hostfile;
  std::string model;  // absolute path, the same on every host
  std::string version;
  std::string remote_meshlm;  // meshlm on the hosts (for their manifests); "" = this path
  std::vector<std::string> ssh_args;
  double timeout_s = 30;      // per control command (probe, prepare, hash check)
  double stall_s = 30;        // a transfer with no progress this long fails
  bool from_here = false;     // this machine's copy is the reference, even against host 0's
  bool remove_extra = false;  // delete files on hosts that the reference lacks
  bool dry_run = false;
};

struct SyncResult {
  int hosts_updated = 0;
  int files_sent = 0;
  uint64_t bytes_sent = 0;     // over the wire, resumed prefixes excluded
  uint64_t bytes_resumed = 0;  // already on the hosts in .meshlm-part files
  double seconds = 0;
};

/// Runs the sync; progress goes to `progress` (a bar on a terminal, plain lines otherwise).
/// Errors name the host and file; hosts that could not be reached or updated are listed.
Result<SyncResult> SyncModel(const SyncOptions& options, std::FILE* progress);

}  // namespace meshlm::cluster
