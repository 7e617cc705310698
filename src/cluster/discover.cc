// `meshlm config`: parallel, bounded ssh discovery and probing around the pure topology code.
#include "cluster/discover.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "base/clock.h"
#include "cluster/hostfile.h"
#include "cluster/remote.h"

namespace meshlm::cluster {

namespace {

struct Discovered {
  std::vector<HostInfo> hosts;
  std::vector<bool> reachable;
  std::vector<std::string> errors;  // one per unreachable host
};

std::string LastLine(const std::string& s) {
  std::string last, cur;
  for (char c : s + "\n") {
    if (c == '\n' || c == '\r') {
      if (!cur.empty()) last = cur;
      cur.clear();
    } else {
      cur += c;
    }
  }
  return last.empty() ? "(no message)" : last;
}

/// Why running something on `dest` failed, with the likely fix.
std::string RemoteFailure(const std::string& dest, const Result<CommandResult>& r, double timeout_s,
                          const char* what) {
  if (!r.ok()) return fmt::format("host {}: cannot run ssh: {}", dest, r.status().message());
  if (r->timed_out) {
    return fmt::format("host {}: no answer within {:.0f} s ({}): is it up and reachable?", dest,
                       timeout_s, what);
  }
  if (r->code == 255) {
    return fmt::format(
        "host {}: ssh failed: {} (is sshd running there, and your key in its authorized_keys?)",
        dest, LastLine(r->err));
  }
  return fmt::format("host {}: {} failed (exit {}): {}", dest, what, r->code, LastLine(r->err));
}

/// Runs `script(i)` on every host i with want[i] in parallel, each within timeout_s.
std::vector<Result<CommandResult>> RunEverywhere(const ConfigOptions& o,
                                                 const std::vector<bool>& want,
                                                 const std::vector<std::string>& scripts) {
  std::vector<Result<CommandResult>> results(o.hosts.size(), Error("not run"));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < o.hosts.size(); ++i) {
    if (!want[i]) continue;
    threads.emplace_back([&, i] {
      results[i] = RunOnHost(o.hosts[i], o.ssh_args, "sh -s", scripts[i], o.timeout_s);
    });
  }
  for (auto& t : threads) t.join();
  return results;
}

Discovered DiscoverAll(const ConfigOptions& o) {
  const size_t n = o.hosts.size();
  Discovered d;
  d.hosts.resize(n);
  d.reachable.assign(n, false);
  const auto results =
      RunEverywhere(o, std::vector<bool>(n, true), std::vector<std::string>(n, DiscoveryScript()));
  for (size_t i = 0; i < n; ++i) {
    d.hosts[i].dest = o.hosts[i];
    const auto& r = results[i];
    if (!r.ok() || r->timed_out || r->code != 0) {
      d.errors.push_back(RemoteFailure(o.hosts[i], r, o.timeout_s, "discovery"));
      continue;
    }
    auto h = ParseDiscovery(r->out, o.hosts[i]);
    if (!h.ok()) {
      d.errors.push_back(h.status().message());
      continue;
    }
    d.hosts[i] = std::move(h.value());
    d.reachable[i] = true;
  }
  return d;
}

/// Probes every candidate cable from its lower-index end; returns cable index -> MAC.
std::map<int, std::string> ProbeAll(const ConfigOptions& o, const Discovered& d,
                                    std::vector<std::string>* errors) {
  const size_t n = o.hosts.size();
  Topology t = MatchSubnets(d.hosts, o.over);
  std::vector<std::vector<std::pair<int, const Cable*>>> per(n);
  for (size_t k = 0; k < t.cables.size(); ++k) {
    per[t.cables[k].a.host].push_back({static_cast<int>(k), &t.cables[k]});
  }
  std::vector<bool> want(n, false);
  std::vector<std::string> scripts(n);
  for (size_t i = 0; i < n; ++i) {
    want[i] = !per[i].empty();
    if (want[i]) scripts[i] = ProbeScript(d.hosts[i], per[i]);
  }
  const auto results = RunEverywhere(o, want, scripts);
  std::map<int, std::string> answers;
  for (size_t i = 0; i < n; ++i) {
    if (!want[i]) continue;
    const auto& r = results[i];
    if (!r.ok() || r->timed_out || r->code != 0) {
      errors->push_back(RemoteFailure(o.hosts[i], r, o.timeout_s, "probing links"));
      continue;
    }
    for (auto& [k, mac] : ParseProbeOutput(r->out)) answers[k] = mac;
  }
  return answers;
}

/// Finds which interfaces with no IPv4 face each other (by IPv6 link-local probes), so
/// the address plan can pair them.
void FindBareLinks(const ConfigOptions& o, Discovered* d) {
  const size_t n = o.hosts.size();
  const auto probes = BareLinkProbes(d->hosts, o.over);
  if (probes.empty()) return;
  std::vector<std::vector<std::pair<int, const BareProbe*>>> per(n);
  for (size_t k = 0; k < probes.size(); ++k) {
    per[probes[k].from].push_back({static_cast<int>(k), &probes[k]});
  }
  std::vector<bool> want(n, false);
  std::vector<std::string> scripts(n);
  for (size_t i = 0; i < n; ++i) {
    want[i] = !per[i].empty() && d->reachable[i];
    if (want[i]) scripts[i] = BareProbeScript(d->hosts[i], per[i]);
  }
  const auto results = RunEverywhere(o, want, scripts);
  std::map<int, std::string> answers;
  for (size_t i = 0; i < n; ++i) {
    if (!want[i] || !results[i].ok() || results[i]->code != 0) continue;
    for (auto& [k, mac] : ParseProbeOutput(results[i]->out)) answers[k] = mac;
  }
  ApplyBareProbes(&d->hosts, probes, answers);
}

/// Prints the address plan; with --auto-setup runs it where root or passwordless sudo
/// works. Returns true when it changed any host (so discovery runs again).
bool SetUp(const ConfigOptions& o, const Discovered& d, FILE* info) {
  const auto plan = PlanSetup(d.hosts, o.over);
  if (plan.empty()) return false;
  std::map<int, std::vector<std::string>> by_host;
  for (const auto& c : plan) by_host[c.host].push_back(c.command);
  std::fprintf(info, "\nLinks with no IPv4 address; to give each its own subnet, run:\n");
  for (const auto& [h, cmds] : by_host) {
    std::fprintf(info, "  on %s:\n", o.hosts[h].c_str());
    for (const auto& c : cmds) std::fprintf(info, "    %s\n", c.c_str());
  }
  if (!o.auto_setup) {
    std::fprintf(info, "(or run meshlm config again with --auto-setup)\n");
    return false;
  }
  bool changed = false;
  for (const auto& [h, cmds] : by_host) {
    std::string script = "set -e\n";
    if (!d.hosts[h].root) {
      auto s = RunOnHost(o.hosts[h], o.ssh_args, "sudo -n true", "", o.timeout_s);
      if (!s.ok() || s->code != 0) {
        std::fprintf(stderr,
                     "host %s: passwordless sudo is not available; run its commands above by "
                     "hand\n",
                     o.hosts[h].c_str());
        continue;
      }
    }
    for (const auto& c : cmds) script += c + "\n";
    auto r = RunOnHost(o.hosts[h], o.ssh_args, "sh -s", script, o.timeout_s);
    if (!r.ok() || r->timed_out || r->code != 0) {
      std::fprintf(stderr, "%s\n",
                   RemoteFailure(o.hosts[h], r, o.timeout_s, "the setup commands").c_str());
      continue;
    }
    std::fprintf(info, "host %s: set up\n", o.hosts[h].c_str());
    changed = true;
  }
  return changed;
}

}  // namespace

int ConfigCommand(const ConfigOptions& o) {
  if (o.hosts.empty()) {
    std::fprintf(stderr, "[config] --hosts is empty; give the hosts as a,b,c\n");
    return 2;
  }
  std::set<std::string> seen;
  for (const auto& h : o.hosts) {
    if (h.empty() || !seen.insert(h).second) {
      std::fprintf(stderr, "[config] --hosts: '%s' is %s\n", h.c_str(),
                   h.empty() ? "empty" : "listed twice");
      return 2;
    }
  }
  static const std::set<std::string> kBackends = {"", "tcp", "ring", "jaccl", "mpi"};
  if (!kBackends.count(o.backend)) {
    std::fprintf(stderr, "[config] --backend '%s': expected tcp, ring, jaccl or mpi\n",
                 o.backend.c_str());
    return 2;
  }
  FILE* info = o.dot ? stderr : stdout;
  const double t0 = NowSeconds();
  Discovered d = DiscoverAll(o);
  FindBareLinks(o, &d);
  if (SetUp(o, d, info)) d = DiscoverAll(o);
  std::vector<std::string> probe_errors;
  const auto answers = ProbeAll(o, d, &probe_errors);
  Topology t = MatchSubnets(d.hosts, o.over);
  ApplyProbes(&t, answers, d.hosts);
  if (o.verbose) {
    std::fprintf(stderr, "[config] discovered and probed %zu hosts in %.1f s\n", o.hosts.size(),
                 NowSeconds() - t0);
  }
  const std::string backend_checked = o.backend.empty() ? "tcp" : o.backend;
  const auto missing = MissingPairs(t, backend_checked, d.reachable);
  if (o.dot) {
    std::fputs(TopologyDot(t, missing).c_str(), stdout);
  } else if (std::count(d.reachable.begin(), d.reachable.end(), true) > 0) {
    std::fputs(TopologyTable(d.hosts, t).c_str(), stdout);
  }
  std::vector<std::string> problems = d.errors;
  problems.insert(problems.end(), probe_errors.begin(), probe_errors.end());
  problems.insert(problems.end(), t.problems.begin(), t.problems.end());
  for (const auto& p : CheckTopology(t, d.hosts, backend_checked, d.reachable)) {
    problems.push_back(p);
  }
  if (!problems.empty()) {
    std::fprintf(stderr, "\n[config] not ready for the %s backend (%s):\n", backend_checked.c_str(),
                 backend_checked == "ring" ? "a ring" : "a full mesh");
    for (const auto& p : problems) std::fprintf(stderr, "  - %s\n", p.c_str());
  }
  if (!o.output.empty()) {
    if (!problems.empty()) {
      std::fprintf(stderr, "[config] not writing %s: fix the above and run again\n",
                   o.output.c_str());
      return 1;
    }
    const std::string json = HostfileJson(d.hosts, t, o.backend);
    auto check = ParseHostfile(json, o.output);
    if (!check.ok()) {
      std::fprintf(stderr, "[config] internal: the hostfile does not parse: %s\n",
                   check.status().message().c_str());
      return 1;
    }
    std::ofstream f(o.output);
    f << json;
    f.close();
    if (!f) {
      std::fprintf(stderr, "[config] cannot write %s\n", o.output.c_str());
      return 1;
    }
    std::fprintf(info, "\nwrote %s: %zu hosts, %zu cables\n", o.output.c_str(), o.hosts.size(),
                 t.cables.size());
  }
  return problems.empty() ? 0 : 1;
}

}  // namespace meshlm::cluster
