// Start-up progress on stderr.
#include "base/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "base/clock.h"
#include "base/log.h"

namespace meshlm {

namespace {

// MESHLM_PROGRESS=off hides progress; =on shows it for any size (scripts, tests).
enum class Mode { kAuto, kOn, kOff };

Mode ModeFromEnv() {
  static const Mode mode = [] {
    const char* v = std::getenv("MESHLM_PROGRESS");
    if (v == nullptr) return Mode::kAuto;
    const std::string s = v;
    if (s == "off" || s == "0") return Mode::kOff;
    if (s == "on" || s == "1") return Mode::kOn;
    return Mode::kAuto;
  }();
  return mode;
}

}  // namespace

Progress::Progress(std::string label, size_t total_bytes, bool show)
    : label_(std::move(label)), total_(total_bytes) {
  const Mode mode = ModeFromEnv();
  shown_ = show && total_ > 0 && mode != Mode::kOff && (total_ >= kMinBytes || mode == Mode::kOn) &&
           GetLogLevel() <= LogLevel::kInfo;
  if (!shown_) return;
  terminal_ = ::isatty(STDERR_FILENO) == 1;
  start_ = NowSeconds();
  last_draw_ = start_;
  if (terminal_) {
    Draw(0, false);
  } else {
    std::fprintf(stderr, "[load] %s %.0f MiB\n", label_.c_str(), total_ / 1048576.0);
  }
}

Progress::~Progress() {
  if (!shown_) return;
  std::lock_guard<std::mutex> lock(draw_mu_);
  Draw(std::min(done_.load(), total_), true);
}

void Progress::Add(size_t bytes) {
  const size_t done = done_.fetch_add(bytes) + bytes;
  if (!shown_) return;
  std::unique_lock<std::mutex> lock(draw_mu_, std::try_to_lock);
  if (!lock.owns_lock()) return;  // another thread is drawing; the next Add redraws
  const double now = NowSeconds();
  if (terminal_) {
    if (now - last_draw_ < 0.1) return;
    last_draw_ = now;
    Draw(std::min(done, total_), false);
    return;
  }
  const int quarter = total_ ? static_cast<int>(4 * std::min(done, total_) / total_) : 4;
  if (quarter > quarters_ && quarter < 4) {
    quarters_ = quarter;
    Draw(done, false);
  }
}

std::string Progress::Line(const std::string& label, size_t done, size_t total, double seconds) {
  constexpr int kWidth = 30;
  const double frac = total ? std::min(1.0, static_cast<double>(done) / total) : 1.0;
  const int full = static_cast<int>(frac * kWidth);
  const double rate = seconds > 0 ? done / 1048576.0 / seconds : 0;
  return fmt::format("[load] {:<8} [{}{}] {:3.0f}% {:.0f}/{:.0f} MiB {:.1f} s ({:.0f} MiB/s)",
                     label, std::string(full, '#'), std::string(kWidth - full, '.'), frac * 100,
                     done / 1048576.0, total / 1048576.0, seconds, rate);
}

void Progress::Draw(size_t done, bool final) {
  const double secs = NowSeconds() - start_;
  if (terminal_) {
    // \x1b[K clears what a longer previous line left.
    std::fprintf(stderr, "\r%s\x1b[K%s", Line(label_, done, total_, secs).c_str(),
                 final ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", Line(label_, done, total_, secs).c_str());
  }
  std::fflush(stderr);
}

}  // namespace meshlm
