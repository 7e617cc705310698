// Serving on rank 0 of a job: the model's tokenizer and chat template, the scheduler
// and the HTTP server, until SIGTERM/SIGINT or a failed cluster.
#pragma once

#include <string>

#include "base/status.h"
#include "engine/executor.h"
#include "server/http_server.h"

namespace meshlm::server {

struct ServeConfig {
  std::string model_dir;
  ServerOptions http;
  size_t max_running = 16;
  size_t max_queued = 64;
  /// A chat template to use instead of the model's: Jinja text, or a JSON file with a
  /// "chat_template" field (tokenizer_config.json). "" keeps the model's.
  std::string chat_template_file;
  /// The prefix cache's budget (engine::SchedulerOptions::cache_bytes); 0: off.
  size_t cache_bytes = 0;
};

/// Rank 0: serves until a signal asks to stop (the caller then stops the workers). Errors
/// when the server cannot start or the cluster failed.
Status RunServer(engine::Executor& executor, ServeConfig config);

/// The folder's last path component: the model name the API shows.
std::string ModelNameOf(const std::string& dir);

/// The template of --chat-template-file: the file's text, or, for a .json file, its
/// "chat_template" (the "default" entry of a list).
Result<std::string> ReadChatTemplateFile(const std::string& path);

}  // namespace meshlm::server
