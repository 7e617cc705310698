// `meshlm config`: parallel, bounded ssh discovery and probing around the pure topology code.
#include "cluster/config.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "base/clock.h"
#include "cluster/hostfile.h"
#include "cluster/remote.h"

namespace meshlm::cluster {

namespace {

// How long links reported down are given to come up before they count as down.
constexpr double kSettleSeconds = 5;

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
  if (r->code == 255) return fmt::format("host {}: {}", dest, SshFix(*r, timeout_s));
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
  Topology t = MatchSubnets(d.hosts, o.over, o.ssh_link_as_rail);
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

/// Adds the address plan to the report; with --auto-setup runs it where root or
/// passwordless sudo works. Returns true when it changed any host (so discovery runs again).
bool SetUp(const ConfigOptions& o, const Discovered& d, ConfigReport* report) {
  std::string& info = o.dot ? report->err : report->out;
  const auto plan = PlanSetup(d.hosts, o.over);
  if (plan.empty()) return false;
  std::map<int, std::vector<std::string>> by_host;
  for (const auto& c : plan) by_host[c.host].push_back(c.command);
  info += "\nLinks with no IPv4 address; to give each its own subnet, run:\n";
  for (const auto& [h, cmds] : by_host) {
    info += fmt::format("  on {}:\n", o.hosts[h]);
    for (const auto& c : cmds) info += fmt::format("    {}\n", c);
  }
  if (!o.auto_setup) {
    info += "(or run meshlm config again with --auto-setup)\n";
    return false;
  }
  bool changed = false;
  for (const auto& [h, cmds] : by_host) {
    std::string script = "set -e\n";
    if (!d.hosts[h].root) {
      auto s = RunOnHost(o.hosts[h], o.ssh_args, "sudo -n true", "", o.timeout_s);
      if (!s.ok() || s->code != 0) {
        report->err += fmt::format(
            "host {}: passwordless sudo is not available; run its commands above by hand\n",
            o.hosts[h]);
        continue;
      }
    }
    for (const auto& c : cmds) script += c + "\n";
    auto r = RunOnHost(o.hosts[h], o.ssh_args, "sh -s", script, o.timeout_s);
    if (!r.ok() || r->timed_out || r->code != 0) {
      report->err += RemoteFailure(o.hosts[h], r, o.timeout_s, "the setup commands") + "\n";
      continue;
    }
    info += fmt::format("host {}: set up\n", o.hosts[h]);
    changed = true;
  }
  return changed;
}

}  // namespace

Result<ConfigReport> ConfigCommand(const ConfigOptions& o) {
  if (o.hosts.empty()) return Error("[config] --hosts is empty; give the hosts as a,b,c");
  std::set<std::string> seen;
  for (const auto& h : o.hosts) {
    if (h.empty() || !seen.insert(h).second) {
      return Error("[config] --hosts: '{}' is {}", h, h.empty() ? "empty" : "listed twice");
    }
  }
  // Only the backends launch can run: a hostfile for another would start no job.
  if (o.backend == "jaccl" || o.backend == "mpi") {
    return Error(
        "[config] --backend {}: meshlm's collectives run over TCP for now (RDMA and MPI "
        "transports are coming); use tcp (a full mesh) or ring",
        o.backend);
  }
  if (o.backend != "" && o.backend != "tcp" && o.backend != "ring") {
    return Error("[config] --backend '{}': expected tcp (a full mesh) or ring", o.backend);
  }
  ConfigReport report;
  std::string& info = o.dot ? report.err : report.out;
  const double t0 = NowSeconds();
  Discovered d = DiscoverAll(o);
  FindBareLinks(o, &d);
  if (SetUp(o, d, &report)) d = DiscoverAll(o);
  // A link made a moment ago (or just addressed) may be reported down until its carrier
  // comes up: ask again for a few seconds before calling it down.
  const double settle_until = NowSeconds() + kSettleSeconds;
  int asked_again = 0;
  while (MatchSubnets(d.hosts, o.over, o.ssh_link_as_rail).down_ends > 0 &&
         NowSeconds() < settle_until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    d = DiscoverAll(o);
    ++asked_again;
  }
  if (o.verbose && asked_again > 0) {
    report.err +=
        fmt::format("[config] asked again {} times for links reported down\n", asked_again);
  }
  std::vector<std::string> probe_errors;
  const auto answers = ProbeAll(o, d, &probe_errors);
  Topology t = MatchSubnets(d.hosts, o.over, o.ssh_link_as_rail);
  ApplyProbes(&t, answers, d.hosts);
  if (o.verbose) {
    report.err += fmt::format("[config] discovered and probed {} hosts in {:.1f} s\n",
                              o.hosts.size(), NowSeconds() - t0);
  }
  const std::string backend_checked = o.backend.empty() ? "tcp" : o.backend;
  const auto missing = MissingPairs(t, backend_checked, d.reachable);
  if (o.dot) {
    report.out += TopologyDot(t, missing);
  } else if (std::count(d.reachable.begin(), d.reachable.end(), true) > 0) {
    report.out += TopologyTable(d.hosts, t);
  }
  // Two hosts whose one cable also carries ssh get no rail from it: say so, and how to
  // count it as one.
  for (const auto& [subnet, a, b] : t.ssh_links) {
    if (o.ssh_link_as_rail || !t.Rails(a, b).empty()) continue;
    info += fmt::format(
        "\nnote: {} joins {} and {} but is where ssh reaches them, so it is taken as the "
        "management network, not a rail; jobs still run over it (each host's ips). If it is "
        "their only link, run config again with --ssh-link-as-rail to list it as a rail.\n",
        subnet, t.names[a], t.names[b]);
  }
  std::vector<std::string> problems = d.errors;
  problems.insert(problems.end(), probe_errors.begin(), probe_errors.end());
  problems.insert(problems.end(), t.problems.begin(), t.problems.end());
  for (const auto& p : CheckTopology(t, d.hosts, backend_checked, d.reachable)) {
    problems.push_back(p);
  }
  if (!problems.empty()) {
    report.err += fmt::format("\n[config] not ready for the {} backend ({}):\n", backend_checked,
                              backend_checked == "ring" ? "a ring" : "a full mesh");
    for (const auto& p : problems) report.err += fmt::format("  - {}\n", p);
  }
  if (!o.output.empty()) {
    if (!problems.empty()) {
      report.err += fmt::format("[config] not writing {}: fix the above and run again\n", o.output);
      return report;
    }
    const std::string json = HostfileJson(d.hosts, t, o.backend);
    auto check = ParseHostfile(json, o.output);
    if (!check.ok()) {
      report.err += fmt::format("[config] internal: the hostfile does not parse: {}\n",
                                check.status().message());
      return report;
    }
    std::ofstream f(o.output);
    f << json;
    f.close();
    if (!f) {
      report.err += fmt::format("[config] cannot write {}\n", o.output);
      return report;
    }
    info +=
        fmt::format("\nwrote {}: {} hosts, {} cables\n", o.output, o.hosts.size(), t.cables.size());
  }
  report.complete = problems.empty();
  return report;
}

}  // namespace meshlm::cluster
