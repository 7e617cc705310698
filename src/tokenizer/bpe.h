// BpeModel: a byte-pair-encoding vocabulary and its merge ranks, independent of the file
// it came from (tokenizer.json today, GGUF metadata later).
//
// Goals: the same ids as Hugging Face's BPE model (merges by rank, leftmost first;
// byte_fallback; ignore_merges; unk fusing) in O(n log n) per word, with a cache of
// recent words. Non-goals: dropout, training.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/status.h"

namespace meshlm::tok {

struct BpeOptions {
  bool byte_fallback = false;  // unknown characters become <0xXX> byte tokens
  bool ignore_merges = false;  // a word found whole in the vocabulary is one token
  bool fuse_unk = false;       // consecutive unknown characters give one unk token
  std::string unk_token;       // empty: unknown characters are dropped
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
};

class BpeModel {
 public:
  /// `vocab[i]` is the token of id i (ids must be dense; gaps hold empty strings).
  /// `merges` are pairs of tokens, highest priority first. Errors name the offending
  /// merge or token.
  static Result<std::unique_ptr<BpeModel>> Create(
      std::vector<std::string> vocab,
      const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options);

  /// Appends the ids of one pre-token (already in the model's alphabet) to *ids.
  /// Thread-safe (the cache is locked).
  void Tokenize(std::string_view word, std::vector<int32_t>* ids) const;

  /// Id of `token`, or -1.
  int32_t TokenToId(std::string_view token) const;
  /// Token of `id`; empty for ids out of range.
  const std::string& IdToToken(int32_t id) const;
  size_t vocab_size() const { return vocab_.size(); }
  const BpeOptions& options() const { return options_; }

 private:
  BpeModel() = default;
  void TokenizeCached(std::string_view word, std::vector<int32_t>* ids) const;
  void TokenizeUncached(std::string_view word, std::vector<int32_t>* ids) const;

  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> token_to_id_;
  // (left id << 32 | right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
  std::vector<int32_t> byte_ids_;  // id of "<0xXX>" per byte, -1 when missing
  int32_t unk_id_ = -1;
  // SentencePiece-style vocabularies see whole sentences as one word. A word can be
  // cut before a "▁" (U+2581) that follows a character c without changing the result
  // when no token contains c followed by "▁"; the pieces are then cached like words.
  // `metaspace_joiners_` holds those c (few: Gemma 3 has one token, ">▁</").
  bool split_at_metaspace_ = false;
  std::vector<char32_t> metaspace_joiners_;
  BpeOptions options_;

  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace meshlm::tok
