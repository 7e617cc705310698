// Helpers for multi-process tests: spawn ranks with extra environment, wait with a
// deadline, and kill whatever is left when a test ends (even when it fails).
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <deque>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "base/clock.h"

namespace meshlm::testing {

inline std::string BuildDir() {
  const char* d = std::getenv("MESHLM_BUILD_DIR");
  return d ? d : ".";
}

inline std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// An unused TCP port on 127.0.0.1 (free at the time of the call).
inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

struct Child {
  pid_t pid = -1;
  std::string log;  // stdout and stderr
  int status = -1;  // raw wait status once reaped
  bool reaped = false;
  int ExitCode() const { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }
};

/// Children of one test; the destructor SIGKILLs and reaps any still running.
class ChildSet {
 public:
  ~ChildSet() {
    for (Child& c : children_) {
      if (!c.reaped && c.pid > 0) {
        kill(c.pid, SIGKILL);
        waitpid(c.pid, &c.status, 0);
      }
    }
  }

  /// Starts argv with the current environment plus `env` ("K=V"); output to `log`.
  Child& Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
               const std::string& log) {
    Child c;
    c.log = log;
    unlink(log.c_str());  // readers must not see a previous run's log before the child starts
    c.pid = fork();
    if (c.pid == 0) {
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      for (const std::string& kv : env) putenv(strdup(kv.c_str()));
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    children_.push_back(c);
    return children_.back();
  }

  /// Waits until `c` exits or `timeout_s` passes; returns whether it exited.
  static bool Wait(Child& c, double timeout_s) {
    const double end = NowSeconds() + timeout_s;
    while (!c.reaped) {
      const pid_t r = waitpid(c.pid, &c.status, WNOHANG);
      if (r == c.pid) {
        c.reaped = true;
        break;
      }
      if (NowSeconds() > end) return false;
      usleep(5000);
    }
    return true;
  }

  std::deque<Child>& children() { return children_; }

 private:
  std::deque<Child> children_;  // a deque keeps references returned by Spawn valid
};

}  // namespace meshlm::testing
