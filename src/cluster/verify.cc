// meshlm verify: probe every host over ssh and compare what they report with host 0's.
#include "cluster/verify.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <unistd.h>

#include <climits>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/clock.h"
#include "base/meminfo.h"
#include "cluster/launcher.h"
#include "cluster/remote.h"

namespace meshlm::cluster {
namespace {

using Json = nlohmann::json;

int64_t RealNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

bool IsIpv4(const std::string& s) {
  in_addr a{};
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}

}  // namespace

bool LinkPresent(const std::string& cell) {
  if (!IsIpv4(cell)) {
    std::error_code ec;
    return std::filesystem::exists("/sys/class/net/" + cell, ec);
  }
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return false;
  bool found = false;
  for (ifaddrs* a = list; a && !found; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
    char buf[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, buf, sizeof(buf));
    found = cell == buf;
  }
  freeifaddrs(list);
  return found;
}

namespace {

bool IsLocal(const std::string& h) {
  if (h.empty() || h == "localhost" || h == "127.0.0.1" || h == "::1") return true;
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  return h == name;
}

std::string Gb(double bytes) { return fmt::format("{:.1f} GB", bytes / 1e9); }

HostProbe ProbeOne(const Hostfile& hf, int i, const VerifyOptions& o) {
  HostProbe p;
  p.index = i;
  const HostEntry& h = hf.hosts[i];
  p.dest = SshDest(hf, i);
  const std::string exe = o.remote_meshlm.empty() ? SelfExe() : o.remote_meshlm;
  std::string cmd = ShellQuote(exe) + " verify --probe";
  if (!o.model.empty()) cmd += " --model " + ShellQuote(o.model);
  if (o.rehash) cmd += " --rehash";
  for (const auto& cell : h.links) {
    for (const std::string& l : cell) cmd += " --iface " + ShellQuote(l);
  }
  for (const auto& cell : h.rdma) {
    for (const std::string& d : cell) cmd += " --rdma " + ShellQuote(d);
  }
  std::vector<std::string> ssh_args = o.ssh_args;
  // Options given first win in ssh, so the user's own ConnectTimeout takes precedence.
  ssh_args.push_back("-oConnectTimeout=" + std::to_string(std::max(1, int(o.timeout_s / 2))));
  const int64_t t0 = RealNs();
  const double m0 = NowSeconds();
  auto r = RunOnHost(p.dest, ssh_args, cmd, "", o.timeout_s);
  p.rtt_s = NowSeconds() - m0;
  const int64_t t1 = RealNs();
  if (!r.ok()) {
    p.error = r.status().message();
    return p;
  }
  if (r->code == 255 || r->timed_out) {
    p.error = SshFix(*r, o.timeout_s);
    return p;
  }
  if (r->code == 127 || (r->code != 0 && r->err.find("not found") != std::string::npos)) {
    p.error = fmt::format(
        "meshlm not found at '{}' on the host: install the same build there "
        "or pass --remote-meshlm PATH",
        exe);
    return p;
  }
  const size_t brace = r->out.find('{');
  const Json j = brace == std::string::npos
                     ? Json()
                     : Json::parse(r->out.substr(brace), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("version")) {
    std::string err = r->err.substr(0, r->err.find('\n'));
    p.error = fmt::format(
        "the probe (`{} verify --probe`) printed no report (exit {}){}{}: "
        "install the same meshlm build on the host",
        exe, r->code, err.empty() ? "" : ": ", err);
    return p;
  }
  p.reached = true;
  p.version = j.value("version", "");
  p.build = j.value("build", "");
  p.hostname = j.value("hostname", "");
  p.mem_available = j.value("mem_available", uint64_t{0});
  // The probe ran inside [t0, t1]: its clock's start and end bound the skew.
  const int64_t h_end = j.value("time_ns", int64_t{0});
  const int64_t h_start = h_end - j.value("elapsed_ns", int64_t{0});
  p.skew_s = ((h_end - t1) + (h_start - t0)) / 2 * 1e-9;
  p.skew_min_s = static_cast<double>(h_end - t1) * 1e-9;
  p.skew_max_s = static_cast<double>(h_start - t0) * 1e-9;
  for (const char* kind : {"interfaces", "rdma"}) {
    if (j.contains(kind) && j[kind].is_object()) {
      for (const auto& [name, present] : j[kind].items()) {
        p.devices.emplace_back(name, present.is_boolean() && present.get<bool>());
      }
    }
  }
  if (j.contains("model") && j["model"].is_object()) {
    const Json& m = j["model"];
    p.model_present = m.value("present", false);
    p.model_is_dir = m.value("is_dir", false);
    p.model_error = m.value("error", "");
    p.model_note = m.value("note", "");
    if (p.model_present && m.contains("manifest")) {
      auto man = ManifestFromJson(m["manifest"].dump(), HostLabel(hf, i));
      if (man.ok()) {
        p.manifest = std::move(*man);
      } else {
        p.model_present = false;
        p.model_error = man.status().message();
      }
    }
  }
  return p;
}

}  // namespace

std::string SelfExe() {
  char buf[PATH_MAX] = {};
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "meshlm";
}

bool IsHere(const Hostfile& hf, int i) {
  if (IsLocal(hf.hosts[i].ssh)) return true;
  for (const std::string& a : hf.hosts[i].ips) {
    if (IsIpv4(a) && LinkPresent(a)) return true;
  }
  for (const auto& cell : hf.hosts[i].links) {
    for (const std::string& a : cell) {
      if (IsIpv4(a) && LinkPresent(a)) return true;
    }
  }
  return false;
}

std::string SshDest(const Hostfile& hf, int i) {
  return IsLocal(hf.hosts[i].ssh) ? "" : hf.hosts[i].ssh;
}

std::string HostLabel(const Hostfile& hf, int i) {
  const std::string& name = hf.hosts[i].ssh.empty() ? hf.Address(i) : hf.hosts[i].ssh;
  return name.empty() ? fmt::format("host {}", i) : fmt::format("host {} ({})", i, name);
}

std::string ProbeHost(const ProbeRequest& req, const std::string& version) {
  const int64_t start = RealNs();
  Json j;
  j["version"] = version;
  auto build = Sha256File(SelfExe());
  j["build"] = build.ok() ? *build : "";
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  j["hostname"] = name;
  j["mem_available"] = MemAvailableBytes();
  Json ifs = Json::object(), rdma = Json::object();
  for (const std::string& i : req.interfaces) ifs[i] = LinkPresent(i);
  for (const std::string& d : req.rdma) {
    std::error_code ec;
    rdma[d] = std::filesystem::exists("/sys/class/infiniband/" + d, ec);
  }
  j["interfaces"] = ifs;
  j["rdma"] = rdma;
  if (!req.model.empty()) {
    Json m;
    std::error_code ec;
    m["present"] = false;
    if (!std::filesystem::exists(req.model, ec)) {
      m["error"] = fmt::format("no model at '{}'", req.model);
    } else {
      ManifestOptions mo;
      mo.rehash = req.rehash;
      auto man = BuildManifest(req.model, mo);
      if (man.ok()) {
        m["present"] = true;
        m["is_dir"] = std::filesystem::is_directory(req.model, ec);
        m["manifest"] = Json::parse(ManifestToJson(*man));
        m["note"] = man->note;
      } else {
        m["error"] = man.status().message();
      }
    }
    j["model"] = m;
  }
  const int64_t end = RealNs();
  j["time_ns"] = end;
  j["elapsed_ns"] = end - start;
  return j.dump();
}

std::vector<HostProbe> ProbeHosts(const Hostfile& hf, const VerifyOptions& o) {
  std::vector<HostProbe> probes(hf.hosts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < hf.hosts.size(); ++i) {
    threads.emplace_back([&, i] { probes[i] = ProbeOne(hf, static_cast<int>(i), o); });
  }
  for (auto& t : threads) t.join();
  return probes;
}

Result<VerifyReport> VerifyCluster(const VerifyOptions& o) {
  MESHLM_ASSIGN_OR_RETURN(Hostfile hf, LoadHostfile(o.hostfile));
  if (hf.hosts.empty()) return Error("[verify] hostfile '{}' lists no hosts", o.hostfile);
  VerifyReport rep;
  rep.probes = ProbeHosts(hf, o);
  const HostProbe& ref = rep.probes[0];
  const std::string sync_cmd =
      fmt::format("run `meshlm sync --hostfile {} --model {}`", o.hostfile, o.model);
  for (const HostProbe& p : rep.probes) {
    VerifyRow row;
    row.index = p.index;
    row.host = HostLabel(hf, p.index);
    auto fail = [&](const std::string& s) { row.problems.push_back(s); };
    if (!p.reached) {
      fail(p.error);
      row.cells = {"FAIL", "-", "-", "-", "-", "-"};
      rep.rows.push_back(std::move(row));
      continue;
    }
    row.cells.push_back(fmt::format("ok {:.0f}ms", p.rtt_s * 1e3));
    // Version: the same as this binary's; another build of the same version only warns.
    row.cells.push_back(p.version);
    if (p.version != o.version) {
      fail(fmt::format("meshlm {} ≠ {} here: install the same build", p.version, o.version));
      row.cells.back() += " FAIL";
    } else if (!ref.build.empty() && p.build != ref.build && ref.reached) {
      row.warnings.push_back(
          fmt::format("meshlm {} is another build than host 0's (binary sha256 {}… ≠ {}…)",
                      p.version, p.build.substr(0, 12), ref.build.substr(0, 12)));
    }
    // Devices the hostfile names for this host.
    int present = 0;
    std::string missing;
    for (const auto& [name, ok] : p.devices) {
      present += ok;
      if (!ok) missing += (missing.empty() ? "" : ", ") + name;
    }
    row.cells.push_back(fmt::format("{}/{}", present, p.devices.size()));
    if (!missing.empty()) {
      row.cells.back() += " FAIL";
      fail(
          fmt::format("devices named in the hostfile are missing here: {}; fix the host's "
                      "links/rdma cells (`meshlm config` rediscovers them) or bring them up",
                      missing));
    }
    row.cells.push_back(Gb(static_cast<double>(p.mem_available)) + " free");
    if (o.min_free_bytes > 0 && p.mem_available < o.min_free_bytes) {
      row.cells.back() += " FAIL";
      fail(fmt::format("only {} free, below --min-free-gb {:.1f}: stop other programs",
                       Gb(static_cast<double>(p.mem_available)), o.min_free_bytes / 1e9));
    }
    // Weights alone, split evenly over the hosts; the KV cache comes on top.
    const uint64_t share = ref.model_present ? ref.manifest.total_bytes / rep.probes.size() : 0;
    if (p.mem_available < share) {
      row.warnings.push_back(
          fmt::format("{} free is less than an even share of the model's "
                      "weights ({}): `meshlm plan` shows what fits",
                      Gb(static_cast<double>(p.mem_available)), Gb(static_cast<double>(share))));
    }
    // Model: present and identical to host 0's.
    if (o.model.empty()) {
      row.cells.push_back("-");
    } else if (!p.model_present) {
      row.cells.push_back("MISSING");
      fail(fmt::format("model missing: {}; {}", p.model_error, sync_cmd));
    } else if (p.index == 0 || !ref.model_present) {
      row.cells.push_back(
          fmt::format("{} {}", p.index == 0 ? "ref" : "?", p.manifest.digest.substr(0, 8)));
      if (p.index != 0) row.warnings.push_back("no reference: host 0 lacks the model");
    } else if (p.manifest.digest == ref.manifest.digest) {
      row.cells.push_back("same " + p.manifest.digest.substr(0, 8));
    } else {
      const auto diff = ManifestDifferences(ref.manifest, p.manifest);
      row.cells.push_back(fmt::format("DIFFERS ({})", diff.size()));
      std::string what;
      for (size_t k = 0; k < diff.size() && k < 3; ++k) what += (k ? "; " : "") + diff[k];
      if (diff.size() > 3) what += fmt::format("; and {} more", diff.size() - 3);
      fail(fmt::format("model differs from host 0's: {}; {}", what, sync_cmd));
    }
    if (!p.model_note.empty()) row.warnings.push_back("model: " + p.model_note);
    // Clock skew, ± half the ssh overhead. It fails only when the whole interval the
    // round trip allows is past the limit: a slow ssh handshake (a loaded machine) makes
    // the midpoint wrong by up to half the round trip, not the clock.
    row.cells.push_back(fmt::format("{:+.3f}s", p.skew_s));
    if (p.skew_min_s > o.max_skew_s || p.skew_max_s < -o.max_skew_s) {
      row.cells.back() += " FAIL";
      fail(
          fmt::format("clock is {:+.2f} s off this machine's (limit {:.1f} s): run NTP "
                      "(systemctl enable --now systemd-timesyncd or chrony)",
                      p.skew_s, o.max_skew_s));
    }
    rep.rows.push_back(std::move(row));
  }
  for (const VerifyRow& r : rep.rows) rep.ok &= r.problems.empty();
  return rep;
}

std::string VerifyReport::Format() const {
  std::string out = fmt::format("{:<28} {:<10} {:<14} {:<9} {:<15} {:<16} {}\n", "host", "ssh",
                                "version", "devices", "memory", "model", "clock skew");
  for (const VerifyRow& r : rows) {
    out += fmt::format("{:<28} {:<10} {:<14} {:<9} {:<15} {:<16} {}\n", r.host, r.cells[0],
                       r.cells[1], r.cells[2], r.cells[3], r.cells[4], r.cells[5]);
  }
  for (const VerifyRow& r : rows) {
    for (const std::string& w : r.warnings) out += fmt::format("warning: {}: {}\n", r.host, w);
  }
  for (const VerifyRow& r : rows) {
    for (const std::string& p : r.problems) out += fmt::format("FAIL {}: {}\n", r.host, p);
  }
  out += ok ? fmt::format("all {} hosts ok\n", rows.size())
            : fmt::format("verify failed: fix the problems above and run verify again\n");
  return out;
}

}  // namespace meshlm::cluster
