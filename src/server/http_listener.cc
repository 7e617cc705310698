// http::Listener: the accept loop, the worker threads and each connection's requests.
#include "server/http_listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/clock.h"

namespace meshlm::server::http {

// One accepted socket and what its current request has told about the connection.
struct Connection {
  int fd = -1;
  std::string remote_addr;
  int remote_port = 0;
  int minor_version = 1;
  bool keep_alive = true;
  const Limits* limits = nullptr;

  // Writes all of `data`; false when the peer has gone or a write stalled too long.
  bool WriteAll(std::string_view data) const {
    double stalled_since = NowSeconds();
    while (!data.empty()) {
      const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        stalled_since = NowSeconds();
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
      const double left = limits->write_stall_seconds - (NowSeconds() - stalled_since);
      if (left <= 0) return false;
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, static_cast<int>(std::min(left, 0.1) * 1000) + 1);
    }
    return true;
  }
};

namespace {

constexpr size_t kReadChunk = 64 << 10;
constexpr int kPollSliceMs = 100;  // how soon a waiting connection notices Stop()

enum class ReadResult { kData, kEof, kTimeout, kStopped, kError };

// Appends what the socket has to *in, waiting until `deadline` (NowSeconds()).
ReadResult ReadMore(const Connection& c, const std::atomic<bool>& stopping, double deadline,
                    std::string* in) {
  for (;;) {
    if (stopping) return ReadResult::kStopped;
    const double left = deadline - NowSeconds();
    if (left <= 0) return ReadResult::kTimeout;
    pollfd p{c.fd, POLLIN, 0};
    const int r = ::poll(&p, 1, std::min(kPollSliceMs, static_cast<int>(left * 1000) + 1));
    if (r < 0 && errno != EINTR) return ReadResult::kError;
    if (r <= 0) continue;
    const size_t old = in->size();
    in->resize(old + kReadChunk);
    const ssize_t n = ::recv(c.fd, in->data() + old, kReadChunk, MSG_DONTWAIT);
    in->resize(old + std::max<ssize_t>(n, 0));
    if (n > 0) return ReadResult::kData;
    if (n == 0) return ReadResult::kEof;
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return ReadResult::kError;
  }
}

}  // namespace

std::string_view Reason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 417:
      return "Expectation Failed";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

std::string Responder::HeadText(int status, std::string_view content_type, const Headers& extra,
                                std::string_view framing) {
  if (!c_.keep_alive || body_unread_) close_ = true;
  std::string h = fmt::format("HTTP/1.{} {} {}\r\n", c_.minor_version, status, Reason(status));
  if (!content_type.empty()) h += fmt::format("Content-Type: {}\r\n", content_type);
  h += framing;
  for (const auto& [k, v] : extra) h += fmt::format("{}: {}\r\n", k, v);
  for (const auto& [k, v] : every_answer_) h += fmt::format("{}: {}\r\n", k, v);
  if (close_) {
    h += "Connection: close\r\n";
  } else if (c_.minor_version == 0) {
    h += "Connection: keep-alive\r\n";
  }
  h += "\r\n";
  return h;
}

void Responder::AddToEveryAnswer(const Headers& headers) {
  every_answer_.insert(every_answer_.end(), headers.begin(), headers.end());
}

void Responder::Send(int status, std::string_view content_type, std::string_view body,
                     const Headers& extra) {
  if (state_ != State::kNone) return;
  state_ = State::kDone;
  // A 204 has no body, and RFC 9110 (8.6) forbids it a Content-Length.
  std::string out =
      HeadText(status, content_type, extra,
               status == 204 ? std::string() : fmt::format("Content-Length: {}\r\n", body.size()));
  if (status == 204) body = {};
  out.append(body);
  if (!c_.WriteAll(out)) failed_ = true;
}

bool Responder::BeginStream(int status, std::string_view content_type, const Headers& extra) {
  if (state_ != State::kNone) return false;
  state_ = State::kStreaming;
  // An HTTP/1.0 client knows no chunks: its stream ends when the connection does.
  if (c_.minor_version == 0) close_ = true;
  const std::string head = HeadText(status, content_type, extra,
                                    c_.minor_version == 0 ? "" : "Transfer-Encoding: chunked\r\n");
  if (!c_.WriteAll(head)) failed_ = true;
  return !failed_;
}

bool Responder::Write(std::string_view data) {
  if (state_ != State::kStreaming || failed_) return false;
  if (data.empty()) return true;
  const bool ok = c_.minor_version == 0
                      ? c_.WriteAll(data)
                      : c_.WriteAll(fmt::format("{:x}\r\n{}\r\n", data.size(), data));
  if (!ok) failed_ = true;
  return ok;
}

void Responder::EndStream() {
  if (state_ != State::kStreaming) return;
  state_ = State::kDone;
  if (!failed_ && c_.minor_version != 0 && !c_.WriteAll("0\r\n\r\n")) failed_ = true;
}

bool Responder::ClientGone() const {
  if (failed_) return true;
  pollfd p{c_.fd, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

Listener::Listener(Limits limits, Hooks hooks) : limits_(limits), hooks_(std::move(hooks)) {}

Listener::~Listener() {
  Stop();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  for (int fd : wake_) {
    if (fd >= 0) ::close(fd);
  }
}

Status Listener::Bind(const std::string& host, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
    return Error("[server] --host '{}' is not an IPv4 address", host);
  }
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return Error("[server] socket: {}", std::strerror(errno));
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::listen(listen_fd_, limits_.backlog) != 0) {
    const int e = errno;
    ::close(listen_fd_);
    listen_fd_ = -1;
    if (port == 0)
      return Error("[server] cannot listen on {} (any port): {}", host, std::strerror(e));
    return Error(
        "[server] cannot listen on {}:{}: {}; the port is taken or the address is not this "
        "host's; pick another with --port/--host",
        host, port, std::strerror(e));
  }
  socklen_t len = sizeof(a);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    return Error("[server] pipe: {}", std::strerror(errno));
  }
  return OkStatus();
}

void Listener::Stop() {
  if (stopping_.exchange(true)) return;
  if (wake_[1] >= 0) {
    const char c = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_[1], &c, 1);
  }
  cv_.notify_all();
}

void Listener::Reject(int fd, int status, const std::string& message) {
  Connection c;
  c.fd = fd;
  c.limits = &limits_;
  c.keep_alive = false;
  Responder r(c);
  Headers extra;
  if (status == 503) extra.emplace_back("Retry-After", "1");
  r.Send(status, "application/json", hooks_.error_body(status, message), extra);
  ::close(fd);
}

void Listener::Serve() {
  if (listen_fd_ < 0) return;
  for (size_t i = 0; i < std::max<size_t>(limits_.threads, 1); ++i) {
    workers_.emplace_back([this] { Worker(); });
  }
  while (!stopping_) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(p, 2, 1000) <= 0 || stopping_) continue;
    if ((p[0].revents & POLLIN) == 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      // Out of descriptors: wait a moment instead of spinning on the same error.
      if (errno == EMFILE || errno == ENFILE) ::poll(nullptr, 0, 50);
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::unique_lock lock(mu_);
    if (pending_.size() >= limits_.max_pending) {
      lock.unlock();
      Reject(fd, 503, "the server has too many connections waiting: retry later");
      continue;
    }
    pending_.push_back(fd);
    lock.unlock();
    cv_.notify_one();
  }
  ::close(listen_fd_);
  listen_fd_ = -1;
  cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  for (int fd : pending_) ::close(fd);
  pending_.clear();
}

void Listener::Worker() {
  for (;;) {
    int fd = -1;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
      if (stopping_) return;
      fd = pending_.front();
      pending_.pop_front();
    }
    Connection c;
    c.fd = fd;
    c.limits = &limits_;
    sockaddr_in peer{};
    socklen_t len = sizeof(peer);
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
      char ip[INET_ADDRSTRLEN] = {};
      inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof(ip));
      c.remote_addr = ip;
      c.remote_port = ntohs(peer.sin_port);
    }
    ServeConnection(c);
    ::close(fd);
  }
}

void Listener::ServeConnection(Connection& c) {
  std::string in;  // bytes read and not yet used: the next request(s), pipelined or not
  auto fail = [&](int status, const std::string& message) {
    Responder r(c);
    r.CloseAfter();
    r.Send(status, "application/json", hooks_.error_body(status, message));
  };
  for (;;) {
    if (in.empty()) {
      // Between requests: wait for the first byte, as long as an idle connection may.
      if (ReadMore(c, stopping_, NowSeconds() + limits_.idle_seconds, &in) != ReadResult::kData) {
        return;
      }
    }
    const double head_deadline = NowSeconds() + limits_.head_seconds;
    Request req;
    Head head;
    size_t used = 0;
    ParseError err;
    for (;;) {
      const Progress p = ParseHead(in, limits_.max_head_bytes, &req, &head, &used, &err);
      if (p == Progress::kBad) return fail(err.status, err.message);
      if (p == Progress::kDone) break;
      const ReadResult r = ReadMore(c, stopping_, head_deadline, &in);
      if (r == ReadResult::kTimeout) {
        return fail(
            408, fmt::format("the request head did not arrive within {} s", limits_.head_seconds));
      }
      if (r != ReadResult::kData) return;
    }
    in.erase(0, used);
    req.remote_addr = c.remote_addr;
    req.remote_port = c.remote_port;
    c.minor_version = req.minor_version;
    c.keep_alive = head.keep_alive;

    Responder r(c);
    // From here on, an answer the connection code gives goes through the request's own
    // responder, so that it carries the headers the hooks asked for.
    auto fail_request = [&](int status, const std::string& message) {
      r.CloseAfter();
      r.Send(status, "application/json", hooks_.error_body(status, message));
    };
    const bool has_body = head.body != Head::Body::kNone;
    // Answered from the head, an unread body would be taken for the next request.
    r.body_unread_ = has_body;
    if (!hooks_.on_head(req, head, r)) {
      if (!r.answered()) r.Send(500, "application/json", hooks_.error_body(500, "no answer"));
      if (r.closing() || r.failed_) return;
      continue;
    }
    if (head.body == Head::Body::kLength && head.content_length > limits_.max_body_bytes) {
      return fail_request(413,
                          fmt::format("the request body is {} bytes, over the limit of {} bytes",
                                      head.content_length, limits_.max_body_bytes));
    }
    if (has_body && head.expect_continue && in.empty()) {
      if (!c.WriteAll(fmt::format("HTTP/1.{} 100 Continue\r\n\r\n", c.minor_version))) return;
    }
    r.body_unread_ = false;
    const double body_start = NowSeconds();
    auto body_deadline = [&](size_t got) {
      return body_start + limits_.body_grace_seconds +
             static_cast<double>(got) / limits_.body_min_rate;
    };
    const std::string too_slow = "the request body arrived too slowly";
    if (head.body == Head::Body::kLength) {
      const size_t want = static_cast<size_t>(head.content_length);
      while (in.size() < want) {
        const ReadResult rr = ReadMore(c, stopping_, body_deadline(in.size()), &in);
        if (rr == ReadResult::kTimeout) return fail_request(408, too_slow);
        if (rr != ReadResult::kData) return;
      }
      req.body = in.substr(0, want);
      in.erase(0, want);
    } else if (head.body == Head::Body::kChunked) {
      ChunkedDecoder decoder(limits_.max_body_bytes);
      for (;;) {
        size_t took = 0;
        const Progress p = decoder.Feed(in, &req.body, &took, &err);
        if (p == Progress::kBad) {
          if (err.status == 413) {
            err.message = fmt::format("the request body is over the limit of {} bytes",
                                      limits_.max_body_bytes);
          }
          return fail_request(err.status, err.message);
        }
        in.erase(0, took);
        if (p == Progress::kDone) break;
        const ReadResult rr = ReadMore(c, stopping_, body_deadline(req.body.size()), &in);
        if (rr == ReadResult::kTimeout) return fail_request(408, too_slow);
        if (rr != ReadResult::kData) return;
      }
    }
    hooks_.on_request(req, r);
    if (!r.answered()) r.Send(500, "application/json", hooks_.error_body(500, "no answer"));
    if (r.state_ == Responder::State::kStreaming) r.EndStream();
    if (r.closing() || r.failed_ || stopping_) return;
    // A large body's buffer goes back to the allocator before the connection waits again.
    if (in.capacity() > (1 << 20)) in.shrink_to_fit();
  }
}

}  // namespace meshlm::server::http
