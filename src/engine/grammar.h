// Grammar-constrained sampling: a context-free grammar over bytes, a matcher that
// follows it byte by byte, and the token mask that says which tokens of a vocabulary
// may come next.
//
// Goals: structured output (JSON Schema, tool calls) enforced while sampling, so every
// answer parses; a mask on a 150k vocabulary in well under a decode step. The matcher
// keeps every parse alive at once (a set of stacks, shared tails), so grammars may be
// ambiguous and recursive ($ref). Non-goals: left-recursive grammars (a rule whose
// first item leads back to itself is refused by Validate), regular-expression syntax.
#pragma once

#include <bitset>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace meshlm::engine {

/// A context-free grammar over bytes. Rules are lists of alternatives; an alternative is a
/// sequence of items: a byte class, a reference to a rule, or a JSON string body.
class Grammar {
 public:
  using RuleId = int32_t;
  struct Item {
    enum class Kind : uint8_t { kBytes, kRule, kJsonString, kEnd };
    Kind kind = Kind::kEnd;
    int32_t arg = 0;  // kBytes: byte class index; kRule: rule id
  };

  /// A new rule with no alternatives yet; `name` is for error messages.
  RuleId AddRule(std::string name);
  void AddAlternative(RuleId rule, std::vector<Item> items);
  /// Items: one byte class; a reference; a literal (one item per byte); the body of a
  /// JSON string between its quotes (valid UTF-8, escapes; no raw control bytes).
  Item Bytes(const std::bitset<256>& set);
  Item Byte(uint8_t b);
  Item Range(uint8_t lo, uint8_t hi);
  static Item Ref(RuleId rule) { return {Item::Kind::kRule, rule}; }
  static Item JsonStringBody() { return {Item::Kind::kJsonString, 0}; }
  std::vector<Item> Literal(std::string_view bytes);

  void set_root(RuleId root) { root_ = root; }
  RuleId root() const { return root_; }
  size_t num_rules() const { return rule_alts_.size(); }

  /// Lays the rules out flat for the matcher; refuses empty rules and left recursion.
  /// Call once, after the last AddAlternative.
  Status Finalize();

 private:
  friend class GrammarMatcher;
  std::vector<std::string> names_;
  std::vector<std::vector<std::vector<Item>>> rules_;  // until Finalize
  std::vector<std::bitset<256>> classes_;
  std::vector<Item> items_;                   // every alternative, each ending in kEnd
  std::vector<std::vector<int32_t>> rule_alts_;  // rule -> positions in items_
  RuleId root_ = 0;
  bool final_ = false;
};

/// A vocabulary indexed for masks: each token's bytes in a trie, and the tokens that
/// are plain JSON string content (no quote, backslash or control byte; whole UTF-8),
/// which a matcher inside a free string allows all at once. Built once per tokenizer.
class TokenIndex {
 public:
  /// `bytes[id]`: what token `id` adds to the text ("" for special tokens, which the
  /// grammar never allows); `eos_ids` are allowed exactly when the grammar is complete.
  TokenIndex(const std::vector<std::string>& bytes, std::vector<int32_t> eos_ids);
  size_t vocab_size() const { return vocab_size_; }
  const std::string& bytes(int32_t id) const { return bytes_[id]; }
  const std::vector<int32_t>& eos_ids() const { return eos_ids_; }

 private:
  friend class GrammarMatcher;
  struct Trie {
    struct Node {
      uint32_t child_begin = 0, child_end = 0;  // into children
      uint32_t token_begin = 0, token_end = 0;  // into tokens
    };
    std::vector<Node> nodes;                         // nodes[0]: the root
    std::vector<std::pair<uint8_t, uint32_t>> children;  // (byte, node), by byte
    std::vector<int32_t> tokens;                     // ids ending at a node
    void Build(const std::vector<std::string>& bytes, const std::vector<int32_t>& ids);
  };
  size_t vocab_size_ = 0;
  size_t max_len_ = 0;  // the longest token, in bytes
  std::vector<std::string> bytes_;
  std::vector<int32_t> eos_ids_;
  Trie all_;                          // every token with bytes
  Trie other_;                        // every token not in string_tokens_
  std::vector<uint64_t> string_tokens_;  // bit per id
};

/// Follows one output through a grammar. Not thread-safe; one per sequence.
class GrammarMatcher {
 public:
  explicit GrammarMatcher(std::shared_ptr<const Grammar> grammar);

  /// Consumes bytes; false (state unchanged) when the grammar cannot take them.
  bool Accept(std::string_view bytes);
  /// Consumes a token (index.bytes(id)); an end-of-sequence id is taken only when the
  /// output is complete, and then ends the matcher.
  bool AcceptToken(const TokenIndex& index, int32_t id);
  /// The bytes so far form a whole sentence of the grammar.
  bool complete() const { return accepting_; }
  /// Complete, and no byte may follow.
  bool finished() const { return accepting_ && tops_.empty(); }

  /// Sets bit `id` of `mask` ([ceil(V/64)] words) for every token that may come next.
  void FillMask(const TokenIndex& index, std::vector<uint64_t>* mask);
  /// Sets the logits of tokens FillMask does not allow to -inf: [V] f32. False when no
  /// token is allowed (a vocabulary that cannot spell what the grammar needs next).
  bool ApplyMask(const TokenIndex& index, std::span<float> logits);

 private:
  struct Node {
    int32_t pos;     // position in items_
    int32_t parent;  // node to return to (its pos is the kRule item), -1 at the root
    uint8_t sub;     // kJsonString: where inside a character or escape
  };
  struct State {
    std::vector<int32_t> tops;  // nodes whose item takes the next byte
    bool accepting = false;
  };
  int32_t NewNode(int32_t pos, int32_t parent, uint8_t sub);
  void Expand(int32_t node, State* out, int depth);
  void Add(int32_t node, State* out);
  /// The state after byte `b`; false when no parse survives.
  bool Step(const State& from, uint8_t b, State* to);
  void Walk(const TokenIndex::Trie& trie, uint32_t node, const State& state, size_t depth,
            std::vector<uint64_t>* mask);
  /// Inside a free JSON string with nothing else alive: the string tokens all fit.
  bool InFreeString(const State& s);

  std::shared_ptr<const Grammar> g_;
  std::vector<Node> nodes_;
  std::vector<int32_t> tops_;
  bool accepting_ = false;
  bool ended_ = false;  // an end-of-sequence token was taken
  std::vector<State> scratch_;  // one per trie depth
  std::vector<uint64_t> mask_;
};

}  // namespace meshlm::engine
