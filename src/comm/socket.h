// Thin POSIX socket helpers with deadlines: listen, connect, accept, exact reads/writes.
//
// Deadlines are absolute NowSeconds() values. Every wait is a poll() with a timeout, so a
// silent peer costs no CPU. Errors name `who` (the peer, as the caller describes it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "base/status.h"

namespace meshlm::comm {

/// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset();

 private:
  int fd_ = -1;
};

struct HostPort {
  std::string host;
  int port = 0;
};

/// "10.0.0.1:5000", "[::1]:5000" or "name:5000".
Result<HostPort> ParseHostPort(const std::string& s, const std::string& what);
/// Resolves a host name or dotted quad to a dotted quad (IPv4).
Result<std::string> ResolveIpv4(const std::string& host);
/// The IPv4 address of network interface `name` on this machine.
Result<std::string> InterfaceIpv4(const std::string& name);
/// `cell` as an address: a dotted quad stays, an interface name is looked up.
Result<std::string> AddressOfCell(const std::string& cell);

/// Listens on ip:port (ip "" or "0.0.0.0" = any; port 0 = ephemeral), non-blocking.
Result<Fd> ListenTcp(const std::string& ip, int port);
int LocalPort(int fd);
std::string LocalIp(int fd);
std::string PeerIp(int fd);
std::string PeerAddress(int fd);  // "ip:port"

/// Connects to ip:port, retrying refused connections until `deadline` (the listener may
/// not be up yet). The socket is non-blocking, TCP_NODELAY, with keepalive.
Result<Fd> ConnectTcp(const std::string& ip, int port, double deadline, const std::string& who);
/// Waits for one connection on `listen_fd` until `deadline`; configures it like ConnectTcp.
Result<Fd> AcceptTcp(int listen_fd, double deadline, const std::string& what);
/// Applies the data-path socket options (non-blocking, no Nagle, keepalive, buffers).
void ConfigureSocket(int fd);

/// Writes or reads exactly `n` bytes on a non-blocking socket before `deadline`.
Status WriteAll(int fd, const void* data, size_t n, double deadline, const std::string& who);
Status ReadAll(int fd, void* data, size_t n, double deadline, const std::string& who);

/// Length-prefixed (u32 little endian) message helpers for bootstrap; reads refuse
/// lengths above `max_bytes` before allocating.
Status WriteMessage(int fd, const std::string& body, double deadline, const std::string& who);
Result<std::string> ReadMessage(int fd, size_t max_bytes, double deadline, const std::string& who);

}  // namespace meshlm::comm
