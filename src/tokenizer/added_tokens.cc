// Leftmost-longest matching of added tokens over a byte trie.
#include "tokenizer/added_tokens.h"

#include "tokenizer/unicode.h"

namespace meshlm::tok {

void AddedTokenMatcher::Add(std::string_view pattern, int token) {
  if (pattern.empty()) return;
  int32_t node = 0;
  for (const char c : pattern) {
    const uint64_t key = (static_cast<uint64_t>(node) << 8) | static_cast<uint8_t>(c);
    const auto it = edges_.find(key);
    if (it != edges_.end()) {
      node = it->second;
    } else {
      nodes_.push_back(Node{});
      node = static_cast<int32_t>(nodes_.size() - 1);
      edges_.emplace(key, node);
    }
  }
  // The first registration of a pattern wins, as the first entry of added_tokens does.
  if (nodes_[node].token < 0) nodes_[node].token = token;
  first_byte_[static_cast<uint8_t>(pattern[0])] = true;
}

namespace {

bool IsWordChar(char32_t c) { return c == '_' || IsAlphanumeric(c); }

// Last code point before `end`, which must be > 0.
char32_t CodePointBefore(std::string_view s, size_t end) {
  size_t b = end - 1;
  while (b > 0 && (static_cast<uint8_t>(s[b]) & 0xC0) == 0x80) --b;
  return NextCodePoint(s, &b);
}

}  // namespace

void AddedTokenMatcher::Split(std::string_view text, const std::vector<AddedToken>& tokens,
                              std::vector<Segment>* out) const {
  out->clear();
  size_t plain_begin = 0;  // start of the pending plain-text segment
  size_t pos = 0;
  while (pos < text.size()) {
    if (!first_byte_[static_cast<uint8_t>(text[pos])]) {
      ++pos;
      continue;
    }
    // Longest pattern that starts at pos.
    int best = -1;
    size_t best_end = 0;
    int32_t node = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      const auto it =
          edges_.find((static_cast<uint64_t>(node) << 8) | static_cast<uint8_t>(text[i]));
      if (it == edges_.end()) break;
      node = it->second;
      if (nodes_[node].token >= 0) {
        best = nodes_[node].token;
        best_end = i + 1;
      }
    }
    if (best < 0) {
      ++pos;
      continue;
    }
    const AddedToken& t = tokens[best];
    size_t start = pos, stop = best_end;
    if (t.single_word) {
      const bool free_before = start == 0 || !IsWordChar(CodePointBefore(text, start));
      size_t p = stop;
      const bool free_after = stop == text.size() || !IsWordChar(NextCodePoint(text, &p));
      if (!free_before || !free_after) {
        pos = best_end;  // the rejected match is consumed, as in a non-overlapping scan
        continue;
      }
    }
    if (t.lstrip) {
      while (start > plain_begin && IsWhitespace(CodePointBefore(text, start))) {
        size_t b = start - 1;
        while (b > plain_begin && (static_cast<uint8_t>(text[b]) & 0xC0) == 0x80) --b;
        start = b;
      }
    }
    if (t.rstrip) {
      while (stop < text.size()) {
        size_t p = stop;
        if (!IsWhitespace(NextCodePoint(text, &p))) break;
        stop = p;
      }
    }
    if (start > plain_begin) out->push_back({plain_begin, start, -1});
    out->push_back({start, stop, best});
    plain_begin = pos = stop;
  }
  if (plain_begin < text.size()) out->push_back({plain_begin, text.size(), -1});
}

}  // namespace meshlm::tok
