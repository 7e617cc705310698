// meshlm sync: resumable, verified copies of a model from one source to every host.
#include "cluster/sync.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

#include "base/clock.h"
#include "cluster/hostfile.h"
#include "cluster/launcher.h"
#include "cluster/manifest.h"
#include "cluster/remote.h"
#include "cluster/verify.h"

namespace meshlm::cluster {
namespace {

namespace fs = std::filesystem;

std::string FirstLine(const std::string& s) {
  const size_t b = s.find_first_not_of(" \n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find('\n', b) - b);
}

// One progress line per file: a bar redrawn in place on a terminal, otherwise a plain line
// every few seconds and at the end.
class ProgressLine {
 public:
  ProgressLine(std::FILE* f, std::string label, uint64_t total, uint64_t done)
      : f_(f),
        tty_(f && isatty(fileno(f))),
        label_(std::move(label)),
        total_(total),
        start_done_(done),
        done_(done),
        t0_(NowSeconds()),
        last_(tty_ ? 0 : t0_) {}

  void Update(uint64_t done, bool final = false) {
    const double now = NowSeconds();
    if (done_ == start_done_ && done > done_) t0_ = now;  // the rate counts from the first byte
    done_ = done;
    if (!f_) return;
    if (!final && now - last_ < (tty_ ? 0.25 : 5.0)) return;
    last_ = now;
    const double mb_s = (done_ - start_done_) / 1e6 / std::max(1e-3, now - t0_);
    const double frac = total_ ? static_cast<double>(done_) / total_ : 1.0;
    std::string bar;
    if (tty_) {
      const int w = 20, fill = static_cast<int>(frac * w);
      bar = "[" + std::string(fill, '#') + std::string(w - fill, ' ') + "] ";
    }
    std::fprintf(f_, "%s%s %s%.1f/%.1f MB %3.0f%% %.1f MB/s%s", tty_ ? "\r\033[K" : "",
                 label_.c_str(), bar.c_str(), done_ / 1e6, total_ / 1e6, frac * 100, mb_s,
                 tty_ && !final ? "" : "\n");
    std::fflush(f_);
  }

 private:
  std::FILE* f_;
  bool tty_;
  std::string label_;
  uint64_t total_, start_done_, done_;
  double t0_, last_;
};

struct Source {
  bool local = true;
  std::string dest;  // host 0's ssh destination when not local
  bool is_dir = true;
  Manifest manifest;
};

std::string FilePath(const SyncOptions& o, const Source& src, const std::string& rel) {
  return src.is_dir ? (fs::path(o.model) / rel).string() : o.model;
}

class Syncer {
 public:
  /// dests[i]: where host i is reached (its ssh name or its end of a cable from here).
  Syncer(const SyncOptions& o, const Hostfile& hf, std::vector<std::string> dests,
         std::FILE* progress)
      : o_(o), hf_(hf), dests_(std::move(dests)), progress_(progress) {}

  // Copies `f` to host `i`: resume, stream, hash on arrival, rename into place.
  Status SendFile(int i, const Source& src, const ManifestFile& f, const std::string& label,
                  SyncResult* res) {
    const std::string& dest = dests_[i];
    const std::string final_path = FilePath(o_, src, f.path);
    const std::string part = final_path + ".meshlm-part";
    // How much of the file an earlier, interrupted run left.
    auto prep =
        RunOnHost(dest, o_.ssh_args,
                  fmt::format("mkdir -p {} && if [ -f {p} ]; then wc -c < {p}; else echo 0; fi",
                              ShellQuote(fs::path(final_path).parent_path().string()),
                              fmt::arg("p", ShellQuote(part))),
                  "", o_.timeout_s);
    if (!prep.ok()) return prep.status();
    if (prep->code != 0) {
      return Error("[sync] {}: cannot prepare '{}' (exit {}): {}", HostLabel(hf_, i), part,
                   prep->code, FirstLine(prep->err));
    }
    uint64_t offset = std::strtoull(prep->out.c_str(), nullptr, 10);
    if (offset > f.size) offset = f.size + 1;  // longer than the file: start again
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (offset > f.size) {
        auto rm = RunOnHost(dest, o_.ssh_args, "rm -f " + ShellQuote(part), "", o_.timeout_s);
        if (!rm.ok()) return rm.status();
        offset = 0;
      }
      res->bytes_resumed += offset;
      MESHLM_RETURN_IF_ERROR(Stream(i, src, f, offset, part, label, res));
      // Hash on arrival; rename only a complete, identical copy.
      auto check = RunOnHost(
          dest, o_.ssh_args,
          fmt::format("h=$( (sha256sum < {p} 2>/dev/null || shasum -a 256 < {p}) | cut -c1-64); "
                      "if [ \"$h\" = {sha} ]; then mv -f {p} {f} && echo OK; else echo BAD $h; fi",
                      fmt::arg("p", ShellQuote(part)), fmt::arg("f", ShellQuote(final_path)),
                      fmt::arg("sha", f.sha256)),
          "", std::max(o_.timeout_s, 60 + f.size / 100e6));  // ~100 MB/s hashing at least
      if (!check.ok()) return check.status();
      if (check->out.rfind("OK", 0) == 0) return OkStatus();
      if (check->code != 0 || check->out.rfind("BAD", 0) != 0) {
        return Error("[sync] {}: checking '{}' failed (exit {}): {}", HostLabel(hf_, i), part,
                     check->code, FirstLine(check->err + check->out));
      }
      if (attempt == 0) {
        std::fprintf(progress_ ? progress_ : stderr,
                     "%s: sha256 mismatch on arrival (%s… ≠ %s…); sending it again in full\n",
                     label.c_str(), check->out.substr(4, 12).c_str(),
                     f.sha256.substr(0, 12).c_str());
        offset = f.size + 1;
      }
    }
    return Error(
        "[sync] {}: '{}' arrived with a different sha256 twice; check the host's disk "
        "and memory",
        HostLabel(hf_, i), final_path);
  }

 private:
  // Appends bytes [offset, size) of the source file to `part` on host i.
  Status Stream(int i, const Source& src, const ManifestFile& f, uint64_t offset,
                const std::string& part, const std::string& label, SyncResult* res) {
    const std::string src_path = FilePath(o_, src, f.path);
    int in_fd = -1;
    Subprocess reader;
    if (src.local) {
      in_fd = open(src_path.c_str(), O_RDONLY | O_CLOEXEC);
      if (in_fd < 0) return Error("[sync] cannot open '{}': {}", src_path, std::strerror(errno));
      if (lseek(in_fd, static_cast<off_t>(offset), SEEK_SET) < 0) {
        close(in_fd);
        return Error("[sync] seek in '{}': {}", src_path, std::strerror(errno));
      }
    } else {
      MESHLM_ASSIGN_OR_RETURN(
          reader, Subprocess::Start(
                      HostArgv(src.dest, o_.ssh_args,
                               fmt::format("tail -c +{} {}", offset + 1, ShellQuote(src_path))),
                      /*want_in=*/false, /*want_out=*/true));
      in_fd = reader.out;
    }
    MESHLM_ASSIGN_OR_RETURN(
        Subprocess writer,
        Subprocess::Start(HostArgv(dests_[i], o_.ssh_args, "cat >> " + ShellQuote(part)),
                          /*want_in=*/true, /*want_out=*/false));
    ProgressLine bar(progress_, label, f.size, offset);
    std::vector<char> buf(size_t{1} << 20);
    size_t have = 0, sent_from = 0;
    uint64_t done = offset;
    bool eof = false;
    double last_progress = NowSeconds();
    Status st;
    while (st.ok() && !(eof && sent_from == have)) {
      pollfd p[2];
      int n = 0, ip = -1, op = -1;
      if (!eof && have < buf.size() && !src.local) ip = n, p[n++] = {in_fd, POLLIN, 0};
      if (sent_from < have) op = n, p[n++] = {writer.in, POLLOUT, 0};
      if (n > 0) poll(p, n, 200);
      if (!eof && have < buf.size() && (src.local || (p[ip].revents & (POLLIN | POLLHUP)))) {
        const ssize_t k = read(in_fd, buf.data() + have, buf.size() - have);
        if (k > 0) {
          have += static_cast<size_t>(k);
        } else if (k == 0) {
          eof = true;
        } else if (errno != EAGAIN && errno != EINTR) {
          st = Error("[sync] reading '{}': {}", src_path, std::strerror(errno));
        }
      }
      if (op >= 0 && (p[op].revents & (POLLOUT | POLLERR | POLLHUP))) {
        const ssize_t k = write(writer.in, buf.data() + sent_from, have - sent_from);
        if (k > 0) {
          sent_from += static_cast<size_t>(k);
          done += static_cast<uint64_t>(k);
          res->bytes_sent += static_cast<uint64_t>(k);
          last_progress = NowSeconds();
          bar.Update(done);
        } else if (k < 0 && errno != EAGAIN && errno != EINTR) {
          writer.DrainErr();
          st = Error("[sync] {}: the copy to '{}' stopped: {}", HostLabel(hf_, i), part,
                     FirstLine(writer.err_text).empty() ? std::strerror(errno)
                                                        : FirstLine(writer.err_text));
        }
      }
      if (sent_from == have) sent_from = have = 0;
      writer.DrainErr();
      reader.DrainErr();
      if (st.ok() && NowSeconds() - last_progress > o_.stall_s && !(eof && have == 0)) {
        st = Error(
            "[sync] {}: '{}' made no progress for {:.0f} s at {} of {} bytes; check the "
            "link and run sync again (it resumes)",
            HostLabel(hf_, i), f.path, o_.stall_s, done, f.size);
      }
    }
    if (src.local) close(in_fd);
    if (!st.ok()) return st;
    const int wcode = writer.Wait(o_.stall_s);
    if (!src.local) {
      const int rcode = reader.Wait(o_.timeout_s);
      if (rcode != 0) {
        return Error("[sync] reading '{}' on host 0 failed (exit {}): {}", src_path, rcode,
                     FirstLine(reader.err_text));
      }
    }
    if (wcode != 0) {
      return Error("[sync] {}: writing '{}' failed (exit {}): {}", HostLabel(hf_, i), part, wcode,
                   FirstLine(writer.err_text));
    }
    if (done != f.size) {
      return Error("[sync] '{}': {} bytes arrived, expected {} (did the source change?)", src_path,
                   done, f.size);
    }
    bar.Update(done, /*final=*/true);
    return OkStatus();
  }

  const SyncOptions& o_;
  const Hostfile& hf_;
  std::vector<std::string> dests_;
  std::FILE* progress_;
};

}  // namespace

Result<SyncResult> SyncModel(const SyncOptions& o, std::FILE* progress) {
  const double t0 = NowSeconds();
  signal(SIGPIPE, SIG_IGN);  // a host that drops the copy is an error, not a crash
  MESHLM_ASSIGN_OR_RETURN(Hostfile hf, LoadHostfile(o.hostfile));
  if (hf.hosts.empty()) return Error("[sync] hostfile '{}' lists no hosts", o.hostfile);
  VerifyOptions vo;
  vo.hostfile = o.hostfile;
  vo.model = o.model;
  vo.version = o.version;
  vo.remote_meshlm = o.remote_meshlm;
  vo.ssh_args = o.ssh_args;
  vo.timeout_s = std::max(o.timeout_s, 120.0);  // a first manifest hashes the whole model
  const std::vector<HostProbe> probes = ProbeHosts(hf, vo);
  std::vector<std::string> failures;
  for (const HostProbe& p : probes) {
    if (!p.reached) failures.push_back(HostLabel(hf, p.index) + ": " + p.error);
  }

  // The source: this machine's copy, else host 0's.
  Source src;
  std::error_code ec;
  const HostProbe& h0 = probes[0];
  if (fs::exists(o.model, ec)) {
    MESHLM_ASSIGN_OR_RETURN(src.manifest, BuildManifest(o.model));
    src.is_dir = fs::is_directory(o.model, ec);
    if (h0.model_present && h0.manifest.digest != src.manifest.digest && !o.from_here) {
      const auto diff = ManifestDifferences(h0.manifest, src.manifest);
      return Error(
          "[sync] the model here ({}) differs from host 0's ({}: {}): run sync on host "
          "0, or pass --from-here to make this copy the reference for every host",
          o.model, HostLabel(hf, 0), diff.empty() ? "?" : diff[0]);
    }
  } else if (h0.model_present) {
    src.local = false;
    src.dest = SshDest(hf, 0);
    src.is_dir = h0.model_is_dir;
    src.manifest = h0.manifest;
  } else {
    return Error("[sync] no copy of '{}' here nor on {}{}: put the model on rank 0's host first",
                 o.model, HostLabel(hf, 0), h0.reached ? "" : " (unreachable)");
  }
  if (progress) {
    std::fprintf(progress, "source: %s (%zu files, %.1f MB, digest %s)\n",
                 src.local ? "this machine" : HostLabel(hf, 0).c_str(), src.manifest.files.size(),
                 src.manifest.total_bytes / 1e6, src.manifest.digest.substr(0, 12).c_str());
  }

  // Run on host 0, data goes over the cables in the hostfile: to host i's end of its link
  // with host 0 (an IPv4 cell of hosts[i].links[0]) when ssh answers there, else to its
  // ssh name. From elsewhere, the ssh names.
  std::vector<std::string> dests;
  for (int i = 0; i < static_cast<int>(hf.hosts.size()); ++i) dests.push_back(SshDest(hf, i));
  if (src.local && IsHere(hf, 0)) {
    for (int i = 1; i < static_cast<int>(hf.hosts.size()); ++i) {
      const HostProbe& p = probes[i];
      if (!p.reached || dests[i].empty() || hf.hosts[i].links.empty() ||
          (p.model_present && p.manifest.digest == src.manifest.digest)) {
        continue;
      }
      const std::string& ssh = hf.hosts[i].ssh;
      const std::string user =
          ssh.find('@') == std::string::npos ? "" : ssh.substr(0, ssh.find('@') + 1);
      for (const std::string& a : hf.hosts[i].links[0]) {
        in_addr ip{};
        if (inet_pton(AF_INET, a.c_str(), &ip) != 1) continue;
        std::vector<std::string> args = o.ssh_args;
        args.push_back("-oConnectTimeout=3");
        auto r = RunOnHost(user + a, args, "true", "", 10);
        if (r.ok() && r->code == 0) {
          dests[i] = user + a;
          break;
        }
        if (progress) {
          std::fprintf(progress, "%s: no ssh over the link address %s (%s); using %s\n",
                       HostLabel(hf, i).c_str(), a.c_str(),
                       r.ok() ? FirstLine(r->err).c_str() : r.status().message().c_str(),
                       ssh.c_str());
        }
        break;  // one try per host
      }
      if (progress && dests[i] != SshDest(hf, i)) {
        std::fprintf(progress, "%s: over the link from host 0, via %s\n", HostLabel(hf, i).c_str(),
                     dests[i].c_str());
      }
    }
  }

  SyncResult res;
  Syncer syncer(o, hf, dests, progress);
  for (const HostProbe& p : probes) {
    if (!p.reached || (!src.local && p.index == 0)) continue;
    const std::string host = HostLabel(hf, p.index);
    if (p.model_present && p.manifest.digest == src.manifest.digest) {
      if (progress) std::fprintf(progress, "%s: up to date\n", host.c_str());
      continue;
    }
    std::map<std::string, const ManifestFile*> theirs;
    if (p.model_present) {
      for (const ManifestFile& f : p.manifest.files) theirs[f.path] = &f;
    }
    std::vector<const ManifestFile*> todo;
    for (const ManifestFile& f : src.manifest.files) {
      auto it = theirs.find(f.path);
      if (it == theirs.end() || it->second->size != f.size || it->second->sha256 != f.sha256) {
        todo.push_back(&f);
      }
      if (it != theirs.end()) theirs.erase(it);
    }
    uint64_t bytes = 0;
    for (const ManifestFile* f : todo) bytes += f->size;
    if (progress) {
      std::fprintf(progress, "%s: %zu of %zu files to send (%.1f MB)%s\n", host.c_str(),
                   todo.size(), src.manifest.files.size(), bytes / 1e6,
                   o.dry_run ? " [dry run]" : "");
    }
    Status st;
    for (size_t k = 0; k < todo.size() && st.ok() && !o.dry_run; ++k) {
      const std::string label =
          fmt::format("{} [{}/{}] {}", host, k + 1, todo.size(), todo[k]->path);
      st = syncer.SendFile(p.index, src, *todo[k], label, &res);
      if (st.ok()) ++res.files_sent;
    }
    // Files the reference lacks keep the host's digest different.
    if (st.ok() && !theirs.empty() && src.is_dir) {
      std::string extra, rm = "rm -f --";
      for (const auto& [path, f] : theirs) {
        extra += (extra.empty() ? "" : ", ") + path;
        rm += " " + ShellQuote((fs::path(o.model) / path).string());
      }
      if (o.remove_extra && !o.dry_run) {
        auto r = RunOnHost(dests[p.index], o.ssh_args, rm, "", o.timeout_s);
        if (!r.ok() || r->code != 0) st = Error("[sync] {}: cannot remove {}", host, extra);
      } else {
        failures.push_back(
            fmt::format("{}: files not in the source: {}; remove them or pass "
                        "--delete",
                        host, extra));
      }
    }
    if (!st.ok()) {
      failures.push_back(st.message());
    } else if (!todo.empty() && !o.dry_run) {
      ++res.hosts_updated;
    }
  }
  res.seconds = NowSeconds() - t0;
  if (!failures.empty()) {
    std::string msg = "[sync] not every host holds the model:";
    for (const std::string& f : failures) msg += "\n  " + f;
    return Status::Error(msg);
  }
  return res;
}

}  // namespace meshlm::cluster
