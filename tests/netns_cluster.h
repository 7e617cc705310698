// A cluster of Linux network namespaces for multi-host tests: each "host" is a namespace
// with its own sshd, joined to its peers by veth pairs (one per rail) and to a hub
// namespace (where the tools run, like an operator's laptop) by a management bridge.
// Everything it creates is removed by the destructor, also when a check fails.
#pragma once

#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "comm_spawn.h"

namespace meshlm::testing {

struct Sh {
  int code;
  std::string out;
};

// Runs a shell command, bounded by `timeout` (coreutils), capturing stdout and stderr.
inline Sh Shell(const std::string& cmd, int timeout_s = 60) {
  const std::string full =
      fmt::format("timeout -k 2 {} sh -c {} 2>&1", timeout_s,
                  "'" + std::regex_replace(cmd, std::regex("'"), "'\\''") + "'");
  FILE* p = popen(full.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), out};
}

// A cluster of `hosts` namespaces. Host i is reachable from the hub at 10.99.0.(i + 1)
// (interface "mgmt"). Pair (i, j) is joined by `rails(i, j)` cables (default 2; 0 for no
// link), cable k on subnet 10.(50 + k).(pair).0/24, i at .1 and j at .2, named
// "r<k>p<peer>" in each. With `crossed`, host 1 names its two ends toward host 0 the other
// way round.
class NetnsCluster {
 public:
  using RailCount = std::function<int(int i, int j)>;
  /// With `private_models`, each host's sshd (so every command and rank started over ssh)
  /// sees its own folder HostDir(i) mounted at ModelRoot(), as separate machines would.
  NetnsCluster(int hosts, bool crossed, RailCount rails = nullptr, bool private_models = false)
      : n_(hosts),
        prefix_(fmt::format("mlt{}", getpid() % 100000)),
        rails_(rails ? std::move(rails) : [](int, int) { return 2; }),
        private_models_(private_models) {
    dir_ = fmt::format("/tmp/{}-{}", prefix_, crossed ? "x" : "s");
    ok_ = Setup(crossed);
  }
  ~NetnsCluster() { Teardown(); }

  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  std::string Ns(int i) const { return fmt::format("{}h{}", prefix_, i); }
  std::string Hub() const { return prefix_ + "hub"; }
  const std::string& dir() const { return dir_; }
  int hosts() const { return n_; }
  static int Pair(int i, int j) { return i * 10 + j; }
  /// Cables between hosts i and j (either order).
  int Rails(int i, int j) const { return rails_(std::min(i, j), std::max(i, j)); }
  /// The private key the hub uses to reach every host's sshd.
  std::string Key() const { return dir_ + "/id"; }
  /// Runs a shell command in the hub namespace (where an operator would type).
  Sh InHub(const std::string& cmd, int timeout_s = 60) const {
    return Shell(fmt::format("cd {} && ip netns exec {} sh -c {}", dir_, Hub(),
                             "'" + std::regex_replace(cmd, std::regex("'"), "'\\''") + "'"),
                 timeout_s);
  }
  /// Runs a shell command in host i's namespace.
  Sh OnHost(int i, const std::string& cmd, int timeout_s = 60) const {
    return Shell(fmt::format("ip netns exec {} sh -c {}", Ns(i),
                             "'" + std::regex_replace(cmd, std::regex("'"), "'\\''") + "'"),
                 timeout_s);
  }
  /// Where hosts see their private folder (private_models); the hub sees the plain folder.
  std::string ModelRoot() const { return dir_ + "-models"; }
  /// Host i's private folder as seen from the hub (and from OnHost).
  std::string HostDir(int i) const { return fmt::format("{}/host{}", dir_, i); }
  /// Stops host i's sshd (the host stays up, unreachable over ssh).
  bool StopSshd(int i) const {
    return Shell(fmt::format("kill $(cat {0}/sshd{1}.pid) && rm -f {0}/sshd{1}.pid", dir_, i))
               .code == 0;
  }
  std::string RailIp(int i, int j, int rail) const {
    const int a = std::min(i, j), b = std::max(i, j);
    return fmt::format("10.{}.{}.{}", 50 + rail, Pair(a, b), i == a ? 1 : 2);
  }

  /// Writes a hostfile; links by interface name (names=true) or IP, `rails` per pair.
  std::string WriteHostfile(const std::string& name, bool names, int rails) const {
    nlohmann::json hosts = nlohmann::json::array();
    for (int i = 0; i < n_; ++i) {
      nlohmann::json links = nlohmann::json::array();
      for (int j = 0; j < n_; ++j) {
        if (i == j) {
          links.push_back(nullptr);
          continue;
        }
        nlohmann::json cell = nlohmann::json::array();
        for (int k = 0; k < std::min(rails, Rails(i, j)); ++k) {
          cell.push_back(names ? fmt::format("r{}p{}", k, j) : RailIp(i, j, k));
        }
        links.push_back(cell);
      }
      hosts.push_back({{"ssh", fmt::format("10.99.0.{}", i + 1)},
                       {"ips", {fmt::format("10.99.0.{}", i + 1)}},
                       {"links", links}});
    }
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << hosts.dump(2);
    return path;
  }

  /// The launcher's ssh flags for this cluster.
  std::string SshArgs() const {
    return fmt::format(
        "--ssh-arg=-oIdentityFile={}/id --ssh-arg=-oStrictHostKeyChecking=no "
        "--ssh-arg=-oUserKnownHostsFile=/dev/null --ssh-arg=-oLogLevel=ERROR "
        "--ssh-arg=-oConnectTimeout=5",
        dir_);
  }

  /// Runs `args` of launch_tool in the hub namespace with `input` on its stdin.
  Sh Launch(const std::string& args, int timeout_s = 90, const std::string& input = "") const {
    std::ofstream(dir_ + "/stdin") << input;
    return Shell(fmt::format("cd {} && ip netns exec {} {}/tests/launch_tool {} <{}/stdin", dir_,
                             Hub(), BuildDir(), args, dir_),
                 timeout_s);
  }

  /// Bytes sent so far on interface `dev` of host `i`.
  long TxBytes(int i, const std::string& dev) const {
    Sh r = Shell(
        fmt::format("ip netns exec {} cat /sys/class/net/{}/statistics/tx_bytes", Ns(i), dev));
    return std::atol(r.out.c_str());
  }

  /// Limits every rail interface to `rate` (tc tbf), e.g. "200mbit".
  bool LimitRails(const std::string& rate) const {
    for (int i = 0; i < n_; ++i) {
      for (int j = 0; j < n_; ++j) {
        for (int k = 0; i != j && k < Rails(i, j); ++k) {
          if (Shell(fmt::format("ip netns exec {} tc qdisc replace dev r{}p{} root tbf rate {} "
                                "burst 256kb latency 100ms",
                                Ns(i), k, j, rate))
                  .code != 0) {
            return false;
          }
        }
      }
    }
    return true;
  }

 private:
  bool Step(const std::string& cmd) {
    Sh r = Shell(cmd);
    if (r.code != 0 && error_.empty()) error_ = cmd + ": " + r.out;
    return r.code == 0;
  }

  bool Setup(bool crossed) {
    Teardown();
    bool ok = Step("mkdir -p " + dir_ + " /run/sshd") &&
              Step(fmt::format("ssh-keygen -q -t ed25519 -N '' -f {0}/id && ssh-keygen -q -t "
                               "ed25519 -N '' -f {0}/hostkey && cp {0}/id.pub {0}/authorized_keys",
                               dir_)) &&
              Step(fmt::format("ip netns add {0} && ip -n {0} link set lo up && ip -n {0} link "
                               "add br0 type bridge && ip -n {0} addr add 10.99.0.100/24 dev br0 "
                               "&& ip -n {0} link set br0 up",
                               Hub()));
    std::ofstream(dir_ + "/sshd_config") << fmt::format(
        "HostKey {0}/hostkey\nAuthorizedKeysFile {0}/authorized_keys\n"
        "PermitRootLogin yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "LogLevel ERROR\n",
        dir_);
    for (int i = 0; ok && i < n_; ++i) {
      ok = Step(fmt::format("ip netns add {0} && ip -n {0} link set lo up && ip -n {1} link add "
                            "m{2} type veth peer name mgmt netns {0} && ip -n {1} link set m{2} "
                            "master br0 up && ip -n {0} addr add 10.99.0.{3}/24 dev mgmt && ip -n "
                            "{0} link set mgmt up",
                            Ns(i), Hub(), i, i + 1)) &&
           (!private_models_ || Step(fmt::format("mkdir -p {} {}", HostDir(i), ModelRoot()))) &&
           Step(fmt::format("ip netns exec {0} {4}/usr/sbin/sshd -f {1}/sshd_config -o "
                            "ListenAddress=10.99.0.{2} -o PidFile={1}/sshd{3}.pid{5}",
                            Ns(i), dir_, i + 1, i,
                            private_models_ ? "unshare -m --propagation private sh -c 'mount "
                                              "--bind " +
                                                  HostDir(i) + " " + ModelRoot() + " && exec "
                                            : "",
                            private_models_ ? "'" : ""));
    }
    for (int i = 0; ok && i < n_; ++i) {
      for (int j = i + 1; ok && j < n_; ++j) {
        for (int k = 0; ok && k < rails_(i, j); ++k) {
          // Host j's end of cable k; crossed: host 1 swaps its names toward host 0.
          const int jk = (crossed && i == 0 && j == 1 && rails_(i, j) >= 2) ? 1 - k : k;
          ok =
              Step(fmt::format("ip -n {0} link add r{2}p{3} type veth peer name r{4}p{5} netns "
                               "{1} && ip -n {0} addr add {6}/24 dev r{2}p{3} && ip -n {1} addr "
                               "add {7}/24 dev r{4}p{5} && ip -n {0} link set r{2}p{3} up && ip "
                               "-n {1} link set r{4}p{5} up",
                               Ns(i), Ns(j), k, j, jk, i, RailIp(i, j, k), RailIp(j, i, k)));
        }
      }
    }
    // sshd is up when it accepts a command.
    for (int i = 0; ok && i < n_; ++i) {
      ok =
          Step(fmt::format("for t in 1 2 3 4 5 6 7 8 9 10; do ip netns exec {} ssh -i {}/id -o "
                           "StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o "
                           "LogLevel=ERROR -o BatchMode=yes 10.99.0.{} true && exit 0; sleep "
                           "0.3; done; exit 1",
                           Hub(), dir_, i + 1));
    }
    return ok;
  }

  void Teardown() {
    for (int i = 0; i < n_; ++i) {
      Shell(
          fmt::format("[ -f {0}/sshd{1}.pid ] && kill $(cat {0}/sshd{1}.pid); ip netns pids {2} "
                      "2>/dev/null | xargs -r kill -9; ip netns del {2}",
                      dir_, i, Ns(i)));
    }
    Shell(fmt::format("ip netns pids {0} 2>/dev/null | xargs -r kill -9; ip netns del {0}", Hub()));
    Shell("rm -rf " + dir_ + " " + ModelRoot());
  }

  int n_;
  std::string prefix_, dir_, error_;
  RailCount rails_;
  bool private_models_ = false;
  bool ok_ = false;
};

inline bool CanRun() {
  return geteuid() == 0 && access("/usr/sbin/sshd", X_OK) == 0 && Shell("ip netns list").code == 0;
}

}  // namespace meshlm::testing
