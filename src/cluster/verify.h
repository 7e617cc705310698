// `meshlm verify`: one row per host of a hostfile — ssh reachable, same meshlm version, the
// hostfile's devices present, free memory, the model present and identical to rank 0's host,
// clock skew — each failure with the fix in words.
//
// Each host runs `meshlm verify --probe` over ssh (all hosts at once, each bounded by a
// deadline), which prints one JSON object (ProbeHost); the rows compare those objects with
// host 0's (rank 0's). Non-goals: fixing anything (`meshlm sync` copies models).
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "cluster/hostfile.h"
#include "cluster/manifest.h"

namespace meshlm::cluster {

/// What the probe checks on its host.
struct ProbeRequest {
  std::string model;                    // empty: no model check
  std::vector<std::string> interfaces;  // /sys/class/net/<name> must exist
  std::vector<std::string> rdma;        // /sys/class/infiniband/<name> must exist
  bool rehash = false;                  // ignore the manifest cache
};

/// The probe's JSON (one line): version, build (sha256 of the binary), hostname, time_ns
/// (CLOCK_REALTIME), mem_available (bytes), interfaces/rdma {name: present}, model
/// {present, digest, files, error, note}.
std::string ProbeHost(const ProbeRequest& request, const std::string& version);

struct VerifyOptions {
  std::string hostfile;
  std::string model;  // empty: no model check
  std::string version;
  /// meshlm on the hosts; empty: the same path as this binary.
  std::string remote_meshlm;
  std::vector<std::string> ssh_args;
  double timeout_s = 30;
  /// Clock skew above this fails (seconds); TLS, logs and timeouts need clocks that agree.
  double max_skew_s = 1.0;
  /// Free memory below this fails (bytes); 0: no minimum.
  double min_free_bytes = 0;
  bool rehash = false;
};

/// The probe of one host as seen from here.
struct HostProbe {
  int index = 0;
  std::string dest;  // ssh destination ("" = local)
  bool reached = false;
  std::string error;  // why not reached (ssh output, timeout)
  double rtt_s = 0;
  double skew_s = 0;  // host clock minus ours at the round trip's midpoint
  /// The skew is known to lie in [skew_min_s, skew_max_s]: the probe started and ended
  /// somewhere inside the round trip.
  double skew_min_s = 0, skew_max_s = 0;
  std::string version, build, hostname;
  uint64_t mem_available = 0;
  std::vector<std::pair<std::string, bool>> devices;  // interfaces and RDMA devices
  bool model_present = false;
  bool model_is_dir = false;  // a folder (else one file, e.g. a .gguf)
  std::string model_error, model_note;
  Manifest manifest;
};

struct VerifyRow {
  int index = 0;
  std::string host;                   // "host 2 (10.99.0.3)"
  std::vector<std::string> cells;     // ssh, version, devices, memory, model, skew
  std::vector<std::string> problems;  // each with its fix; empty when the host is fine
  std::vector<std::string> warnings;
};

struct VerifyReport {
  std::vector<HostProbe> probes;
  std::vector<VerifyRow> rows;
  bool ok = true;
  /// Rows as a table plus problems, for the terminal.
  std::string Format() const;
};

/// Probes every host of `options.hostfile` in parallel over ssh. Errors only for bad input
/// (an unreadable hostfile); unreachable hosts are rows with problems.
Result<VerifyReport> VerifyCluster(const VerifyOptions& options);

/// Probes hosts (in parallel) and returns what each reported; used by verify and sync.
std::vector<HostProbe> ProbeHosts(const Hostfile& hostfile, const VerifyOptions& options);

/// Whether `cell` (a hostfile link cell: an interface name or an IPv4 address) exists here.
bool LinkPresent(const std::string& cell);

/// Whether host i is this machine: a local ssh name, or one of its IPv4 addresses is ours.
bool IsHere(const Hostfile& hostfile, int i);

/// The ssh destination of host i: "" when it is this machine (empty, localhost, our name).
std::string SshDest(const Hostfile& hostfile, int i);

/// "host 2 (10.99.0.3)".
std::string HostLabel(const Hostfile& hostfile, int i);

/// The path of the running binary.
std::string SelfExe();

}  // namespace meshlm::cluster
