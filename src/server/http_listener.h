// http::Listener: meshlm's HTTP/1.1 connections: accept, read with deadlines, hand each
// request to the server's hooks, write answers (whole or chunked) in request order.
//
// Goals: no client can hold a thread for long (deadlines on the head, on the body by a
// minimum rate, on idle keep-alive and on stalled writes); the server decides on a
// request from its head (route, API key, size) before any body byte is read; pipelined
// requests are answered in order; a burst of connections waits in the kernel's backlog
// and a bounded queue, and past that gets a 503. Non-goals: TLS, HTTP/2, websockets.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "base/status.h"
#include "server/http_parser.h"

namespace meshlm::server::http {

struct Limits {
  size_t max_head_bytes = 64 << 10;
  size_t max_body_bytes = 32 << 20;
  double head_seconds = 10;  // from a request's first byte to its blank line
  /// A body may take body_grace_seconds plus one second per body_min_rate bytes, so a
  /// client trickling bytes is cut off while a large prompt on a slow link is not.
  double body_grace_seconds = 10;
  double body_min_rate = 64 << 10;
  double idle_seconds = 5;          // a kept-alive connection waiting for its next request
  double write_stall_seconds = 30;  // a write that makes no progress this long ends it
  size_t threads = 64;              // connections served at once
  size_t max_pending = 256;         // accepted connections waiting for a thread
  int backlog = 1024;
};

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Connection;

/// How a hook answers one request. Used from the hook's thread only.
class Responder {
 public:
  explicit Responder(Connection& c) : c_(c) {}
  /// A whole answer with Content-Length.
  void Send(int status, std::string_view content_type, std::string_view body,
            const Headers& extra = {});
  /// Starts a streamed answer (chunked; to an HTTP/1.0 client, until the connection
  /// closes). False when the client has gone.
  bool BeginStream(int status, std::string_view content_type, const Headers& extra = {});
  /// One piece of a streamed answer; false when the client has gone.
  bool Write(std::string_view data);
  void EndStream();
  /// True when the client has closed or reset its end.
  bool ClientGone() const;
  /// Closes the connection after this answer.
  void CloseAfter() { close_ = true; }
  /// Headers that every answer to this request carries, whoever gives it (the hooks, or
  /// the connection code refusing the body): CORS headers, which a browser needs on an
  /// error too before it shows the page the error.
  void AddToEveryAnswer(const Headers& headers);

  bool answered() const { return state_ != State::kNone; }
  bool closing() const { return close_; }

 private:
  enum class State { kNone, kStreaming, kDone };
  std::string HeadText(int status, std::string_view content_type, const Headers& extra,
                       std::string_view framing);
  Connection& c_;
  Headers every_answer_;
  State state_ = State::kNone;
  bool close_ = false;
  bool failed_ = false;
  bool body_unread_ = false;  // answering from the head: the connection cannot go on
  friend class Listener;
};

struct Hooks {
  /// After a request's head: answer at once and return false (a wrong route, a missing
  /// key), or return true to have the body read.
  std::function<bool(const Request&, const Head&, Responder&)> on_head;
  /// After the body; must answer.
  std::function<void(Request&, Responder&)> on_request;
  /// The JSON body of answers the connection code gives itself (malformed requests,
  /// deadlines, bodies over the limit, overload).
  std::function<std::string(int status, const std::string& message)> error_body;
};

class Listener {
 public:
  Listener(Limits limits, Hooks hooks);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  /// Binds host:port (port 0 picks one; see port()). Errors name the address.
  Status Bind(const std::string& host, int port);
  int port() const { return port_; }
  /// Serves until Stop(): accepts on the calling thread. Connections still open when it
  /// stops are closed once their current request is answered.
  void Serve();
  /// Thread-safe.
  void Stop();
  const Limits& limits() const { return limits_; }
  bool stopping() const { return stopping_; }

 private:
  void Worker();
  void ServeConnection(Connection& c);
  void Reject(int fd, int status, const std::string& message);

  Limits limits_;
  Hooks hooks_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int> pending_;
  std::vector<std::thread> workers_;
};

/// The reason phrase of an HTTP status ("Not Found").
std::string_view Reason(int status);

}  // namespace meshlm::server::http
