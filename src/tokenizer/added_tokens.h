// Added tokens (special and not): found in the text before the BPE model sees it, with
// Hugging Face's leftmost-longest matching and lstrip/rstrip/single_word rules.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace meshlm::tok {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool lstrip = false;       // also swallow whitespace before the match
  bool rstrip = false;       // also swallow whitespace after the match
  bool single_word = false;  // match only where no word character touches either end
  bool normalized = false;   // matched in normalized text rather than in the raw input
};

/// A byte range of the text, either one added token (token >= 0: an index into the
/// token list) or plain text (token == -1).
struct Segment {
  size_t begin, end;
  int token;
};

class AddedTokenMatcher {
 public:
  /// Registers `pattern` (non-empty) for token index `token`.
  void Add(std::string_view pattern, int token);
  bool empty() const { return nodes_.size() <= 1; }
  /// Splits `text` into segments; `tokens` gives the match options per index.
  void Split(std::string_view text, const std::vector<AddedToken>& tokens,
             std::vector<Segment>* out) const;

 private:
  // Byte trie: node 0 is the root; edges keyed by (node << 8 | byte).
  struct Node {
    int token = -1;
  };
  std::vector<Node> nodes_{Node{}};
  std::unordered_map<uint64_t, int32_t> edges_;
  bool first_byte_[256] = {};
};

}  // namespace meshlm::tok
