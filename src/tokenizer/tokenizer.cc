// Tokenizer: the encode pipeline (added tokens, normalizer, pre-tokenizer, BPE,
// post-processor), decoding, the streaming decoder and the pieces of ids.
#include "tokenizer/tokenizer.h"

#include <cctype>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/unicode.h"

namespace meshlm {

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

Result<std::vector<int32_t>> Tokenizer::Encode(std::string_view text, bool add_special) const {
  const size_t bad = tok::FindInvalidUtf8(text);
  if (bad != std::string_view::npos) {
    return Error("[tokenizer] input is not valid UTF-8 at byte {} of {}", bad, text.size());
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<tok::Segment> segments;
  raw_matcher_->Split(text, added_, &segments);
  for (const tok::Segment& s : segments) {
    if (s.token >= 0) {
      ids.push_back(added_[s.token].id);
    } else {
      MESHLM_RETURN_IF_ERROR(
          EncodeSegment(text.substr(s.begin, s.end - s.begin), s.begin == 0, &ids));
    }
  }
  if (add_special && post_processor_) post_processor_->Process(&ids);
  return ids;
}

Status Tokenizer::EncodeSegment(std::string_view text, bool at_origin,
                                std::vector<int32_t>* ids) const {
  std::string normalized(text);
  if (normalizer_) MESHLM_RETURN_IF_ERROR(normalizer_->Normalize(&normalized));
  std::vector<tok::Segment> segments;
  normalized_matcher_->Split(normalized, added_, &segments);
  std::vector<tok::Piece> pieces;
  for (const tok::Segment& s : segments) {
    if (s.token >= 0) {
      ids->push_back(added_[s.token].id);
      continue;
    }
    pieces.clear();
    pieces.push_back({normalized.substr(s.begin, s.end - s.begin), at_origin && s.begin == 0});
    if (pre_tokenizer_) pre_tokenizer_->Split(&pieces);
    for (const tok::Piece& p : pieces) model_->Tokenize(p.text, ids);
  }
  return OkStatus();
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= vocab_size_) continue;
    if (skip_special && IsSpecial(id)) continue;
    tokens.push_back(IdToToken(id));
  }
  if (!decoder_) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) out += ' ';
      out += tokens[i];
    }
    return out;
  }
  decoder_->DecodeChain(&tokens);
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

const std::string& Tokenizer::IdToToken(int32_t id) const {
  if (id >= 0 && static_cast<size_t>(id) < added_index_.size() && added_index_[id] >= 0) {
    return added_[added_index_[id]].content;
  }
  return model_->IdToToken(id);
}

int32_t Tokenizer::TokenToId(std::string_view token) const {
  const auto it = added_by_content_.find(std::string(token));
  return it != added_by_content_.end() ? it->second : model_->TokenToId(token);
}

bool Tokenizer::IsSpecial(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < added_index_.size() && added_index_[id] >= 0 &&
         added_[added_index_[id]].special;
}

std::string Tokenizer::NamedChatTemplate(std::string_view name) const {
  for (const auto& [n, t] : named_templates_) {
    if (n == name) return t;
  }
  return "";
}

namespace {

// A run of tokens that never completes a character (corrupt output) is released
// after this many ids rather than held forever.
constexpr size_t kMaxHeldIds = 16;

bool EndsWithReplacement(const std::string& s) { return s.ends_with("\xEF\xBF\xBD"); }

}  // namespace

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(tokenizer), skip_special_(skip_special) {}

std::string StreamDecoder::Push(int32_t id) {
  ids_.push_back(id);
  std::string text = tokenizer_.Decode(ids_, skip_special_);
  // Decode turns a truncated character into U+FFFD: hold such a tail back.
  if (EndsWithReplacement(text) && ids_.size() - context_ < kMaxHeldIds) return "";
  std::string out;
  if (text.size() > context_text_.size() && text.starts_with(context_text_)) {
    out = text.substr(context_text_.size());
  } else if (!text.starts_with(context_text_)) {
    out = text.substr(std::min(text.size(), context_text_.size()));
  }
  // The ids just released become the context of the next ones, so that decoders that
  // treat the first token specially (Metaspace, Strip) see a continuation.
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(context_));
  context_ = ids_.size();
  context_text_ = tokenizer_.Decode(ids_, skip_special_);
  return out;
}

std::string StreamDecoder::Flush() {
  const std::string text = tokenizer_.Decode(ids_, skip_special_);
  std::string out = text.size() > context_text_.size() ? text.substr(context_text_.size()) : "";
  ids_.clear();
  context_ = 0;
  context_text_.clear();
  return out;
}

namespace {

// The bytes a vocabulary entry stands for when its decoder maps tokens to bytes: a
// byte-fallback token ("<0xE2>") or GPT-2's byte alphabet ("Ġ" is a space); else the
// entry itself. Only a guess at what the decoder does: Pieces checks it.
std::string TokenBytes(const std::string& token) {
  if (token.size() == 6 && token.starts_with("<0x") && token.back() == '>' &&
      std::isxdigit(static_cast<unsigned char>(token[3])) &&
      std::isxdigit(static_cast<unsigned char>(token[4]))) {
    return std::string(1, static_cast<char>(std::stoi(token.substr(3, 2), nullptr, 16)));
  }
  std::string bytes;
  for (size_t pos = 0; pos < token.size();) {
    const int b = tok::UnicodeToByte(tok::NextCodePoint(token, &pos));
    if (b < 0) return token;
    bytes.push_back(static_cast<char>(b));
  }
  return bytes;
}

// `s` with each run of U+FFFD as one: decoders differ in how many an invalid run gives
// (one per maximal subpart for ByteLevel, one per byte for ByteFallback).
std::string CollapseReplacements(std::string_view s) {
  constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  while (!s.empty()) {
    if (s.starts_with(kReplacement)) {
      if (!std::string_view(out).ends_with(kReplacement)) out += kReplacement;
      s.remove_prefix(kReplacement.size());
    } else {
      out += s.front();
      s.remove_prefix(1);
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> Tokenizer::Pieces(std::span<const int32_t> ids) const {
  std::vector<std::string> pieces(ids.size());
  // The stream decoder releases text once it is complete UTF-8, in context: a text
  // released by one id is that id's piece; one released by a run of ids (a character
  // split across them) is shared out by the bytes each id stands for.
  StreamDecoder stream(*this);
  size_t first = 0;  // first id whose text has not come out yet
  auto settle = [&](size_t end, std::string text) {
    if (end - first == 1) {
      pieces[first] = std::move(text);
    } else {
      std::vector<std::string> bytes;
      std::string joined;
      for (size_t i = first; i < end; ++i) {
        const bool known = ids[i] >= 0 && static_cast<size_t>(ids[i]) < vocab_size_;
        bytes.push_back(known ? TokenBytes(IdToToken(ids[i])) : "");
        joined += bytes.back();
      }
      std::string lossy;
      tok::AppendUtf8Lossy(joined, &lossy);
      if (CollapseReplacements(lossy) == CollapseReplacements(text)) {
        for (size_t i = first; i < end; ++i) pieces[i] = std::move(bytes[i - first]);
      } else {
        // A decoder that does more than map tokens to bytes: the id that completed the
        // text carries it all, so that the pieces still add up.
        pieces[end - 1] = std::move(text);
      }
    }
    first = end;
  };
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string text = stream.Push(ids[i]);
    // An id may release nothing without being held (a first "▁" that Strip removes).
    if (stream.held() == 0) settle(i + 1, std::move(text));
  }
  if (first < ids.size()) settle(ids.size(), stream.Flush());
  return pieces;
}

std::vector<std::string> Tokenizer::TokenByteTable() const {
  constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::vector<std::string> table(vocab_size_);
  std::vector<std::string> chain;
  for (size_t id = 0; id < vocab_size_; ++id) {
    const std::string& token = IdToToken(static_cast<int32_t>(id));
    if (token.empty() || IsSpecial(static_cast<int32_t>(id))) continue;
    if (token.size() == 6 && token.starts_with("<0x") && token.back() == '>') {
      table[id] = TokenBytes(token);  // a byte-fallback token: its one byte
      continue;
    }
    // After a plain "a", so that a decoder stripping the text's first space leaves it.
    chain = {"a", token};
    if (decoder_) decoder_->DecodeChain(&chain);
    std::string text;
    for (const std::string& c : chain) text += c;
    if (!text.starts_with("a")) {
      table[id] = token;
      continue;
    }
    text.erase(0, 1);
    // A piece of a character decodes to U+FFFD: take the bytes the token stands for.
    if (text.find(kReplacement) != std::string::npos &&
        token.find(kReplacement) == std::string::npos) {
      text = TokenBytes(token);
    }
    table[id] = std::move(text);
  }
  return table;
}

}  // namespace meshlm
