// Test helper: runs `meshlm serve` as a child process group on a free loopback port and
// stops it (and every rank it started) at the end.
#pragma once

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace meshlm::testing {

inline std::string BuildDir() {
  const char* b = std::getenv("MESHLM_BUILD_DIR");
  return b ? b : MESHLM_TEST_BUILD_DIR;
}

/// The model the server tests use: $MESHLM_SERVER_TEST_MODEL, else the one the test
/// setup prepared in the build tree.
inline std::string ServerTestModel() {
  const char* m = std::getenv("MESHLM_SERVER_TEST_MODEL");
  return m ? m : BuildDir() + "/servermodel";
}

inline int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

class ServerProcess {
 public:
  /// Starts `meshlm serve --model M --port P EXTRA...` with `env` added ("K=V"); M is
  /// `model`, or the server test model when empty; its stderr goes to `log` when given.
  ServerProcess(std::vector<std::string> extra, std::vector<std::string> env = {},
                const std::string& model = "", const std::string& log = "")
      : port_(FreePort()) {
    std::vector<std::string> args = {BuildDir() + "/src/cli/meshlm",
                                     "serve",
                                     "--model",
                                     model.empty() ? ServerTestModel() : model,
                                     "--port",
                                     std::to_string(port_),
                                     "--threads",
                                     "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      for (const auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
      if (!log.empty() && !std::freopen(log.c_str(), "w", stderr)) ::_exit(126);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::setpgid(pid_, pid_);
  }
  ~ServerProcess() { Stop(); }

  /// Waits until /health answers 200; false after `timeout_s` or when the server exited.
  bool WaitReady(double timeout_s = 60) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (std::chrono::steady_clock::now() < end) {
      if (Exited()) return false;
      httplib::Client c("127.0.0.1", port_);
      c.set_connection_timeout(1, 0);
      if (auto r = c.Get("/health"); r && r->status == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  bool Exited() {
    if (pid_ <= 0) return true;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return true;
    }
    return false;
  }

  /// SIGTERM, then SIGKILL to the whole group after 10 s.
  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 200 && !Exited(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (pid_ > 0) {
      ::kill(-pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }

 private:
  int port_;
  pid_t pid_ = -1;
};

}  // namespace meshlm::testing
