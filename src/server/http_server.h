// HttpServer: the OpenAI-compatible HTTP API on rank 0 (over http::Listener), in front of the
// engine's Scheduler.
//
// Endpoints: GET /v1/models[/{id}], POST /v1/chat/completions, POST /v1/completions (both with
// SSE streaming), POST /tokenize, POST /detokenize (llama-server's), GET /health,
// GET /metrics, GET /v1/cluster (ranks, shards, links, live counters); with CORS on, OPTIONS
// preflights of each; and the web page built into the binary at GET / and GET /ui/<file>.
// Every error is OpenAI-shaped JSON.
// Goals: a bad request never reaches the workers; an API key guards everything but
// /health, the page's files and preflights, and is checked, with the route, before a body
// is read (the page asks its user for the key); a client that goes away has its sequence
// dropped. Non-goals: TLS (put a proxy in front).
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "engine/scheduler.h"
#include "server/cluster_info.h"
#include "server/cors.h"
#include "server/metrics.h"
#include "server/openai.h"

namespace meshlm::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;        // empty: no key needed
  std::string model_name;     // what /v1/models lists and requests may name
  int64_t model_created = 0;  // Unix seconds, for /v1/models
  /// A request naming another model gets 404; otherwise the loaded model serves it and
  /// the X-Meshlm-Model header says so (clients send names such as "gpt-4o" by habit).
  bool strict_model = false;
  CorsPolicy cors;  // origins whose pages may call the API (none by default)
  int ranks = 1;
  size_t http_threads = 64;  // each streaming client holds one while it streams
  size_t max_body_bytes = size_t{32} << 20;
  /// What /v1/cluster shows of the ranks (empty: only the live counters).
  ClusterInfo cluster;
};

class HttpServer {
 public:
  /// `scheduler`, `metrics` and the prompt context's objects must outlive the server.
  HttpServer(ServerOptions options, engine::Scheduler& scheduler, Metrics& metrics,
             PromptContext prompt);
  ~HttpServer();

  /// Binds host:port (port 0 picks one; see port()). Errors name the address.
  Status Bind();
  /// Serves until Stop(); call after Bind, from one thread.
  void Serve();
  /// Thread-safe; Serve returns soon after.
  void Stop();
  int port() const { return bound_port_; }
  /// Streaming responses still being written.
  int active_streams() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int bound_port_ = 0;
};

}  // namespace meshlm::server
