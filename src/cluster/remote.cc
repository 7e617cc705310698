#include "cluster/remote.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "base/clock.h"

namespace meshlm::cluster {

namespace {

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

Result<CommandResult> RunCommand(const std::vector<std::string>& argv, const std::string& input,
                                 double timeout_s) {
  if (argv.empty()) return Error("RunCommand: empty argv");
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0) return Error("pipe: {}", strerror(errno));
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]), close(in[1]);
    return Error("pipe: {}", strerror(errno));
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(in[0]), close(in[1]), close(out[0]), close(out[1]);
    return Error("pipe: {}", strerror(errno));
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return Error("fork: {}", strerror(errno));
  if (pid == 0) {
    setpgid(0, 0);
    dup2(in[0], 0), dup2(out[1], 1), dup2(err[1], 2);
    execvp(args[0], args.data());
    const std::string msg = std::string("cannot run ") + argv[0] + ": " + strerror(errno) + "\n";
    (void)!write(2, msg.data(), msg.size());
    _exit(127);
  }
  close(in[0]), close(out[1]), close(err[1]);
  int fds[3] = {in[1], out[0], err[0]};
  for (int fd : fds) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  if (input.empty()) CloseFd(fds[0]);
  CommandResult r;
  size_t written = 0;
  const double deadline = NowSeconds() + timeout_s;
  double kill_at = 0;
  int status = 0;
  bool exited = false;
  signal(SIGPIPE, SIG_IGN);
  for (;;) {
    if (!exited && waitpid(pid, &status, WNOHANG) == pid) exited = true;
    if (exited && fds[1] < 0 && fds[2] < 0) break;
    const double now = NowSeconds();
    if (!r.timed_out && now > deadline) {
      r.timed_out = true;
      kill(-pid, SIGTERM);
      kill_at = now + 1.0;
    }
    if (kill_at > 0 && now > kill_at) {
      kill(-pid, SIGKILL);
      kill_at = 0;
    }
    // Output still open after the process exited (a grandchild holds it): stop at the deadline.
    if (exited && r.timed_out) break;
    pollfd p[3];
    int n = 0;
    for (int k = 0; k < 3; ++k) {
      if (fds[k] >= 0) p[n++] = {fds[k], static_cast<short>(k == 0 ? POLLOUT : POLLIN), 0};
    }
    poll(p, n, 50);
    for (int k = 0; k < n; ++k) {
      if (p[k].revents == 0) continue;
      int& fd = p[k].fd == fds[0] ? fds[0] : p[k].fd == fds[1] ? fds[1] : fds[2];
      if (&fd == &fds[0]) {
        const ssize_t w = write(fd, input.data() + written, input.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        if (w < 0 && errno != EAGAIN) CloseFd(fd);
        if (written == input.size()) CloseFd(fd);
        continue;
      }
      char buf[65536];
      const ssize_t got = read(fd, buf, sizeof(buf));
      if (got > 0) {
        (&fd == &fds[1] ? r.out : r.err).append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EAGAIN) {
        CloseFd(fd);
      }
    }
  }
  for (int& fd : fds) CloseFd(fd);
  if (!exited) {
    kill(-pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  r.code = r.timed_out              ? 124
           : WIFEXITED(status)      ? WEXITSTATUS(status)
           : WIFSIGNALED(status)    ? 128 + WTERMSIG(status)
                                    : -1;
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
  if (dest.empty()) return RunCommand({"sh", "-c", remote_command}, input, timeout_s);
  return RunCommand(SshArgv(dest, ssh_args, remote_command), input, timeout_s);
}

}  // namespace meshlm::cluster
