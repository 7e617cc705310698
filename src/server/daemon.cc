// Detaching `meshlm serve` and stopping it again.
#include "server/daemon.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "base/clock.h"

namespace meshlm::server {
namespace {

constexpr const char* kPrefix = "meshlm-serve-";

bool Alive(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

}  // namespace

std::string StateDir() {
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  return xdg && *xdg ? xdg : "/tmp";
}

std::string StatePath(int port) {
  return fmt::format("{}/{}{}-{}.json", StateDir(), kPrefix, ::getuid(), port);
}

Result<bool> Detach(const std::string& host, int port, double ready_timeout_s, int* exit_code) {
  if (port == 0) return Error("[serve] --detach needs a fixed --port");
  const std::string state = StatePath(port);
  const std::string log = fmt::format("{}/{}{}-{}.log", StateDir(), kPrefix, ::getuid(), port);
  if (std::ifstream in(state); in) {
    try {
      const auto j = nlohmann::json::parse(in);
      if (Alive(j.value("pid", 0))) {
        return Error(
            "[serve] a detached server already runs on port {} (pid {}); run `meshlm "
            "stop --port {}` first",
            port, j.value("pid", 0), port);
      }
    } catch (const std::exception&) {
    }
  }
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) return Error("[serve] fork: {}", std::strerror(errno));
  if (pid == 0) {
    ::setsid();
    const int null_fd = ::open("/dev/null", O_RDONLY);
    const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    if (log_fd >= 0) {
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
    }
    return true;
  }
  {
    std::ofstream out(state, std::ios::trunc);
    out << nlohmann::json{{"pid", pid}, {"host", host}, {"port", port}, {"log", log}}.dump()
        << "\n";
  }
  const std::string probe = host == "0.0.0.0" ? "127.0.0.1" : host;
  httplib::Client client(probe, port);
  client.set_connection_timeout(1, 0);
  client.set_read_timeout(2, 0);
  const double start = NowSeconds();
  while (NowSeconds() - start < ready_timeout_s) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      std::remove(state.c_str());
      fmt::print(stderr, "meshlm serve: the server exited during start-up; its log:\n");
      std::ifstream in(log);
      std::stringstream ss;
      ss << in.rdbuf();
      fmt::print(stderr, "{}", ss.str());
      *exit_code = 1;
      return false;
    }
    if (auto res = client.Get("/health"); res && res->status == 200) {
      fmt::print(
          "meshlm serve: ready on http://{}:{} (pid {}, log {}); stop it with `meshlm "
          "stop`\n",
          probe, port, pid, log);
      *exit_code = 0;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  fmt::print(stderr, "meshlm serve: not ready after {} s; stopping it (log: {})\n", ready_timeout_s,
             log);
  ::kill(-pid, SIGTERM);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  ::kill(-pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  std::remove(state.c_str());
  *exit_code = 1;
  return false;
}

Result<std::vector<std::string>> StopServers(int port, double grace_s) {
  std::vector<std::string> files;
  const std::string mine = fmt::format("{}{}-", kPrefix, ::getuid());
  if (port != 0) {
    files.push_back(StatePath(port));
  } else if (DIR* d = ::opendir(StateDir().c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name.rfind(mine, 0) == 0 && name.size() > 5 &&
          name.compare(name.size() - 5, 5, ".json") == 0) {
        files.push_back(StateDir() + "/" + name);
      }
    }
    ::closedir(d);
  }
  std::vector<std::string> stopped;
  for (const auto& f : files) {
    std::ifstream in(f);
    if (!in) continue;
    pid_t pid = 0;
    int p = 0;
    try {
      const auto j = nlohmann::json::parse(in);
      pid = j.value("pid", 0);
      p = j.value("port", 0);
    } catch (const std::exception& ex) {
      return Error("[stop] {}: not a state file ({})", f, ex.what());
    }
    if (Alive(pid)) {
      // The launcher (or the lone server) leads its own process group; SIGTERM lets it
      // stop its ranks, local and remote.
      ::kill(pid, SIGTERM);
      const double start = NowSeconds();
      while (Alive(pid) && NowSeconds() - start < grace_s) {
        ::waitpid(pid, nullptr, WNOHANG);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      if (Alive(pid)) ::kill(-pid, SIGKILL);
    }
    std::remove(f.c_str());
    stopped.push_back(fmt::format("port {} (pid {})", p, pid));
  }
  return stopped;
}

}  // namespace meshlm::server
