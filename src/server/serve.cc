// RunServer: wires the tokenizer, scheduler and HTTP server together on rank 0.
#include "server/serve.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/clock.h"
#include "base/mapped_file.h"
#include "engine/model_tokenizer.h"
#include "engine/scheduler.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace meshlm::server {
namespace {

// SIGTERM/SIGINT write to this pipe; a watcher thread turns that into a clean stop. (A
// handler is process-wide, so it works whichever thread the signal lands on.)
int g_signal_pipe[2] = {-1, -1};

void OnSignal(int) {
  const char c = 1;
  [[maybe_unused]] ssize_t n = ::write(g_signal_pipe[1], &c, 1);
}

}  // namespace

Result<std::string> ReadChatTemplateFile(const std::string& path) {
  MESHLM_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  // A tokenizer_config.json: its chat_template (the default one of a list).
  if (path.ends_with(".json")) {
    try {
      const auto j = nlohmann::json::parse(text);
      const auto& t = j.at("chat_template");
      if (t.is_string()) return t.get<std::string>();
      for (const auto& named : t) {
        if (named.value("name", "") == "default") return named.at("template").get<std::string>();
      }
    } catch (const std::exception& ex) {
      return Error("[server] --chat-template-file '{}': no usable chat_template in the JSON ({})",
                   path, ex.what());
    }
    return Error("[server] --chat-template-file '{}': no default chat_template in the JSON", path);
  }
  return text;
}

std::string ModelNameOf(const std::string& dir) {
  // A link's target names the model better than the link does.
  char resolved[PATH_MAX];
  std::string d = ::realpath(dir.c_str(), resolved) ? resolved : dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  const size_t slash = d.rfind('/');
  return slash == std::string::npos ? d : d.substr(slash + 1);
}

Status RunServer(engine::Executor& executor, ServeConfig config) {
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ChatTemplate> chat_template;
  const bool gguf = !FileExists(config.model_dir + "/config.json") && FileExists(config.model_dir);
  auto loaded = engine::LoadModelTokenizer(config.model_dir);
  if (loaded.ok()) {
    tokenizer = std::move(loaded).value();
  } else if (!gguf) {
    return loaded.status();
  } else {
    // A GGUF file whose tokenizer we cannot rebuild still serves token ids.
    fmt::print(stderr, "[server] {}\n", loaded.status().message());
  }
  std::string template_source = tokenizer ? tokenizer->chat_template() : "";
  if (!config.chat_template_file.empty()) {
    MESHLM_ASSIGN_OR_RETURN(template_source, ReadChatTemplateFile(config.chat_template_file));
  }
  if (tokenizer && !template_source.empty()) {
    MESHLM_ASSIGN_OR_RETURN(chat_template, ChatTemplate::Parse(template_source));
  }
  if (!tokenizer) {
    fmt::print(stderr,
               "[server] '{}' has no usable tokenizer: prompts must be token ids and /v1/chat "
               "is unavailable\n",
               config.model_dir);
  }
  PromptContext prompt;
  prompt.tokenizer = tokenizer.get();
  prompt.chat_template = chat_template.get();
  prompt.tool_format = chat_template ? DetectToolFormat(template_source) : ToolFormat::kNone;
  const model::GenerationDefaults& defaults = executor.model().generation_defaults();
  prompt.defaults = engine::DefaultSampling(defaults);

  engine::SchedulerOptions sched;
  sched.max_running = config.max_running;
  sched.max_queued = config.max_queued;
  sched.eos_ids = defaults.eos_token_ids;
  const auto& mc = executor.model().config();
  sched.cache_bytes = config.cache_bytes;
  sched.kv_bytes_per_token =
      static_cast<size_t>(2 * mc.num_layers * mc.num_heads_kv * mc.head_dim) * sizeof(float);
  if (tokenizer) {
    for (int32_t id : tokenizer->stop_ids()) {
      if (std::find(sched.eos_ids.begin(), sched.eos_ids.end(), id) == sched.eos_ids.end()) {
        sched.eos_ids.push_back(id);
      }
    }
  }
  Metrics metrics;
  engine::Scheduler scheduler(executor, tokenizer.get(), metrics, sched);
  HttpServer http(config.http, scheduler, metrics, prompt);
  if (Status s = http.Bind(); !s.ok()) {
    scheduler.Stop();
    return s;
  }

  if (::pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    scheduler.Stop();
    return Error("[server] pipe: {}", std::strerror(errno));
  }
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {
  }, old_term{};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  signal(SIGPIPE, SIG_IGN);

  std::atomic<bool> serving{true};
  std::thread watcher([&] {
    while (serving) {
      pollfd p{g_signal_pipe[0], POLLIN, 0};
      const bool signalled = ::poll(&p, 1, 100) > 0;
      if (!signalled && !scheduler.broken()) continue;
      // End every request with an error event (a failed cluster has done so already),
      // and give the streams a moment to deliver it before their connections close.
      scheduler.Stop();
      const double since = NowSeconds();
      while (http.active_streams() > 0 && NowSeconds() - since < 0.5) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      break;
    }
    http.Stop();
  });
  fmt::print(stderr, "[server] serving '{}' on http://{}:{} ({} rank{})\n", config.http.model_name,
             config.http.host, http.port(), config.http.ranks, config.http.ranks == 1 ? "" : "s");
  std::fflush(stderr);
  http.Serve();
  serving = false;
  watcher.join();
  scheduler.Stop();
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  ::close(g_signal_pipe[0]);
  ::close(g_signal_pipe[1]);
  if (scheduler.broken()) {
    return Error("[server] the cluster failed: {}", scheduler.broken_reason());
  }
  fmt::print(stderr, "[server] stopped\n");
  return OkStatus();
}

}  // namespace meshlm::server
