// Logging to stderr.
#include "base/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace meshlm {
namespace {

LogLevel LevelFromEnv() {
  const char* v = std::getenv("MESHLM_LOG_LEVEL");
  if (v == nullptr) return LogLevel::kInfo;
  if (std::strcmp(v, "debug") == 0) return LogLevel::kDebug;
  if (std::strcmp(v, "warn") == 0) return LogLevel::kWarn;
  if (std::strcmp(v, "error") == 0) return LogLevel::kError;
  return LogLevel::kInfo;
}

std::atomic<int>& Level() {
  static std::atomic<int> level{static_cast<int>(LevelFromEnv())};
  return level;
}

}  // namespace

void SetLogLevel(LogLevel level) { Level().store(static_cast<int>(level)); }
LogLevel GetLogLevel() { return static_cast<LogLevel>(Level().load()); }

void LogLine(LogLevel level, std::string_view message) {
  static std::mutex mu;
  static const char* const kNames[] = {"debug", "info", "warn", "error"};
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const double secs = std::chrono::duration<double>(now).count();
  const long day_secs = static_cast<long>(secs) % 86400;
  const std::string line = fmt::format(
      "[{:02}:{:02}:{:06.3f}] {}: {}\n", day_secs / 3600, day_secs / 60 % 60,
      day_secs % 60 + (secs - static_cast<long>(secs)), kNames[static_cast<int>(level)], message);
  std::lock_guard<std::mutex> lock(mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace meshlm
