// meshlm serve / meshlm stop: the OpenAI-compatible server on a cluster of ranks.
#include "server/serve.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <memory>

#include "base/log.h"
#include "base/mapped_file.h"
#include "cli/commands.h"
#include "cli/host_flags.h"
#include "cli/job.h"
#include "cluster/hostfile.h"
#include "cluster/launcher.h"
#include "cluster/verify.h"
#include "server/daemon.h"

namespace meshlm::cli {
namespace {

struct ServeFlags {
  JobFlags job;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;
  std::string api_key_file;
  std::vector<std::string> allow_origins;  // as given
  server::CorsPolicy cors;                 // from allow_origins, by RunServe
  size_t max_body_mb = 32;
  size_t max_concurrent = 16;
  size_t max_queue = 64;
  int processes = 0;
  std::string hostfile;
  std::vector<std::string> ssh_args;
  bool detach = false;
  double ready_timeout = 600;
  bool strict_model = false;
  std::string chat_template_file;
  size_t cache_mb = 1024;
};

// When the model was made, for /v1/models: its config.json's (or GGUF file's) time.
int64_t ModelCreated(const std::string& path) {
  struct stat sb {};
  const std::string file = FileExists(path + "/config.json") ? path + "/config.json" : path;
  return ::stat(file.c_str(), &sb) == 0 ? static_cast<int64_t>(sb.st_mtim.tv_sec) : 0;
}

bool InsideJob() { return std::getenv("MESHLM_RANK") || std::getenv("MLX_RANK"); }

// Every rank runs `meshlm serve` with the same model flags; the key travels in the
// environment, never on a command line.
std::vector<std::string> RankCommand(const ServeFlags& f) {
  std::vector<std::string> c = {cluster::SelfExe(), "serve",
                                "--model",          f.job.model,
                                "--host",           f.host,
                                "--port",           std::to_string(f.port),
                                "--max-concurrent", std::to_string(f.max_concurrent),
                                "--max-queue",      std::to_string(f.max_queue),
                                "--max-body-mb",    std::to_string(f.max_body_mb)};
  auto add = [&](const char* flag, size_t v) {
    if (v) c.insert(c.end(), {flag, std::to_string(v)});
  };
  add("--threads", f.job.threads);
  add("--ctx", f.job.ctx);
  add("--tp", f.job.tp);
  add("--pp", f.job.pp);
  add("--ep", f.job.ep);
  if (!f.job.layers.empty()) c.insert(c.end(), {"--layers", f.job.layers});
  if (f.cors.enabled()) {
    c.insert(c.end(), {"--allow-origin", fmt::format("{}", fmt::join(f.cors.values(), ","))});
  }
  if (f.strict_model) c.push_back("--strict-model");
  if (!f.chat_template_file.empty()) {
    c.insert(c.end(), {"--chat-template-file", f.chat_template_file});
  }
  c.insert(c.end(), {"--cache-mb", std::to_string(f.cache_mb)});
  return c;
}

// The links between hosts that the job's hostfile names (MESHLM_HOSTFILE, set by the
// launcher).
void AddHostfileLinks(server::ClusterInfo* info) {
  const char* path = std::getenv("MESHLM_HOSTFILE");
  if (path == nullptr || *path == '\0') return;
  auto hf = cluster::LoadHostfile(path);
  if (!hf.ok()) return;  // the job started from it, so this is not expected; show no links
  if (!hf->backend.empty()) info->backend = hf->backend;
  std::vector<server::HostLinks> hosts;
  for (size_t i = 0; i < hf->hosts.size(); ++i) {
    const cluster::HostEntry& h = hf->hosts[i];
    hosts.push_back({h.rdma, h.links, hf->Address(static_cast<int>(i))});
  }
  server::AddHostfileLinks(hosts, info);
}

int ServeInJob(const ServeFlags& f) {
  cluster::GateReport gate;
  gate.latency_us = -1;
  gate.comm_ms = -1;
  auto job = StartJob(f.job, 0, &gate);
  if (!job.ok()) {
    fmt::print(stderr, "meshlm serve: {}\n", job.status().message());
    return 1;
  }
  // Every rank takes part; only rank 0's answer holds the records. The view is not worth
  // failing the job for, so a malformed record leaves it empty.
  server::ClusterInfo cluster_info;
  if (auto info = server::GatherClusterInfo(*job->world, job->executor->model()); info.ok()) {
    cluster_info = std::move(info).value();
    cluster_info.gate_latency_us = gate.latency_us;
    cluster_info.gate_comm_ms = gate.comm_ms;
    if (const char* b = std::getenv("MESHLM_BACKEND"); b && *b) cluster_info.backend = b;
    if (job->world->rank() == 0) AddHostfileLinks(&cluster_info);
    for (const cluster::LinkProbe& probe : gate.links) {
      for (server::LinkInfo& l : cluster_info.links) {
        if (l.a == static_cast<size_t>(probe.a) && l.b == static_cast<size_t>(probe.b)) {
          l.latency_us = probe.latency_us;
          l.gbytes_per_s = probe.gbytes_per_s;
        }
      }
    }
  } else {
    fmt::print(stderr, "meshlm serve: {}\n", info.status().message());
  }
  if (job->world->rank() == 0) {
    MESHLM_LOG_INFO("[serve] model loaded in {:.1f} s on {} ranks", job->load_seconds,
                    job->world->size());
  }
  if (job->world->rank() != 0) {
    // Rank 0 stops the workers when it is told to stop; a worker whose rank 0 vanished
    // stops on its own (its connection closes).
    ::signal(SIGTERM, SIG_IGN);
    ::signal(SIGINT, SIG_IGN);
  }
  return RunJob(*job, "serve", [&]() -> Status {
    server::ServeConfig config;
    config.model_dir = f.job.model;
    config.http.host = f.host;
    config.http.port = f.port;
    config.http.api_key = f.api_key;
    if (const char* k = std::getenv("MESHLM_API_KEY"); config.http.api_key.empty() && k) {
      config.http.api_key = k;
    }
    config.http.max_body_bytes = f.max_body_mb << 20;
    config.http.cors = f.cors;
    config.http.model_name = server::ModelNameOf(f.job.model);
    config.http.model_created = ModelCreated(f.job.model);
    config.http.strict_model = f.strict_model;
    config.http.ranks = job->world->size();
    config.http.cluster = std::move(cluster_info);
    config.max_running = f.max_concurrent;
    config.max_queued = f.max_queue;
    config.chat_template_file = f.chat_template_file;
    config.cache_bytes = f.cache_mb << 20;
    return server::RunServer(*job->executor, config);
  });
}

// The key from --api-key-file: its first line, without the line end. "" with *error set
// when the file cannot be read or holds no key.
std::string ReadKeyFile(const std::string& path, std::string* error) {
  std::ifstream in(path);
  std::string key;
  if (!in || !std::getline(in, key)) {
    *error = fmt::format("--api-key-file '{}' cannot be read", path);
    return "";
  }
  while (!key.empty() && (key.back() == '\r' || key.back() == ' ')) key.pop_back();
  if (key.empty()) *error = fmt::format("--api-key-file '{}': the first line holds no key", path);
  return key;
}

int RunServe(ServeFlags f) {
  if (!f.api_key_file.empty()) {
    std::string error;
    f.api_key = ReadKeyFile(f.api_key_file, &error);
    if (!error.empty()) {
      fmt::print(stderr, "meshlm serve: {}\n", error);
      return 2;
    }
  }
  auto cors = server::CorsPolicy::Parse(f.allow_origins);
  if (!cors.ok()) {
    fmt::print(stderr, "meshlm serve: {}\n", cors.status().message());
    return 2;
  }
  f.cors = std::move(cors).value();
  if (f.max_body_mb == 0) {
    fmt::print(stderr, "meshlm serve: --max-body-mb must be at least 1\n");
    return 2;
  }
  const bool launch = !InsideJob() && (f.processes > 1 || !f.hostfile.empty());
  if (f.detach && !InsideJob()) {
    int code = 0;
    auto child = server::Detach(f.host, f.port, f.ready_timeout, &code);
    if (!child.ok()) {
      fmt::print(stderr, "{}\n", child.status().message());
      return 2;
    }
    if (!*child) return code;
  }
  if (!launch) return ServeInJob(f);
  cluster::LaunchOptions o;
  o.processes = f.processes;
  o.hostfile = f.hostfile;
  o.ssh_args = f.ssh_args;
  o.command = RankCommand(f);
  if (!f.api_key.empty()) o.env.push_back("MESHLM_API_KEY=" + f.api_key);
  auto code = cluster::Launch(o);
  if (!code.ok()) {
    fmt::print(stderr, "meshlm serve: {}\n", code.status().message());
    return 2;
  }
  return *code;
}

}  // namespace

void AddServeCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<ServeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "Serve the model over an OpenAI-compatible HTTP API (rank 0 answers)");
  AddJobFlags(cmd, &f->job);
  cmd->add_option("--host", f->host, "Address to listen on (default 127.0.0.1)");
  cmd->add_option("--port", f->port, "Port to listen on (default 8080)");
  cmd->add_option("--api-key", f->api_key,
                  "Require 'Authorization: Bearer KEY' (also from MESHLM_API_KEY; a key given "
                  "here shows in ps, so prefer the variable or --api-key-file)");
  cmd->add_option("--api-key-file", f->api_key_file, "Read the API key from the file's first line")
      ->excludes("--api-key");
  cmd->add_option("--allow-origin", f->allow_origins,
                  "Let web pages from ORIGIN (scheme://host[:port], or * for any) call the API "
                  "from a browser (CORS); repeat it or separate origins with commas (default: "
                  "none, no CORS headers)")
      ->type_name("ORIGIN");
  cmd->add_flag("--strict-model", f->strict_model,
                "Answer 404 to a request naming another model (default: serve it with the "
                "loaded one and say so in the X-Meshlm-Model header)");
  cmd->add_option("--chat-template-file", f->chat_template_file,
                  "Use this chat template instead of the model's: a Jinja file, or a "
                  "tokenizer_config.json holding one (e.g. to get a template that renders tools)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--cache-mb", f->cache_mb,
                  "Prefix cache: MiB of keys and values (the whole model's, over all ranks) kept "
                  "from finished requests, so a request that repeats an earlier prompt's start "
                  "skips computing it; 0 turns it off (default 1024)");
  cmd->add_option("--max-body-mb", f->max_body_mb,
                  "Largest request body in MiB; larger ones get 413 (default 32)");
  cmd->add_option("--max-concurrent", f->max_concurrent, "Sequences generated together");
  cmd->add_option("--max-queue", f->max_queue, "Waiting requests beyond which new ones get 429");
  AddHostFlags(*cmd,
               {.processes = &f->processes, .hostfile = &f->hostfile, .ssh_args = &f->ssh_args});
  cmd->add_flag("--detach", f->detach, "Run in the background; `meshlm stop` stops it");
  cmd->add_option("--ready-timeout", f->ready_timeout, "Seconds --detach waits for readiness");
  cmd->callback([f, exit_code] { *exit_code = RunServe(*f); });
}

void AddStopCommand(CLI::App& app, int* exit_code) {
  auto port = std::make_shared<int>(0);
  CLI::App* cmd = app.add_subcommand("stop", "Stop servers started with `meshlm serve --detach`");
  cmd->add_option("--port", *port, "Only the server on this port (default: all of yours)");
  cmd->callback([port, exit_code] {
    auto stopped = server::StopServers(*port, 15.0);
    if (!stopped.ok()) {
      fmt::print(stderr, "meshlm stop: {}\n", stopped.status().message());
      *exit_code = 1;
      return;
    }
    if (stopped->empty()) fmt::print("meshlm stop: no detached server is running\n");
    for (const auto& s : *stopped) fmt::print("meshlm stop: stopped the server on {}\n", s);
    *exit_code = 0;
  });
}

}  // namespace meshlm::cli
