// HttpServer: routes, API key, SSE streaming and error answers.
#include "server/http_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fmt/format.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <random>

#include "base/clock.h"

namespace meshlm::server {
namespace {

constexpr int kPollMs = 50;
// How often a non-streaming request checks that its client is still there: about one
// decode step of a small model.
constexpr int kGoneCheckMs = 20;
// A streaming client idle this long gets an SSE comment, which also reveals a closed
// connection while a long prompt is still being processed.
constexpr double kKeepAliveSeconds = 1.0;

void SendError(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(ErrorBody(e), "application/json");
}

// The descriptor of the connection from remote_addr:remote_port to local_port, found among
// this process's sockets; -1 when none matches. (The HTTP library does not hand handlers
// their socket; a non-streaming request needs it to notice a client that has gone.)
int FindConnection(const std::string& remote_addr, int remote_port, int local_port) {
  in_addr want{};
  if (inet_pton(AF_INET, remote_addr.c_str(), &want) != 1) return -1;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int found = -1;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == dirfd(d)) continue;
    struct stat st;
    if (fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_in peer{}, self{};
    socklen_t pl = sizeof(peer), sl = sizeof(self);
    if (getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &pl) != 0 ||
        getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&self), &sl) != 0 ||
        peer.sin_family != AF_INET) {
      continue;
    }
    if (peer.sin_addr.s_addr == want.s_addr && ntohs(peer.sin_port) == remote_port &&
        ntohs(self.sin_port) == local_port) {
      found = static_cast<int>(fd);
      break;
    }
  }
  closedir(d);
  return found;
}

// True when the client has closed (or reset) its end of the connection.
bool ClientGone(int fd) {
  if (fd < 0) return false;
  pollfd p{fd, POLLRDHUP, 0};
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

std::string NewId(const char* prefix) {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t salt = std::random_device{}();
  return fmt::format("{}{:016x}{:04x}", prefix, salt, counter++ & 0xffff);
}

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Streaming state shared by the content provider's calls.
struct StreamState {
  std::shared_ptr<engine::Channel> channel;
  ResponseMeta meta;
  bool include_usage = false;
  bool sent_role = false;
  bool finished = false;
  double last_write = 0;
};

}  // namespace

struct HttpServer::Impl {
  ServerOptions options;
  engine::Scheduler& scheduler;
  Metrics& metrics;
  PromptContext prompt;
  httplib::Server http;
  std::atomic<int> active_streams{0};

  Impl(ServerOptions o, engine::Scheduler& s, Metrics& m, PromptContext p)
      : options(std::move(o)), scheduler(s), metrics(m), prompt(p) {}

  bool Authorized(const httplib::Request& req, httplib::Response& res) {
    if (options.api_key.empty()) return true;
    std::string given = req.get_header_value("Authorization");
    const std::string bearer = "Bearer ";
    if (given.compare(0, bearer.size(), bearer) == 0)
      given = given.substr(bearer.size());
    else
      given.clear();
    if (!given.empty() && ConstantTimeEquals(given, options.api_key)) return true;
    ApiError e;
    e.status = 401;
    e.type = "invalid_request_error";
    e.code = "invalid_api_key";
    e.message =
        given.empty() ? "missing API key: send 'Authorization: Bearer <key>'" : "incorrect API key";
    SendError(res, e);
    return false;
  }

  void Models(httplib::Response& res) {
    nlohmann::json model = {
        {"id", options.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "meshlm"}};
    nlohmann::json j = {{"object", "list"}, {"data", nlohmann::json::array({model})}};
    res.set_content(j.dump(), "application/json");
  }

  // GET /v1/models/{id}: this server's model, or 404 for any other id.
  void Model(const std::string& id, httplib::Response& res) {
    if (id != options.model_name) {
      ApiError e;
      e.status = 404;
      e.code = "model_not_found";
      e.param = "model";
      e.message = fmt::format("the model '{}' does not exist; this server serves '{}'", id,
                              options.model_name);
      SendError(res, e);
      return;
    }
    nlohmann::json model = {
        {"id", options.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "meshlm"}};
    res.set_content(model.dump(), "application/json");
  }

  // The method a known path takes ("" for an unknown path).
  static std::string_view AllowedMethod(const std::string& path) {
    if (path == "/health" || path == "/metrics" || path == "/v1/models" ||
        path.starts_with("/v1/models/")) {
      return "GET";
    }
    if (path == "/v1/chat/completions" || path == "/v1/completions") return "POST";
    return "";
  }

  void Health(httplib::Response& res) {
    const bool ready = !scheduler.broken();
    nlohmann::json j = {{"status", ready ? "ok" : "error"},
                        {"ready", ready},
                        {"ranks", options.ranks},
                        {"model", options.model_name}};
    if (!ready) j["error"] = scheduler.broken_reason();
    res.status = ready ? 200 : 503;
    res.set_content(j.dump(), "application/json");
  }

  void Generate(const httplib::Request& req, httplib::Response& res, bool chat) {
    ++metrics.requests_total;
    ApiRequest api;
    ApiError err;
    auto fail = [&](const ApiError& e) {
      ++metrics.requests_failed;
      SendError(res, e);
    };
    if (!ParseRequest(req.body, chat, prompt, &api, &err)) return fail(err);
    if (!api.model.empty() && api.model != options.model_name) {
      err.status = 404;
      err.code = "model_not_found";
      err.param = "model";
      err.message = fmt::format("the model '{}' does not exist; this server serves '{}'", api.model,
                                options.model_name);
      return fail(err);
    }
    if (Status s = scheduler.Check(api.gen); !s.ok()) {
      err.message = s.message();
      err.code = api.gen.prompt.size() >= scheduler.max_context() ? "context_length_exceeded"
                                                                  : "invalid_value";
      return fail(err);
    }
    engine::Scheduler::SubmitError why;
    std::shared_ptr<engine::Channel> channel = scheduler.Submit(api.gen, &why);
    if (!channel) {
      if (why == engine::Scheduler::SubmitError::kQueueFull) {
        ++metrics.requests_rejected;
        err.status = 429;
        err.type = "rate_limit_error";
        err.code = "rate_limit_exceeded";
        err.message = "the server is at capacity: retry later";
      } else {
        err.status = 503;
        err.type = "server_error";
        err.code = "unavailable";
        err.message = why == engine::Scheduler::SubmitError::kBroken
                          ? "the cluster failed: " + scheduler.broken_reason()
                          : "the server is shutting down";
      }
      return fail(err);
    }
    ResponseMeta meta{NewId(chat ? "chatcmpl-" : "cmpl-"), options.model_name, UnixNow(), chat};
    if (api.stream) return Stream(res, channel, meta, api.include_usage);
    // A client that goes away stops its request within kGoneCheckMs (the scheduler drops
    // a cancelled sequence at its next step).
    const int conn = FindConnection(req.remote_addr, req.remote_port, req.local_port);
    std::string text;
    double checked = NowSeconds();
    for (;;) {
      engine::Event e;
      const bool got = channel->Pop(&e, kGoneCheckMs);
      if (NowSeconds() - checked >= kGoneCheckMs / 1e3) {
        checked = NowSeconds();
        if (ClientGone(conn)) {
          channel->Cancel();
          ++metrics.requests_cancelled;
          return;
        }
      }
      if (!got) continue;
      if (e.kind == engine::Event::Kind::kText) {
        text += e.text;
      } else if (e.kind == engine::Event::Kind::kDone) {
        res.set_content(
            FullResponse(meta, text, e.finish_reason, e.prompt_tokens, e.completion_tokens),
            "application/json");
        return;
      } else {
        err.status = 503;
        err.type = "server_error";
        err.code = "cluster_error";
        err.message = e.text;
        return SendError(res, err);  // the scheduler counted the failure
      }
    }
  }

  void Stream(httplib::Response& res, std::shared_ptr<engine::Channel> channel, ResponseMeta meta,
              bool include_usage) {
    auto st = std::make_shared<StreamState>();
    st->channel = std::move(channel);
    st->meta = std::move(meta);
    st->include_usage = include_usage;
    st->last_write = NowSeconds();
    ++active_streams;
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [st](size_t, httplib::DataSink& sink) {
          auto send = [&](const std::string& payload) {
            st->last_write = NowSeconds();
            const std::string frame = "data: " + payload + "\n\n";
            return sink.write(frame.data(), frame.size());
          };
          auto gone = [&] {
            st->channel->Cancel();
            return false;
          };
          if (st->finished) {
            sink.done();
            return true;
          }
          if (st->meta.chat && !st->sent_role) {
            st->sent_role = true;
            if (!send(StreamChunk(st->meta, "", true, ""))) return gone();
          }
          engine::Event e;
          if (!st->channel->Pop(&e, kPollMs)) {
            if (NowSeconds() - st->last_write > kKeepAliveSeconds) {
              st->last_write = NowSeconds();
              if (!sink.write(": keep-alive\n\n", 14)) return gone();
            }
            return true;
          }
          if (e.kind == engine::Event::Kind::kText) {
            if (!send(StreamChunk(st->meta, e.text, false, ""))) return gone();
            return true;
          }
          st->finished = true;
          if (e.kind == engine::Event::Kind::kError) {
            ApiError err;
            err.status = 503;
            err.type = "server_error";
            err.code = "cluster_error";
            err.message = e.text;
            send(ErrorBody(err));
            sink.done();
            return true;
          }
          bool ok = send(StreamChunk(st->meta, "", false, e.finish_reason));
          if (ok && st->include_usage) {
            ok = send(UsageChunk(st->meta, e.prompt_tokens, e.completion_tokens));
          }
          if (ok) ok = send("[DONE]");
          if (!ok) return gone();
          sink.done();
          return true;
        },
        [this, st](bool success) {
          if (!success || !st->finished) {
            st->channel->Cancel();
            ++metrics.requests_cancelled;
          }
          --active_streams;
        });
  }

  void Routes() {
    http.new_task_queue = [n = options.http_threads] { return new httplib::ThreadPool(n); };
    http.set_keep_alive_max_count(1000);
    // Stop waits for idle keep-alive connections to time out: keep that short, so a
    // stopping server (and the launcher's grace period) is not held up.
    http.set_keep_alive_timeout(1);
    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) { Health(res); });
    http.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
      if (!Authorized(req, res)) return;
      res.set_content(metrics.Render(), "text/plain; version=0.0.4");
    });
    http.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
      if (Authorized(req, res)) Models(res);
    });
    http.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      if (Authorized(req, res)) Model(req.matches[1], res);
    });
    http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      if (Authorized(req, res)) Generate(req, res, true);
    });
    http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      if (Authorized(req, res)) Generate(req, res, false);
    });
    http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      ApiError e;
      // A known path asked with another method is 405 with the method it takes.
      const std::string_view allow = AllowedMethod(req.path);
      if (res.status == 404 && !allow.empty()) {
        res.status = 405;
        res.set_header("Allow", std::string(allow));
      }
      e.status = res.status;
      if (res.status == 404) {
        e.code = "not_found";
        e.message = fmt::format("no route {} {}", req.method, req.path);
      } else if (res.status == 405) {
        e.code = "method_not_allowed";
        e.message = fmt::format("{} takes {}, not {}", req.path, allow, req.method);
      } else {
        e.message = fmt::format("HTTP {}", res.status);
      }
      SendError(res, e);
    });
    http.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
          ApiError e;
          e.status = 500;
          e.type = "server_error";
          try {
            std::rethrow_exception(ep);
          } catch (const std::exception& ex) {
            e.message = ex.what();
          } catch (...) {
            e.message = "unknown error";
          }
          SendError(res, e);
        });
  }
};

HttpServer::HttpServer(ServerOptions options, engine::Scheduler& scheduler, Metrics& metrics,
                       PromptContext prompt)
    : impl_(std::make_unique<Impl>(std::move(options), scheduler, metrics, prompt)) {
  impl_->Routes();
}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Bind() {
  const auto& o = impl_->options;
  if (o.port == 0) {
    bound_port_ = impl_->http.bind_to_any_port(o.host);
    if (bound_port_ <= 0) return Error("[server] cannot listen on {} (any port)", o.host);
    return OkStatus();
  }
  if (!impl_->http.bind_to_port(o.host, o.port)) {
    return Error(
        "[server] cannot listen on {}:{}: the port is taken or the address is not "
        "this host's; pick another with --port/--host",
        o.host, o.port);
  }
  bound_port_ = o.port;
  return OkStatus();
}

void HttpServer::Serve() { impl_->http.listen_after_bind(); }

void HttpServer::Stop() { impl_->http.stop(); }

int HttpServer::active_streams() const { return impl_->active_streams; }

}  // namespace meshlm::server
