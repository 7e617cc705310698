// Logging to stderr with levels, timestamps and an optional rank tag.
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace meshlm {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

/// Sets the minimum level printed (default info; MESHLM_LOG_LEVEL=debug|info|warn|error).
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
/// Thread-safe; writes one whole line.
void LogLine(LogLevel level, std::string_view message);

template <typename... Args>
void LogAt(LogLevel level, fmt::format_string<Args...> f, Args&&... args) {
  if (level < GetLogLevel()) return;
  LogLine(level, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace meshlm

#define MESHLM_LOG_DEBUG(...) ::meshlm::LogAt(::meshlm::LogLevel::kDebug, __VA_ARGS__)
#define MESHLM_LOG_INFO(...) ::meshlm::LogAt(::meshlm::LogLevel::kInfo, __VA_ARGS__)
#define MESHLM_LOG_WARN(...) ::meshlm::LogAt(::meshlm::LogLevel::kWarn, __VA_ARGS__)
#define MESHLM_LOG_ERROR(...) ::meshlm::LogAt(::meshlm::LogLevel::kError, __VA_ARGS__)
