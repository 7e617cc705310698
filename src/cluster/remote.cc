#include "cluster/remote.h"

#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/clock.h"

namespace meshlm::cluster {

namespace {

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

Result<Subprocess> Subprocess::Start(const std::vector<std::string>& argv, bool want_in,
                                     bool want_out) {
  if (argv.empty()) return Error("[run] empty command");
  int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
  if ((want_in && pipe2(pin, O_CLOEXEC) != 0) || (want_out && pipe2(pout, O_CLOEXEC) != 0) ||
      pipe2(perr, O_CLOEXEC) != 0) {
    const int e = errno;
    for (int fd : {pin[0], pin[1], pout[0], pout[1]}) {
      if (fd >= 0) close(fd);
    }
    return Error("[run] pipe: {}", std::strerror(e));
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return Error("[run] fork: {}", std::strerror(errno));
  if (pid == 0) {
    setpgid(0, 0);
    const int null = open("/dev/null", O_RDWR);
    dup2(want_in ? pin[0] : null, 0);
    dup2(want_out ? pout[1] : null, 1);
    dup2(perr[1], 2);
    execvp(args[0], args.data());
    const std::string msg = std::string("cannot run ") + argv[0] + ": " + strerror(errno) + "\n";
    (void)!write(2, msg.data(), msg.size());
    _exit(127);
  }
  Subprocess c;
  c.pid = pid;
  if (want_in) close(pin[0]), c.in = pin[1];
  if (want_out) close(pout[1]), c.out = pout[0];
  close(perr[1]);
  c.err = perr[0];
  for (int fd : {c.in, c.out, c.err}) {
    if (fd >= 0) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  return c;
}

Subprocess& Subprocess::operator=(Subprocess&& o) noexcept {
  std::swap(pid, o.pid), std::swap(in, o.in), std::swap(out, o.out), std::swap(err, o.err);
  std::swap(err_text, o.err_text);
  return *this;
}

Subprocess::~Subprocess() {
  if (pid > 0) {
    Kill();
    waitpid(pid, nullptr, 0);
  }
  for (int* fd : {&in, &out, &err}) CloseFd(*fd);
}

void Subprocess::DrainErr() {
  char buf[4096];
  ssize_t n;
  while (err >= 0 && (n = read(err, buf, sizeof(buf))) > 0) {
    if (err_text.size() < 8192) err_text.append(buf, static_cast<size_t>(n));
  }
}

void Subprocess::CloseIn() { CloseFd(in); }

int Subprocess::Wait(double timeout_s) {
  CloseIn();
  const double deadline = NowSeconds() + timeout_s;
  int status = 0;
  for (;;) {
    DrainErr();
    if (waitpid(pid, &status, WNOHANG) == pid) break;
    if (NowSeconds() > deadline) {
      Kill();
      waitpid(pid, &status, 0);
      break;
    }
    usleep(5000);
  }
  DrainErr();
  CloseFd(out);
  CloseFd(err);
  pid = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void Subprocess::Kill() {
  if (pid > 0) kill(-pid, SIGKILL), kill(pid, SIGKILL);
}

std::vector<std::string> HostArgv(const std::string& dest, const std::vector<std::string>& ssh_args,
                                  const std::string& cmd) {
  if (dest.empty()) return {"sh", "-c", cmd};
  return SshArgv(dest, ssh_args, cmd);
}

Result<CommandResult> RunCommand(const std::vector<std::string>& argv, const std::string& input,
                                 double timeout_s) {
  MESHLM_ASSIGN_OR_RETURN(Subprocess p, Subprocess::Start(argv, /*want_in=*/true,
                                                          /*want_out=*/true));
  if (input.empty()) p.CloseIn();
  signal(SIGPIPE, SIG_IGN);
  CommandResult r;
  size_t written = 0;
  const double deadline = NowSeconds() + timeout_s;
  // Until both output pipes close (the whole process group is done with them) or the
  // deadline passes.
  while (p.out >= 0 || p.err >= 0) {
    if (NowSeconds() > deadline) {
      r.timed_out = true;
      kill(-p.pid, SIGTERM);
      break;
    }
    pollfd fds[3];
    int n = 0;
    if (p.in >= 0) fds[n++] = {p.in, POLLOUT, 0};
    if (p.out >= 0) fds[n++] = {p.out, POLLIN, 0};
    if (p.err >= 0) fds[n++] = {p.err, POLLIN, 0};
    poll(fds, n, 50);
    for (int k = 0; k < n; ++k) {
      if (fds[k].revents == 0) continue;
      if (fds[k].fd == p.in) {
        const ssize_t w = write(p.in, input.data() + written, input.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        if ((w < 0 && errno != EAGAIN) || written == input.size()) p.CloseIn();
        continue;
      }
      int& fd = fds[k].fd == p.out ? p.out : p.err;
      char buf[65536];
      const ssize_t got = read(fd, buf, sizeof(buf));
      if (got > 0) {
        (&fd == &p.out ? r.out : r.err).append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EAGAIN) {
        CloseFd(fd);
      }
    }
  }
  // After SIGTERM at the deadline, a second to go before SIGKILL.
  const int code = p.Wait(r.timed_out ? 1.0 : std::max(0.0, deadline - NowSeconds()) + 1.0);
  r.code = r.timed_out ? 124 : code;
  return r;
}

std::vector<std::string> SshArgv(const std::string& dest, const std::vector<std::string>& ssh_args,
                                 const std::string& remote_command) {
  std::vector<std::string> argv = {"ssh", "-o", "BatchMode=yes", "-T"};
  argv.insert(argv.end(), ssh_args.begin(), ssh_args.end());
  argv.push_back(dest);
  argv.push_back(remote_command);
  return argv;
}

Result<CommandResult> RunOnHost(const std::string& dest, const std::vector<std::string>& ssh_args,
                                const std::string& remote_command, const std::string& input,
                                double timeout_s) {
  return RunCommand(HostArgv(dest, ssh_args, remote_command), input, timeout_s);
}

std::string SshFix(const CommandResult& r, double timeout_s) {
  const std::string& e = r.err;
  auto has = [&](const char* s) { return e.find(s) != std::string::npos; };
  if (r.timed_out) {
    return fmt::format(
        "no answer within {:.0f} s: check that the host is up and reachable, "
        "or raise --timeout",
        timeout_s);
  }
  if (has("Connection refused")) return "ssh refused: start sshd on the host or check its port";
  if (has("Permission denied")) {
    return "ssh key not accepted: add your public key to the host's authorized_keys "
           "(ssh-copy-id) or pass --ssh-arg=-i<key>";
  }
  if (has("Could not resolve")) {
    return "the name does not resolve: fix DNS or /etc/hosts, or give the host a HostName "
           "in ~/.ssh/config";
  }
  if (has("timed out") || has("No route") || has("unreachable")) {
    return "host unreachable: check its address in the hostfile and the network";
  }
  if (has("Host key verification failed")) {
    return "host key unknown or changed: connect once by hand (ssh HOST) to accept it";
  }
  std::string first = e.substr(0, e.find('\n'));
  return fmt::format("ssh failed (exit {}): {}", r.code, first.empty() ? "no message" : first);
}

}  // namespace meshlm::cluster
