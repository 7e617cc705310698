// HttpServer: routes, API key, SSE streaming and error answers, over http::Listener.
#include "server/http_server.h"

#include <fmt/format.h>
#include <malloc.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <random>

#include "base/clock.h"
#include "server/http_listener.h"
#include "server/tokenize_api.h"
#include "server/ui_assets.h"

namespace meshlm::server {
namespace {

bool IsBlankText(const std::string& s) {
  return s.find_first_not_of(" \t\r\n") == std::string::npos;
}

constexpr int kPollMs = 50;
// How often a non-streaming request checks that its client is still there: about one
// decode step of a small model.
constexpr int kGoneCheckMs = 20;
// A streaming client idle this long gets an SSE comment, which also reveals a closed
// connection while a long prompt is still being processed.
constexpr double kKeepAliveSeconds = 1.0;
// A body this large is released to the system once answered (the allocator would keep it).
constexpr size_t kTrimAfterBytes = 4 << 20;

constexpr const char* kJson = "application/json";

// Seconds a client should wait before retrying a 429 / 503.
std::string RetryAfter(int status) { return status == 429 ? "1" : "5"; }

void SendError(http::Responder& res, const ApiError& e) {
  http::Headers extra;
  if (e.status == 429 || e.status == 503) extra.emplace_back("Retry-After", RetryAfter(e.status));
  res.Send(e.status, kJson, ErrorBody(e), extra);
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

// The token of an "Authorization: Bearer <token>" header ("" for another scheme); the
// scheme is case-insensitive (RFC 9110 11.1).
std::string BearerToken(const std::string* header) {
  if (header == nullptr) return "";
  std::string_view v = *header;
  const size_t sp = v.find(' ');
  if (sp == std::string_view::npos) return "";
  std::string scheme(v.substr(0, sp));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "bearer") return "";
  v.remove_prefix(sp);
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  return std::string(v);
}

// A client's text fit for a header value: printable ASCII only (no line breaks to split
// the head with), at most 128 characters.
std::string HeaderText(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 128)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

enum class Route {
  kNone,
  kHealth,
  kMetrics,
  kModels,
  kModel,
  kChat,
  kCompletions,
  kTokenize,
  kDetokenize,
  kCluster,
  kUi
};

}  // namespace

struct HttpServer::Impl {
  ServerOptions options;
  engine::Scheduler& scheduler;
  Metrics& metrics;
  PromptContext prompt;
  std::atomic<int> active_streams{0};
  std::unique_ptr<http::Listener> listener;
  const double started = NowSeconds();

  Impl(ServerOptions o, engine::Scheduler& s, Metrics& m, PromptContext p)
      : options(std::move(o)), scheduler(s), metrics(m), prompt(p) {
    options.cluster.model_name = options.model_name;
    options.cluster.context = scheduler.max_context();
    http::Limits limits;
    limits.threads = options.http_threads;
    limits.max_body_bytes = options.max_body_bytes;
    http::Hooks hooks;
    hooks.on_head = [this](const http::Request& req, const http::Head& head, http::Responder& res) {
      return OnHead(req, head, res);
    };
    hooks.on_request = [this](http::Request& req, http::Responder& res) { OnRequest(req, res); };
    hooks.error_body = [this](int status, const std::string& message) {
      return WireError(status, message);
    };
    listener = std::make_unique<http::Listener>(limits, std::move(hooks));
  }

  // The OpenAI-shaped body of an answer the connection code gives by itself.
  std::string WireError(int status, const std::string& message) const {
    ApiError e;
    e.status = status;
    e.message = message;
    switch (status) {
      case 408:
        e.code = "request_timeout";
        break;
      case 413:
        e.code = "request_too_large";
        e.message +=
            fmt::format(" ({} MiB); raise it with --max-body-mb", options.max_body_bytes >> 20);
        break;
      case 431:
        e.code = "headers_too_large";
        break;
      case 503:
        e.type = "server_error";
        e.code = "unavailable";
        break;
      default:
        if (status >= 500) e.type = "server_error";
        e.code = "invalid_request";
    }
    return ErrorBody(e);
  }

  static Route RouteOf(const std::string& path) {
    if (path == "/health") return Route::kHealth;
    if (path == "/metrics") return Route::kMetrics;
    if (path == "/v1/models") return Route::kModels;
    if (path.starts_with("/v1/models/") && path.size() > 11) return Route::kModel;
    if (path == "/v1/chat/completions") return Route::kChat;
    if (path == "/v1/completions") return Route::kCompletions;
    if (path == "/tokenize") return Route::kTokenize;
    if (path == "/detokenize") return Route::kDetokenize;
    if (path == "/v1/cluster") return Route::kCluster;
    if (FindUiAsset(path) != nullptr) return Route::kUi;
    return Route::kNone;
  }

  static const char* MethodOf(Route r) {
    switch (r) {
      case Route::kChat:
      case Route::kCompletions:
      case Route::kTokenize:
      case Route::kDetokenize:
        return "POST";
      default:
        return "GET";
    }
  }

  // Route, method and API key, from the head alone: a request refused here has none of
  // its body read.
  bool OnHead(const http::Request& req, const http::Head&, http::Responder& res) {
    const std::string* origin = req.Header("origin");
    // Before any answer, so that a page also gets to read its 401, 404 or 429.
    res.AddToEveryAnswer(options.cors.ForResponse(origin));
    const Route route = RouteOf(req.path);
    ApiError e;
    if (route == Route::kNone) {
      e.status = 404;
      e.code = "not_found";
      e.message = fmt::format("no route {} {}", req.method, req.path);
      SendError(res, e);
      return false;
    }
    const char* method = MethodOf(route);
    const std::string allow =
        options.cors.enabled() ? fmt::format("{}, OPTIONS", method) : std::string(method);
    // A preflight comes without credentials (Fetch standard), so it is answered before the
    // key check; it says only what the page may send, never anything of the model's.
    if (req.method == "OPTIONS" && options.cors.enabled()) {
      res.Send(
          204, "", "",
          options.cors.ForPreflight(origin, allow, req.Header("access-control-request-headers")));
      return false;
    }
    if (req.method != method) {
      e.status = 405;
      e.code = "method_not_allowed";
      e.message = fmt::format("{} takes {}, not {}", req.path, method, req.method);
      // Without --allow-origin an OPTIONS stays a 405 as before the flag existed: the
      // server then behaves exactly as it did, a browser's preflight fails all the same
      // (a 204 without Allow-Origin would fail it too), and the message can name the flag.
      if (req.method == "OPTIONS") {
        e.message += "; CORS preflights are answered when meshlm serve has --allow-origin";
      }
      res.Send(405, kJson, ErrorBody(e), {{"Allow", allow}});
      return false;
    }
    // The page is public: it holds nothing of the model's and asks its user for the key.
    if (route != Route::kHealth && route != Route::kUi && !Authorized(req, res)) return false;
    return true;
  }

  void OnRequest(http::Request& req, http::Responder& res) {
    switch (RouteOf(req.path)) {
      case Route::kHealth:
        return Health(res);
      case Route::kMetrics:
        return res.Send(200, "text/plain; version=0.0.4", metrics.Render());
      case Route::kModels:
        return Models(res);
      case Route::kModel:
        return Model(req.path.substr(11), res);
      case Route::kChat:
        return Generate(req, res, true);
      case Route::kCompletions:
        return Generate(req, res, false);
      case Route::kTokenize:
      case Route::kDetokenize:
        return Tokenize(req, res);
      case Route::kCluster:
        return Cluster(res);
      case Route::kUi:
        return Ui(req, res);
      case Route::kNone:
        break;
    }
  }

  bool Authorized(const http::Request& req, http::Responder& res) {
    if (options.api_key.empty()) return true;
    const std::string given = BearerToken(req.Header("authorization"));
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

  nlohmann::json ModelObject() const {
    return {{"id", options.model_name},
            {"object", "model"},
            {"created", options.model_created},
            {"owned_by", "meshlm"}};
  }

  void Models(http::Responder& res) {
    nlohmann::json j = {{"object", "list"}, {"data", nlohmann::json::array({ModelObject()})}};
    res.Send(200, kJson, j.dump());
  }

  // GET /v1/models/{id}: this server's model, or 404 for any other id.
  void Model(const std::string& id, http::Responder& res) {
    if (id != options.model_name) {
      ApiError e;
      e.status = 404;
      e.code = "model_not_found";
      e.param = "model";
      e.message = fmt::format("the model '{}' does not exist; this server serves '{}'", id,
                              options.model_name);
      return SendError(res, e);
    }
    res.Send(200, kJson,
             ModelObject().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }

  // GET /health: "ok" (200), "degraded" (503: a rank has not answered for a while) or
  // "error" (503: the cluster failed), with the reason.
  void Health(http::Responder& res) {
    const engine::Health h = scheduler.health();
    const bool ready = h.state == engine::Health::State::kOk;
    const char* status = ready                                         ? "ok"
                         : h.state == engine::Health::State::kDegraded ? "degraded"
                                                                       : "error";
    nlohmann::json j = {{"status", status},
                        {"ready", ready},
                        {"ranks", options.ranks},
                        {"model", options.model_name}};
    if (!ready) j["error"] = h.reason;
    if (h.waiting_s > 0) j["waiting_on_ranks_s"] = h.waiting_s;
    if (!h.waiting_on.empty()) j["waiting_on"] = h.waiting_on;
    http::Headers extra;
    if (!ready) extra.emplace_back("Retry-After", RetryAfter(503));
    res.Send(ready ? 200 : 503, kJson,
             j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), extra);
  }

  // GET /v1/cluster: the ranks as gathered at start, with the health and live counters.
  void Cluster(http::Responder& res) {
    const nlohmann::json j =
        ClusterJson(options.cluster, scheduler.health(), metrics, NowSeconds() - started);
    res.Send(200, kJson, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
             {{"Cache-Control", "no-store"}});
  }

  // GET / and /ui/<file>: the embedded page. Browsers revalidate each load (a new binary
  // may carry a new page) and get a 304 while the ETag holds; the page may load nothing
  // from elsewhere.
  void Ui(const http::Request& req, http::Responder& res) {
    const UiAsset* asset = FindUiAsset(req.path);
    http::Headers headers = {{"Cache-Control", "no-cache"},
                             {"ETag", asset->etag},
                             {"X-Content-Type-Options", "nosniff"},
                             {"Referrer-Policy", "no-referrer"},
                             {"Content-Security-Policy",
                              "default-src 'self'; img-src 'self' data:; "
                              "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"}};
    const std::string* match = req.Header("if-none-match");
    if (match != nullptr && *match == asset->etag) return res.Send(304, "", "", headers);
    res.Send(200, asset->content_type, asset->body, headers);
  }

  // POST /tokenize and /detokenize: answered here, on the HTTP thread, from the tokenizer
  // alone. They are cheap and need no rank, so they neither wait in nor take a place of
  // the generation queue.
  void Tokenize(http::Request& req, http::Responder& res) {
    std::string answer;
    ApiError err;
    const bool ok = RouteOf(req.path) == Route::kTokenize
                        ? TokenizeAnswer(req.body, prompt.tokenizer, &answer, &err)
                        : DetokenizeAnswer(req.body, prompt.tokenizer, &answer, &err);
    const bool big = req.body.size() >= kTrimAfterBytes || answer.size() >= kTrimAfterBytes;
    if (ok) {
      res.Send(200, kJson, answer);
    } else {
      SendError(res, err);
    }
    if (big) {
      std::string().swap(req.body);
      std::string().swap(answer);
      malloc_trim(0);
    }
  }

  void Generate(http::Request& req, http::Responder& res, bool chat) {
    ++metrics.requests_total;
    ApiRequest api;
    ApiError err;
    auto fail = [&](const ApiError& e) {
      ++metrics.requests_failed;
      SendError(res, e);
    };
    const bool big = req.body.size() >= kTrimAfterBytes;
    const bool parsed = ParseRequest(req.body, chat, prompt, &api, &err);
    // The body is parsed: a large one goes back to the system now, not at exit.
    std::string().swap(req.body);
    if (big) malloc_trim(0);
    if (!parsed) return fail(err);
    const bool other_model = !api.model.empty() && api.model != options.model_name;
    if (other_model && options.strict_model) {
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
    // max_tokens past the context is cut to what fits; the answer says so in a header
    // (its finish_reason is then "length").
    http::Headers extra;
    if (other_model) {
      extra.emplace_back("X-Meshlm-Model", fmt::format("{} (asked for {})", options.model_name,
                                                       HeaderText(api.model)));
    }
    const size_t room = scheduler.max_context() - api.gen.prompt.size();
    if (api.gen.max_tokens > room) {
      extra.emplace_back("X-Meshlm-Max-Tokens",
                         fmt::format("{} (asked {}; the context holds {} tokens)", room,
                                     api.gen.max_tokens, scheduler.max_context()));
    }
    engine::Scheduler::SubmitError why;
    std::vector<std::shared_ptr<engine::Channel>> channels =
        scheduler.SubmitN(api.gen, api.n, &why);
    if (channels.empty()) {
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
                      : why == engine::Scheduler::SubmitError::kDegraded
                          ? "the cluster is degraded: " + scheduler.health().reason
                          : "the server is shutting down";
      }
      return fail(err);
    }
    ResponseMeta meta{NewId(chat ? "chatcmpl-" : "cmpl-"), options.model_name, UnixNow(), chat};
    // One output per choice: its channel, and its tool-call parser when tools are on.
    std::vector<Output> outs(channels.size());
    for (size_t i = 0; i < channels.size(); ++i) {
      outs[i].channel = channels[i];
      if (api.tools.active()) outs[i].tools.emplace(prompt.tool_format);
    }
    for (Output& o : outs) o.want_logprobs = api.gen.logprobs >= 0;
    if (api.stream) return Stream(res, outs, meta, api.include_usage, extra);
    // A client that goes away stops its request within kGoneCheckMs (the scheduler drops
    // a cancelled sequence at its next step).
    std::vector<ChoiceOut> choices(outs.size());
    for (ChoiceOut& c : choices) c.want_logprobs = api.gen.logprobs >= 0;
    Totals totals;
    size_t open = outs.size();
    while (open > 0) {
      for (size_t i = 0; i < outs.size(); ++i) {
        Output& o = outs[i];
        if (o.done) continue;
        engine::Event e;
        const bool got = o.channel->Pop(&e, kGoneCheckMs / static_cast<int>(outs.size()) + 1);
        if (res.ClientGone()) {
          for (Output& x : outs) x.channel->Cancel();
          ++metrics.requests_cancelled;
          res.CloseAfter();
          return res.Send(499, kJson, "");
        }
        if (!got) continue;
        ChoiceOut& c = choices[i];
        c.logprobs.insert(c.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
        if (e.kind == engine::Event::Kind::kText) {
          if (o.tools) {
            o.tools->Push(e.text, &c.text, &c.calls);
          } else {
            c.text += e.text;
          }
        } else if (e.kind == engine::Event::Kind::kDone) {
          if (o.tools) {
            o.tools->Finish(&c.text, &c.calls);
            if (!c.calls.empty() && IsBlankText(c.text)) c.text.clear();
          }
          c.finish_reason = e.finish_reason;
          totals.Add(e);
          o.done = true;
          --open;
        } else {
          for (Output& x : outs) x.channel->Cancel();
          err.status = 503;
          err.type = "server_error";
          err.code = "cluster_error";
          err.message = e.text;
          return SendError(res, err);  // the scheduler counted the failure
        }
      }
    }
    return res.Send(200, kJson,
                    FullResponseN(meta, choices, totals.prompt, totals.completion, totals.cached),
                    extra);
  }

  // One choice's stream of events.
  struct Output {
    std::shared_ptr<engine::Channel> channel;
    std::optional<ToolCallParser> tools;
    bool done = false;
    bool want_logprobs = false;
    std::vector<engine::TokenLogprob> pending;  // logprobs not yet sent
    size_t text_offset = 0;                     // bytes of text their tokens came after
    // The pending logprobs as a chunk's "logprobs" (null when none were asked).
    nlohmann::json TakeLogprobs(bool chat) {
      if (!want_logprobs) return nullptr;
      nlohmann::json j = LogprobsJson(chat, pending, text_offset);
      for (const auto& t : pending) text_offset += t.bytes.size();
      pending.clear();
      return j;
    }
  };
  // Usage over the choices: the prompt once, every choice's tokens.
  struct Totals {
    size_t prompt = 0, completion = 0, cached = 0;
    void Add(const engine::Event& e) {
      prompt = e.prompt_tokens;
      completion += e.completion_tokens;
      cached = std::max(cached, e.cached_tokens);
    }
  };

  // SSE: a chunk per text event (each with its choice's index), a keep-alive comment when
  // idle, each choice's finish chunk, then the usage chunk if asked and [DONE]. A client
  // that goes away cancels every choice.
  void Stream(http::Responder& res, std::vector<Output>& outs, const ResponseMeta& meta,
              bool include_usage, http::Headers extra) {
    ++active_streams;
    struct Done {
      std::atomic<int>& n;
      ~Done() { --n; }
    } done{active_streams};
    extra.emplace_back("Cache-Control", "no-cache");
    extra.emplace_back("X-Accel-Buffering", "no");
    double last_write = NowSeconds();
    auto send = [&](const std::string& payload) {
      last_write = NowSeconds();
      return res.Write("data: " + payload + "\n\n");
    };
    auto gone = [&] {
      for (Output& o : outs) o.channel->Cancel();
      ++metrics.requests_cancelled;
      res.CloseAfter();
    };
    if (!res.BeginStream(200, "text/event-stream", extra)) return gone();
    if (meta.chat) {
      for (size_t i = 0; i < outs.size(); ++i) {
        if (!send(StreamChunk(meta, "", true, "", i))) return gone();
      }
    }
    // With tools, text that may open a call is held until the parser knows; each call
    // goes out whole in one delta.
    auto send_text = [&](Output& o, size_t i, const std::string& text, bool finish) {
      if (!o.tools) {
        return text.empty() ||
               send(StreamChunk(meta, text, false, "", i, o.TakeLogprobs(meta.chat)));
      }
      std::string content;
      std::vector<ToolCall> calls;
      const size_t before = o.tools->num_calls();
      o.tools->Push(text, &content, &calls);
      if (finish) o.tools->Finish(&content, &calls);
      if (!content.empty() && !(o.tools->num_calls() > 0 && IsBlankText(content)) &&
          !send(StreamChunk(meta, content, false, "", i, o.TakeLogprobs(meta.chat)))) {
        return false;
      }
      return calls.empty() || send(ToolCallChunk(meta, before, calls, i));
    };
    Totals totals;
    size_t open = outs.size();
    const int poll_ms = std::max(1, kPollMs / static_cast<int>(outs.size()));
    while (open > 0) {
      bool any = false;
      for (size_t i = 0; i < outs.size(); ++i) {
        Output& o = outs[i];
        if (o.done) continue;
        engine::Event e;
        if (!o.channel->Pop(&e, poll_ms)) continue;
        any = true;
        o.pending.insert(o.pending.end(), e.logprobs.begin(), e.logprobs.end());
        if (e.kind == engine::Event::Kind::kText) {
          if (!send_text(o, i, e.text, false)) return gone();
          continue;
        }
        if (e.kind == engine::Event::Kind::kError) {
          for (Output& x : outs) x.channel->Cancel();
          ApiError err;
          err.status = 503;
          err.type = "server_error";
          err.code = "cluster_error";
          err.message = e.text;
          send(ErrorBody(err));
          return res.EndStream();
        }
        if (o.tools && !send_text(o, i, "", true)) return gone();
        // Tokens whose text never came out (held, then cut by a stop string) still count.
        if (!o.pending.empty() &&
            !send(StreamChunk(meta, "", false, "", i, o.TakeLogprobs(meta.chat)))) {
          return gone();
        }
        const bool called = o.tools && o.tools->num_calls() > 0;
        if (!send(StreamChunk(meta, "", false, called ? "tool_calls" : e.finish_reason, i))) {
          return gone();
        }
        totals.Add(e);
        o.done = true;
        --open;
      }
      if (any) continue;
      if (NowSeconds() - last_write > kKeepAliveSeconds) {
        last_write = NowSeconds();
        if (!res.Write(": keep-alive\n\n")) return gone();
      } else if (res.ClientGone()) {
        return gone();
      }
    }
    bool ok = true;
    if (include_usage) {
      ok = send(UsageChunk(meta, totals.prompt, totals.completion, totals.cached));
    }
    if (ok) ok = send("[DONE]");
    if (!ok) return gone();
    return res.EndStream();
  }
};

HttpServer::HttpServer(ServerOptions options, engine::Scheduler& scheduler, Metrics& metrics,
                       PromptContext prompt)
    : impl_(std::make_unique<Impl>(std::move(options), scheduler, metrics, prompt)) {}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Bind() {
  MESHLM_RETURN_IF_ERROR(impl_->listener->Bind(impl_->options.host, impl_->options.port));
  bound_port_ = impl_->listener->port();
  return OkStatus();
}

void HttpServer::Serve() { impl_->listener->Serve(); }

void HttpServer::Stop() { impl_->listener->Stop(); }

int HttpServer::active_streams() const { return impl_->active_streams; }

}  // namespace meshlm::server
