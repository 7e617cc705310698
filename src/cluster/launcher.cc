// Launcher: plans ranks from flags or a hostfile, spawns them (fork/exec or ssh), relays
// tagged output and stdin, and tears the whole job down on the first failure.
#include "cluster/launcher.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "base/clock.h"
#include "base/log.h"
#include "cluster/hostfile.h"
#include "cluster/verify.h"
#include "comm/auth.h"
#include "comm/env.h"
#include "comm/socket.h"

extern char** environ;

namespace meshlm::cluster {
namespace {

volatile sig_atomic_t g_signal = 0;
void OnSignal(int sig) { g_signal = sig; }

struct RankPlan {
  int rank = 0;
  std::string host;   // ssh destination ("" for local)
  std::string label;  // MESHLM_HOST
  std::string rails;  // MESHLM_RAILS
};

struct Proc {
  RankPlan plan;
  pid_t pid = -1;
  int in = -1, out = -1, err = -1;
  std::string inbox, out_line, err_line;
  bool exited = false;
  int code = 0;
  long remote_pid = 0;  // pid (and process group) of the rank on its remote host
};

bool IsLocalHost(const std::string& h) {
  if (h.empty() || h == "localhost" || h == "127.0.0.1" || h == "::1") return true;
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  return h == name;
}

void WriteFully(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t k = write(fd, s.data() + off, s.size() - off);
    if (k <= 0 && errno != EINTR) return;
    if (k > 0) off += static_cast<size_t>(k);
  }
}

int ExitCodeOf(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Result<std::vector<RankPlan>> PlanRanks(const LaunchOptions& o, const Hostfile* hf) {
  std::vector<RankPlan> plans;
  if (hf != nullptr) {
    for (size_t i = 0; i < hf->hosts.size(); ++i) {
      const HostEntry& h = hf->hosts[i];
      RankPlan p;
      p.rank = static_cast<int>(i);
      const std::string dest = h.ssh.empty() ? h.ips[0] : h.ssh;
      p.host = IsLocalHost(dest) ? "" : dest;
      p.label = dest;
      if (!h.links.empty()) p.rails = comm::FormatRails(h.links);
      plans.push_back(p);
    }
  } else if (!o.hosts.empty()) {
    const int per = std::max(1, o.processes);
    for (const std::string& h : o.hosts) {
      for (int k = 0; k < per; ++k) {
        RankPlan p;
        p.rank = static_cast<int>(plans.size());
        p.host = IsLocalHost(h) ? "" : h;
        p.label = h;
        plans.push_back(p);
      }
    }
  } else {
    if (o.processes < 1) return Error("[launch] give -n N (local ranks), --hosts or --hostfile");
    for (int r = 0; r < o.processes; ++r) plans.push_back(RankPlan{r, "", "", ""});
  }
  return plans;
}

// The remote side: read the secret from stdin (so it never appears in ps), announce the
// pid so the launcher can stop the rank, then become the rank.
std::string RemoteCommand(const std::vector<std::string>& env,
                          const std::vector<std::string>& cmd) {
  std::error_code ec;
  const std::string cwd = std::filesystem::current_path(ec).string();
  std::string s = "cd " + ShellQuote(cwd) + " && exec env";
  for (const std::string& kv : env) s += " " + ShellQuote(kv);
  s += " sh -c " + ShellQuote(
                       "IFS= read -r MESHLM_SECRET || exit 97; export MESHLM_SECRET; "
                       "echo \"meshlm-launch-pid $$\" >&2; exec \"$@\"");
  s += " meshlm-rank";
  for (const std::string& a : cmd) s += " " + ShellQuote(a);
  return s;
}

class Supervisor {
 public:
  Supervisor(const LaunchOptions& o, std::vector<Proc> procs) : o_(o), procs_(std::move(procs)) {}

  Status Start(const std::vector<std::string>& common_env, const std::string& secret) {
    // A bare `meshlm` is this binary, on every host (as `meshlm sync` and the start gate
    // expect: the same build at the same path), so a job needs no install step or PATH.
    std::vector<std::string> command = o_.command;
    if (!command.empty() && command[0] == "meshlm") command[0] = SelfExe();
    for (Proc& p : procs_) {
      std::vector<std::string> env = common_env;
      env.push_back("MESHLM_RANK=" + std::to_string(p.plan.rank));
      if (!p.plan.label.empty()) env.push_back("MESHLM_HOST=" + p.plan.label);
      if (!p.plan.rails.empty()) env.push_back("MESHLM_RAILS=" + p.plan.rails);
      std::vector<std::string> argv;
      if (p.plan.host.empty()) {
        env.push_back("MESHLM_SECRET=" + secret);
        argv = command;
      } else {
        argv = {"ssh", "-o", "BatchMode=yes", "-T"};
        argv.insert(argv.end(), o_.ssh_args.begin(), o_.ssh_args.end());
        argv.push_back(p.plan.host);
        argv.push_back(RemoteCommand(env, command));
        p.inbox = secret + "\n";
      }
      if (o_.verbose) {
        std::string shown;
        for (const auto& a : command) shown += " " + a;
        MESHLM_LOG_INFO("[launch] rank {} on {}:{}", p.plan.rank,
                        p.plan.host.empty() ? "this host" : p.plan.host, shown);
      }
      Status st = Spawn(p, argv, p.plan.host.empty() ? env : std::vector<std::string>{});
      if (!st.ok()) {
        // Ranks not started count as failed; the ones that did start are stopped.
        for (Proc& q : procs_) {
          if (q.pid < 0) q.exited = true;
        }
        first_code_ = 127;
        StopAll(SIGTERM);
        return st;
      }
    }
    return OkStatus();
  }

  int Run() {
    bool stdin_open = true;
    double kill_at = 0, give_up_at = 0;
    for (;;) {
      if (g_signal != 0 && first_code_ < 0) {
        first_code_ = 128 + g_signal;
        StopAll(SIGTERM);
        kill_at = NowSeconds() + o_.grace_s;
      }
      Reap(&kill_at);
      const bool all_exited =
          std::all_of(procs_.begin(), procs_.end(), [](const Proc& p) { return p.exited; });
      const bool drained = std::all_of(procs_.begin(), procs_.end(),
                                       [](const Proc& p) { return p.out < 0 && p.err < 0; });
      if (all_exited && drained) break;
      if (all_exited) {
        if (give_up_at == 0) give_up_at = NowSeconds() + 1.0;  // a grandchild holds a pipe
        if (NowSeconds() > give_up_at) break;
      }
      if (kill_at > 0 && NowSeconds() > kill_at) {
        StopAll(SIGKILL);
        kill_at = 0;
      }
      std::vector<pollfd> fds;
      std::vector<std::pair<Proc*, int>> who;  // (proc, 0 in / 1 out / 2 err), null = stdin
      if (stdin_open) {
        fds.push_back({0, POLLIN, 0});
        who.push_back({nullptr, 0});
      }
      for (Proc& p : procs_) {
        if (p.in >= 0 && !p.inbox.empty()) {
          fds.push_back({p.in, POLLOUT, 0});
          who.push_back({&p, 0});
        }
        if (p.out >= 0) {
          fds.push_back({p.out, POLLIN, 0});
          who.push_back({&p, 1});
        }
        if (p.err >= 0) {
          fds.push_back({p.err, POLLIN, 0});
          who.push_back({&p, 2});
        }
      }
      // Bounded wait: child exits are noticed by waitpid at least every 50 ms.
      if (poll(fds.data(), fds.size(), 50) <= 0) continue;
      for (size_t i = 0; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        Proc* p = who[i].first;
        if (p == nullptr) {
          char buf[65536];
          const ssize_t k = read(0, buf, sizeof(buf));
          if (k > 0) {
            for (Proc& q : procs_) {
              if (q.in >= 0) q.inbox.append(buf, static_cast<size_t>(k));
            }
          } else if (k == 0 || errno != EINTR) {
            stdin_open = false;
            stdin_eof_ = true;
          }
        } else if (who[i].second == 0) {
          const ssize_t k = write(p->in, p->inbox.data(), p->inbox.size());
          if (k > 0) p->inbox.erase(0, static_cast<size_t>(k));
          if (k < 0 && errno != EAGAIN && errno != EINTR) CloseIn(*p);
        } else {
          Relay(*p, who[i].second);
        }
      }
      for (Proc& p : procs_) {
        if (stdin_eof_ && p.in >= 0 && p.inbox.empty()) CloseIn(p);
      }
    }
    // Whatever the ranks left running in their process groups ends with the job.
    for (Proc& p : procs_) {
      if (p.plan.host.empty() && p.pid > 0) kill(-p.pid, SIGKILL);
    }
    return first_code_ < 0 ? 0 : first_code_;
  }

 private:
  Status Spawn(Proc& p, const std::vector<std::string>& argv, const std::vector<std::string>& env) {
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
      return Error("[launch] pipe: {}", std::strerror(errno));
    }
    const pid_t launcher = getpid();
    const pid_t pid = fork();
    if (pid < 0) return Error("[launch] fork: {}", std::strerror(errno));
    if (pid == 0) {
      setpgid(0, 0);  // own group, so that stopping a rank stops its children too
      // A launcher that dies (SIGKILL, OOM) takes its children along: a local rank gets
      // SIGTERM (meshlm ranks also watch their stderr, see WatchLauncher), an ssh client
      // SIGKILL, which closes the remote rank's stdout and stderr.
      prctl(PR_SET_PDEATHSIG, p.plan.host.empty() ? SIGTERM : SIGKILL);
      if (getppid() != launcher) _exit(1);  // it died before the line above
      signal(SIGPIPE, SIG_DFL);
      dup2(in[0], 0);
      dup2(out[1], 1);
      dup2(err[1], 2);
      for (const std::string& kv : env) putenv(strdup(kv.c_str()));
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execvp(args[0], args.data());
      const std::string msg =
          fmt::format("[launch] cannot run '{}': {}\n", argv[0], std::strerror(errno));
      (void)!write(2, msg.data(), msg.size());
      _exit(127);
    }
    setpgid(pid, pid);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    p.pid = pid;
    p.in = in[1];
    p.out = out[0];
    p.err = err[0];
    fcntl(p.in, F_SETFL, fcntl(p.in, F_GETFL) | O_NONBLOCK);
    return OkStatus();
  }

  void CloseIn(Proc& p) {
    if (p.in >= 0) close(p.in);
    p.in = -1;
  }

  // Reads a child's output and writes whole lines tagged with the rank.
  void Relay(Proc& p, int stream) {
    int& fd = stream == 1 ? p.out : p.err;
    std::string& line = stream == 1 ? p.out_line : p.err_line;
    char buf[65536];
    const ssize_t k = read(fd, buf, sizeof(buf));
    if (k < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (k > 0) line.append(buf, static_cast<size_t>(k));
    const bool eof = k <= 0;
    std::string out;
    size_t start = 0;
    for (size_t nl; (nl = line.find('\n', start)) != std::string::npos; start = nl + 1) {
      const std::string l = line.substr(start, nl - start);
      long pid = 0;
      if (stream == 2 && !p.plan.host.empty() && p.remote_pid == 0 &&
          std::sscanf(l.c_str(), "meshlm-launch-pid %ld", &pid) == 1) {
        p.remote_pid = pid;
        continue;
      }
      out += fmt::format("[{}] {}\n", p.plan.rank, l);
    }
    line.erase(0, start);
    if (eof && !line.empty()) {
      out += fmt::format("[{}] {}\n", p.plan.rank, line);
      line.clear();
    }
    WriteFully(stream == 1 ? 1 : 2, out);
    if (eof) {
      close(fd);
      fd = -1;
    }
  }

  void Reap(double* kill_at) {
    for (;;) {
      int status = 0;
      const pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) return;
      for (Proc& p : procs_) {
        if (p.pid != pid || p.exited) continue;
        p.exited = true;
        p.code = ExitCodeOf(status);
        if (o_.verbose || p.code != 0) {
          MESHLM_LOG_INFO("[launch] rank {} exited with code {}", p.plan.rank, p.code);
        }
        if (p.code != 0 && first_code_ < 0) {
          first_code_ = p.code;
          MESHLM_LOG_ERROR("[launch] rank {}{} failed with exit code {}; stopping the other ranks",
                           p.plan.rank, p.plan.host.empty() ? "" : " on " + p.plan.host, p.code);
          StopAll(SIGTERM);
          *kill_at = NowSeconds() + o_.grace_s;
        }
      }
    }
  }

  // Signals every live rank's process group; remote ranks are signalled over ssh too.
  void StopAll(int sig) {
    for (Proc& p : procs_) {
      // A local rank that exited may have left children in its group: signal it too.
      if (p.exited) {
        if (p.plan.host.empty() && p.pid > 0) kill(-p.pid, sig);
        continue;
      }
      if (!p.plan.host.empty() && p.remote_pid > 0) {
        const std::string cmd =
            fmt::format("kill -{} -- -{} 2>/dev/null || kill -{} {} 2>/dev/null",
                        sig == SIGKILL ? "KILL" : "TERM", p.remote_pid,
                        sig == SIGKILL ? "KILL" : "TERM", p.remote_pid);
        std::vector<std::string> argv = {"ssh", "-o", "BatchMode=yes", "-T"};
        argv.insert(argv.end(), o_.ssh_args.begin(), o_.ssh_args.end());
        argv.push_back(p.plan.host);
        argv.push_back(cmd);
        RunDetached(argv);
        if (sig == SIGTERM) continue;  // let the ssh client report the remote exit first
      }
      kill(-p.pid, sig);
    }
  }

  // Runs a helper (a remote kill) and waits for it, bounded.
  void RunDetached(const std::vector<std::string>& argv) {
    const pid_t pid = fork();
    if (pid == 0) {
      const int null = open("/dev/null", O_RDWR);
      dup2(null, 0);
      dup2(null, 1);
      dup2(null, 2);
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execvp(args[0], args.data());
      _exit(127);
    }
    const double end = NowSeconds() + 5.0;
    int status;
    while (pid > 0 && waitpid(pid, &status, WNOHANG) == 0) {
      if (NowSeconds() > end) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        break;
      }
      usleep(10000);
    }
  }

  const LaunchOptions& o_;
  std::vector<Proc> procs_;
  int first_code_ = -1;
  bool stdin_eof_ = false;
};

}  // namespace

void WatchLauncher() {
  const char* watch = std::getenv("MESHLM_WATCH_LAUNCHER");
  if (watch == nullptr || std::string(watch) != "1") return;
  struct stat st {};
  if (fstat(2, &st) != 0 || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) return;
  std::thread([] {
    for (;;) {
      pollfd p{2, 0, 0};  // no events asked: only the error and hang-up states wake it
      const int r = poll(&p, 1, -1);
      if (r > 0 && (p.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) break;
      if (r < 0 && errno != EINTR) return;  // cannot watch; the parent-death signal remains
    }
    // Nobody reads this rank's output any more: its launcher (or the ssh session that
    // carried it) is gone. Stop gently, then for sure: the whole process group when this
    // process leads it (as the launcher arranges), else this process alone.
    // What the process still prints on its way out goes nowhere, without EPIPE errors.
    if (const int null = open("/dev/null", O_WRONLY | O_CLOEXEC); null >= 0) {
      dup2(null, 1);
      dup2(null, 2);
    }
    const pid_t target = getpgrp() == getpid() ? 0 : getpid();
    kill(target, SIGTERM);
    usleep(1000000);
    kill(target, SIGKILL);
  }).detach();
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

Result<int> Launch(const LaunchOptions& o) {
  if (o.command.empty())
    return Error("[launch] no command given; usage: meshlm launch -n 2 -- CMD");
  Hostfile hf;
  const bool has_hostfile = !o.hostfile.empty();
  if (has_hostfile) {
    MESHLM_ASSIGN_OR_RETURN(hf, LoadHostfile(o.hostfile));
  }
  MESHLM_ASSIGN_OR_RETURN(std::vector<RankPlan> plans, PlanRanks(o, has_hostfile ? &hf : nullptr));
  const int n = static_cast<int>(plans.size());

  // Coordinator: rank 0's address as the other ranks see it.
  std::string coord_host = "127.0.0.1";
  const bool any_remote =
      std::any_of(plans.begin(), plans.end(), [](const RankPlan& p) { return !p.host.empty(); });
  if (any_remote) coord_host = has_hostfile ? hf.Address(0) : plans[0].label;
  if (IsLocalHost(coord_host) && any_remote) {
    return Error(
        "[launch] rank 0 runs on this host, which remote ranks cannot reach as '{}'; "
        "list this host by an address the others can reach",
        coord_host);
  }
  int port = o.port;
  if (port == 0) {
    if (plans[0].host.empty()) {
      auto fd = comm::ListenTcp("", 0);
      if (!fd.ok()) return fd.status();
      port = comm::LocalPort(fd->get());
    } else {
      std::random_device rd;
      port = 20000 + static_cast<int>(rd() % 40000);
    }
  }
  std::vector<std::string> env = {
      "MESHLM_WORLD_SIZE=" + std::to_string(n),
      fmt::format("MESHLM_COORDINATOR={}:{}", coord_host, port),
      "MESHLM_BACKEND=" + (o.backend.empty() ? std::string("tcp") : o.backend),
      "MESHLM_WATCH_LAUNCHER=1",
  };
  if (has_hostfile) {
    std::error_code ec;
    env.push_back("MESHLM_HOSTFILE=" + std::filesystem::absolute(o.hostfile, ec).string());
    for (const auto& [k, v] : hf.envs) env.push_back(k + "=" + v);
  }
  for (const std::string& kv : o.env) {
    if (kv.find('=') == std::string::npos || kv.front() == '=') {
      return Error("[launch] --env '{}' is not KEY=VALUE", kv);
    }
    env.push_back(kv);
  }
  std::vector<Proc> procs(n);
  for (int r = 0; r < n; ++r) procs[r].plan = plans[r];

  g_signal = 0;
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  struct sigaction old_int {
  }, old_term{};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  signal(SIGPIPE, SIG_IGN);
  Supervisor sup(o, std::move(procs));
  const std::string secret = comm::NewSecretHex();
  Status st = sup.Start(env, secret);
  int code = st.ok() ? 0 : 1;
  if (!st.ok()) MESHLM_LOG_ERROR("{}", st.message());
  const int run_code = sup.Run();  // also reaps whatever did start
  if (st.ok()) code = run_code;
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return code;
}

}  // namespace meshlm::cluster
