// StopMatcher: finds stop strings in streamed text, across token boundaries, and holds
// back text that might be the start of one, so a stop string is never emitted.
#pragma once

#include <string>
#include <vector>

namespace meshlm::engine {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);

  /// Adds newly decoded text; returns the text that is now safe to emit. After a stop
  /// string is found, stopped() is true and nothing after it is ever returned.
  std::string Push(const std::string& text);
  /// Returns what is still held back (at the end of generation).
  std::string Flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace meshlm::engine
