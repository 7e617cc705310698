// Tokenizer: text to token ids and back, with the same ids as Hugging Face's tokenizers
// library for the BPE models of tokenizer.json (byte-level as GPT-2/Llama 3/Qwen, and
// SentencePiece-style with byte fallback as Mistral/Gemma).
//
// Goals: exact ids, fast encode (per-word cache, no quadratic work), streaming decode
// for the server. Non-goals: Unigram and WordPiece models, pairs of sequences, offsets,
// truncation and padding.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/status.h"

namespace meshlm {

namespace tok {
class BpeModel;
class Normalizer;
class PreTokenizer;
class PostProcessor;
class Decoder;
class AddedTokenMatcher;
struct AddedToken;
}  // namespace tok

/// A BPE vocabulary and its pipeline, independent of the file it came from:
/// tokenizer.json fills it today, GGUF metadata can fill it too.
struct TokenizerParts {
  std::vector<std::string> vocab;  // token of each id; dense (gaps hold "")
  std::vector<std::pair<std::string, std::string>> merges;  // highest priority first
  bool byte_fallback = false;  // unknown characters become <0xXX> tokens
  bool ignore_merges = false;  // a word found whole in the vocabulary is one token
  bool fuse_unk = false;
  std::string unk_token;  // "" when unknown characters are dropped
  std::string continuing_subword_prefix, end_of_word_suffix;
  struct AddedToken {
    int32_t id = -1;
    std::string content;
    bool special = true;
    bool lstrip = false, rstrip = false, single_word = false;
    bool normalized = false;  // matched in normalized text
  };
  std::vector<AddedToken> added_tokens;
  /// Pipeline stages as tokenizer.json writes them (e.g. {"type": "NFC"}); null: none.
  nlohmann::json normalizer, pre_tokenizer, post_processor, decoder;
  std::string bos_token, eos_token;     // "" when none
  std::vector<int32_t> extra_stop_ids;  // e.g. generation_config.json's eos_token_id
  std::string chat_template;            // "" when none
  std::vector<std::pair<std::string, std::string>> named_chat_templates;
};

class Tokenizer {
 public:
  /// Builds a tokenizer from its parts. Errors name the part at fault.
  static Result<std::unique_ptr<Tokenizer>> FromParts(TokenizerParts parts);
  /// Loads `dir`/tokenizer.json, plus tokenizer_config.json (chat template, bos/eos
  /// tokens) and generation_config.json (extra eos ids) when present. Errors name the
  /// file and the JSON field at fault.
  static Result<std::unique_ptr<Tokenizer>> FromHfDir(const std::string& dir);
  /// The same from file contents; `config_json` and `generation_json` may be empty.
  /// `source` names the input in error messages.
  static Result<std::unique_ptr<Tokenizer>> FromHfJson(std::string_view tokenizer_json,
                                                       std::string_view config_json,
                                                       std::string_view generation_json,
                                                       const std::string& source);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  /// Token ids of `text` (must be valid UTF-8). Special-token strings in the text are
  /// always recognised. `add_special` runs the post-processor (e.g. prepends BOS), as
  /// HF's encode(add_special_tokens=True). A rendered chat template already holds its
  /// special tokens: encode it with add_special = false. Thread-safe.
  Result<std::vector<int32_t>> Encode(std::string_view text, bool add_special) const;

  /// Text of `ids`; ids out of range are skipped, invalid UTF-8 becomes U+FFFD.
  /// `skip_special` drops special tokens. Thread-safe.
  std::string Decode(std::span<const int32_t> ids, bool skip_special = false) const;

  /// What each of `ids` adds to Decode(ids), in order, as bytes: they concatenate to
  /// Decode(ids) when that is valid UTF-8. A piece is complete UTF-8 unless a character is
  /// split across several ids; each of those then gets its own bytes of it. In context,
  /// unlike Decode of one id: a decoder that strips the first token's space strips it
  /// from the first piece only. Ids out of range give "". Thread-safe.
  std::vector<std::string> Pieces(std::span<const int32_t> ids) const;

  /// For every id, the bytes it adds in the middle of a text: what a grammar matches
  /// tokens against. Special tokens give "". A token that ends inside a UTF-8 character
  /// gives its own bytes of it. Takes ~0.1 s on a 150k vocabulary: build once.
  std::vector<std::string> TokenByteTable() const;

  /// Token string of `id` as stored in the vocabulary ("Ġthe", "▁the", "<|im_end|>");
  /// empty when out of range.
  const std::string& IdToToken(int32_t id) const;
  /// Id of a token string (added tokens included), or -1.
  int32_t TokenToId(std::string_view token) const;
  bool IsSpecial(int32_t id) const;
  /// One past the largest id (model vocabulary and added tokens).
  size_t vocab_size() const { return vocab_size_; }

  /// Beginning-of-sequence token from tokenizer_config.json; id -1 / "" when absent.
  int32_t bos_id() const { return bos_id_; }
  const std::string& bos_token() const { return bos_token_; }
  /// End-of-sequence token from tokenizer_config.json; id -1 / "" when absent.
  int32_t eos_id() const { return eos_id_; }
  const std::string& eos_token() const { return eos_token_; }
  /// Every id that ends generation: eos_id plus generation_config.json's eos_token_id.
  const std::vector<int32_t>& stop_ids() const { return stop_ids_; }
  /// tokenizer_config.json's chat_template (the "default" one when it is a list);
  /// empty when the model has none.
  const std::string& chat_template() const { return chat_template_; }
  /// A named template ("tool_use", ...) from a list-form chat_template, or "".
  std::string NamedChatTemplate(std::string_view name) const;

 private:
  Tokenizer();
  Status EncodeSegment(std::string_view text, bool at_origin, std::vector<int32_t>* ids) const;

  std::unique_ptr<tok::BpeModel> model_;
  std::unique_ptr<tok::Normalizer> normalizer_;
  std::unique_ptr<tok::PreTokenizer> pre_tokenizer_;
  std::unique_ptr<tok::PostProcessor> post_processor_;
  std::unique_ptr<tok::Decoder> decoder_;
  std::vector<tok::AddedToken> added_;
  std::vector<int32_t> added_index_;  // per id: index into added_, or -1
  std::unordered_map<std::string, int32_t> added_by_content_;
  std::unique_ptr<tok::AddedTokenMatcher> raw_matcher_, normalized_matcher_;
  size_t vocab_size_ = 0;
  int32_t bos_id_ = -1, eos_id_ = -1;
  std::string bos_token_, eos_token_;
  std::vector<int32_t> stop_ids_;
  std::string chat_template_;
  std::vector<std::pair<std::string, std::string>> named_templates_;
};

/// Turns ids into text one at a time for streaming. Text is released only once it is
/// complete UTF-8; a token that ends inside a multi-byte character is held back until
/// the character is complete. Not thread-safe; one per sequence.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = false);
  /// Adds one id; returns the text that became final (often "", never partial UTF-8).
  std::string Push(int32_t id);
  /// Returns what is still held back (incomplete bytes become U+FFFD) and resets.
  std::string Flush();
  /// How many of the ids pushed have not had their text released yet.
  size_t held() const { return ids_.size() - context_; }

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::vector<int32_t> ids_;  // context ids followed by ids not yet released
  size_t context_ = 0;        // how many leading ids_ were already released
  std::string context_text_;  // Decode of the context ids
};

}  // namespace meshlm
