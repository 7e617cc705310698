// Regex: PCRE2 (UTF + UCP, JIT) for the pre-tokenizer split patterns of tokenizer.json.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace meshlm::tok {

class Regex {
 public:
  /// Compiles a pattern written for Oniguruma (what Hugging Face's tokenizers uses).
  /// `\s` and `\S` are widened to Unicode White_Space (U+0085 included), as there.
  static Result<std::unique_ptr<Regex>> Compile(std::string_view pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  /// Byte ranges [begin, end) of successive non-overlapping matches in `text` (valid
  /// UTF-8). Empty matches are skipped. Thread-safe.
  void FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>* matches) const;

 private:
  Regex() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Escapes a literal string so that it can be compiled as a pattern.
std::string RegexEscape(std::string_view literal);

}  // namespace meshlm::tok
