// Progress of a long start-up phase (hashing a model, packing its weights, reading them
// in), on stderr: a bar redrawn in place when stderr is a terminal, otherwise plain lines
// at the start, at each quarter and at the end, so logs of launched ranks stay readable.
#pragma once

#include <atomic>
#include <cstddef>
#include <mutex>
#include <string>

namespace meshlm {

class Progress {
 public:
  /// Shows nothing unless `show` and total_bytes >= kMinBytes (small models load too fast
  /// for a bar to help), nor when MESHLM_LOG_LEVEL is above info. MESHLM_PROGRESS=off
  /// hides it always; MESHLM_PROGRESS=on shows it whatever the size.
  Progress(std::string label, size_t total_bytes, bool show);
  /// Prints the final line if anything was shown.
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  /// Counts `bytes` more as done. Thread-safe; redraws at most every 100 ms.
  void Add(size_t bytes);
  bool shown() const { return shown_; }

  static constexpr size_t kMinBytes = size_t{64} << 20;

  /// The bar line for `done` of `total` bytes after `seconds` (no carriage return).
  static std::string Line(const std::string& label, size_t done, size_t total, double seconds);

 private:
  void Draw(size_t done, bool final);

  const std::string label_;
  const size_t total_;
  bool shown_ = false;
  bool terminal_ = false;
  double start_ = 0;
  std::atomic<size_t> done_{0};
  std::mutex draw_mu_;
  double last_draw_ = 0;  // under draw_mu_
  int quarters_ = 0;      // plain-line milestones printed, under draw_mu_
};

}  // namespace meshlm
