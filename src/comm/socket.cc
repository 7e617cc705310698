// POSIX socket helpers with poll()-based deadlines.
#include "comm/socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/clock.h"

namespace meshlm::comm {
namespace {

int PollMs(double deadline) {
  const double left = deadline - NowSeconds();
  if (left <= 0) return 0;
  return static_cast<int>(std::min(std::ceil(left * 1000.0), 3600.0 * 1000));
}

std::string Errno() { return std::strerror(errno); }

std::string SockaddrIp(const sockaddr_in& a) {
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a.sin_addr, buf, sizeof(buf));
  return buf;
}

Result<sockaddr_in> MakeAddr(const std::string& ip, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (ip.empty()) {
    a.sin_addr.s_addr = htonl(INADDR_ANY);
  } else if (inet_pton(AF_INET, ip.c_str(), &a.sin_addr) != 1) {
    return Error("[tcp] '{}' is not an IPv4 address", ip);
  }
  return a;
}

// Waits until `fd` reports `events`; fails at the deadline.
Status WaitFor(int fd, short events, double deadline, const std::string& who, const char* doing) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int ms = PollMs(deadline);
    if (ms <= 0) return Error("[tcp] timed out {} {}", doing, who);
    const int rc = poll(&p, 1, ms);
    if (rc > 0) return OkStatus();
    if (rc < 0 && errno != EINTR) return Error("[tcp] poll while {} {}: {}", doing, who, Errno());
  }
}

}  // namespace

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    Reset();
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}
Fd::~Fd() { Reset(); }
void Fd::Reset() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

Result<HostPort> ParseHostPort(const std::string& s, const std::string& what) {
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) {
    return Error("[tcp] {} '{}' is not host:port", what, s);
  }
  HostPort hp;
  hp.host = s.substr(0, colon);
  if (hp.host.size() > 2 && hp.host.front() == '[' && hp.host.back() == ']') {
    hp.host = hp.host.substr(1, hp.host.size() - 2);
  }
  const std::string port = s.substr(colon + 1);
  if (port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit)) {
    return Error("[tcp] {} '{}': port '{}' is not a number", what, s, port);
  }
  hp.port = std::stoi(port);
  if (hp.port < 1 || hp.port > 65535) {
    return Error("[tcp] {} '{}': port {} is outside 1..65535", what, s, hp.port);
  }
  return hp;
}

Result<std::string> ResolveIpv4(const std::string& host) {
  in_addr a{};
  if (inet_pton(AF_INET, host.c_str(), &a) == 1) return host;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    return Error("[tcp] cannot resolve host '{}': {}", host, gai_strerror(rc));
  }
  std::string ip = SockaddrIp(*reinterpret_cast<sockaddr_in*>(res->ai_addr));
  freeaddrinfo(res);
  return ip;
}

Result<std::string> InterfaceIpv4(const std::string& name) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return Error("[tcp] getifaddrs: {}", Errno());
  std::string ip;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && name == i->ifa_name) {
      ip = SockaddrIp(*reinterpret_cast<sockaddr_in*>(i->ifa_addr));
      break;
    }
  }
  freeifaddrs(list);
  if (ip.empty()) return Error("[tcp] interface '{}' has no IPv4 address on this host", name);
  return ip;
}

Result<std::string> AddressOfCell(const std::string& cell) {
  in_addr a{};
  if (inet_pton(AF_INET, cell.c_str(), &a) == 1) return cell;
  return InterfaceIpv4(cell);
}

Result<Fd> ListenTcp(const std::string& ip, int port) {
  MESHLM_ASSIGN_OR_RETURN(sockaddr_in addr, MakeAddr(ip == "0.0.0.0" ? "" : ip, port));
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Error("[tcp] socket: {}", Errno());
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Error("[tcp] cannot listen on {}:{}: {}", ip.empty() ? "0.0.0.0" : ip, port, Errno());
  }
  if (listen(fd.get(), 128) != 0) return Error("[tcp] listen on {}:{}: {}", ip, port, Errno());
  return fd;
}

int LocalPort(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

std::string LocalIp(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return "?";
  return SockaddrIp(a);
}

std::string PeerIp(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return "?";
  return SockaddrIp(a);
}

std::string PeerAddress(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return "?";
  return fmt::format("{}:{}", SockaddrIp(a), ntohs(a.sin_port));
}

void ConfigureSocket(int fd) {
  const int flags = fcntl(fd, F_GETFL, 0);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  // A host that vanished without closing its sockets (power, cable) is noticed in about
  // 2 s: idle connections probe after 1 s, and data or probes left unacknowledged for
  // 2 s end the connection. A stopped process still acknowledges (its kernel runs), so
  // this never fires for a slow peer; zero-window probes are acknowledged too.
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  int idle = 1, intvl = 1, cnt = 2;
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
  unsigned int user_timeout_ms = 2000;
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof(user_timeout_ms));
}

Result<Fd> ConnectTcp(const std::string& ip, int port, double deadline, const std::string& who) {
  MESHLM_ASSIGN_OR_RETURN(sockaddr_in addr, MakeAddr(ip, port));
  std::string last = "no attempt";
  double backoff = 0.01;
  while (NowSeconds() < deadline) {
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return Error("[tcp] socket: {}", Errno());
    int rc = connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd.get(), POLLOUT, 0};
      rc = poll(&p, 1, std::max(1, PollMs(deadline)));
      if (rc > 0) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        errno = err;
        rc = err == 0 ? 0 : -1;
      } else {
        errno = ETIMEDOUT;
        rc = -1;
      }
    }
    if (rc == 0) {
      ConfigureSocket(fd.get());
      return fd;
    }
    last = Errno();
    if (errno != ECONNREFUSED && errno != ETIMEDOUT && errno != EHOSTUNREACH &&
        errno != ENETUNREACH && errno != ECONNRESET) {
      break;
    }
    usleep(static_cast<useconds_t>(backoff * 1e6));
    backoff = std::min(backoff * 2, 0.2);
  }
  return Error("[tcp] cannot connect to {} at {}:{}: {}", who, ip, port, last);
}

Result<Fd> AcceptTcp(int listen_fd, double deadline, const std::string& what) {
  for (;;) {
    MESHLM_RETURN_IF_ERROR(WaitFor(listen_fd, POLLIN, deadline, what, "waiting for"));
    Fd fd(accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (fd.valid()) {
      ConfigureSocket(fd.get());
      return fd;
    }
    if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
      return Error("[tcp] accept while waiting for {}: {}", what, Errno());
    }
  }
}

Status WriteAll(int fd, const void* data, size_t n, double deadline, const std::string& who) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t k = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k > 0) {
      p += k;
      n -= static_cast<size_t>(k);
    } else if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
      MESHLM_RETURN_IF_ERROR(WaitFor(fd, POLLOUT, deadline, who, "sending to"));
    } else {
      return Error("[tcp] sending to {}: {}", who, Errno());
    }
  }
  return OkStatus();
}

Status ReadAll(int fd, void* data, size_t n, double deadline, const std::string& who) {
  uint8_t* p = static_cast<uint8_t*>(data);
  while (n > 0) {
    const ssize_t k = recv(fd, p, n, MSG_DONTWAIT);
    if (k > 0) {
      p += k;
      n -= static_cast<size_t>(k);
    } else if (k == 0) {
      return Error("[tcp] {} closed the connection", who);
    } else if (errno == EAGAIN || errno == EINTR) {
      MESHLM_RETURN_IF_ERROR(WaitFor(fd, POLLIN, deadline, who, "receiving from"));
    } else {
      return Error("[tcp] receiving from {}: {}", who, Errno());
    }
  }
  return OkStatus();
}

Status WriteMessage(int fd, const std::string& body, double deadline, const std::string& who) {
  uint8_t len[4];
  const uint32_t n = static_cast<uint32_t>(body.size());
  for (int i = 0; i < 4; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  MESHLM_RETURN_IF_ERROR(WriteAll(fd, len, 4, deadline, who));
  return WriteAll(fd, body.data(), body.size(), deadline, who);
}

Result<std::string> ReadMessage(int fd, size_t max_bytes, double deadline, const std::string& who) {
  uint8_t len[4];
  MESHLM_RETURN_IF_ERROR(ReadAll(fd, len, 4, deadline, who));
  const uint32_t n =
      len[0] | (len[1] << 8) | (len[2] << 16) | (static_cast<uint32_t>(len[3]) << 24);
  if (n > max_bytes) {
    return Error("[tcp] {} announced a {} B message; at most {} B allowed", who, n, max_bytes);
  }
  std::string body(n, '\0');
  MESHLM_RETURN_IF_ERROR(ReadAll(fd, body.data(), n, deadline, who));
  return body;
}

}  // namespace meshlm::comm
