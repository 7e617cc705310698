// Pre-tokenizers of tokenizer.json: ByteLevel, Split, Metaspace, Digits, Sequence.
#include <string_view>

#include "tokenizer/pipeline.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace meshlm::tok {

using nlohmann::json;

namespace {

// GPT-2's split pattern, used by ByteLevel when use_regex is set.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct Span {
  size_t begin, end;
  bool is_match;
};

// Covers `size` bytes with the matches and the gaps between them.
std::vector<Span> Cover(size_t size, const std::vector<std::pair<size_t, size_t>>& matches,
                        bool invert) {
  std::vector<Span> spans;
  size_t prev = 0;
  for (const auto& [b, e] : matches) {
    if (b > prev) spans.push_back({prev, b, invert});
    spans.push_back({b, e, !invert});
    prev = e;
  }
  if (prev < size) spans.push_back({prev, size, invert});
  return spans;
}

// Applies a split behaviour; returns the kept spans.
std::vector<Span> ApplyBehavior(std::vector<Span> spans, Behavior behavior) {
  std::vector<Span> out;
  bool previous_match = false;
  switch (behavior) {
    case Behavior::kIsolated:
      return spans;
    case Behavior::kRemoved:
      for (const Span& s : spans) {
        if (!s.is_match) out.push_back(s);
      }
      return out;
    case Behavior::kMergedWithPrevious:
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.is_match;
      }
      return out;
    case Behavior::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back(*it);
        }
        previous_match = it->is_match;
      }
      return {out.rbegin(), out.rend()};
    case Behavior::kContiguous:
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.is_match;
      }
      return out;
  }
  return out;
}

// Splits every piece at the ranges that `find` reports.
template <typename Find>
void SplitPieces(std::vector<Piece>* pieces, Behavior behavior, bool invert, Find find) {
  std::vector<Piece> out;
  out.reserve(pieces->size() * 2);
  std::vector<std::pair<size_t, size_t>> matches;
  for (Piece& p : *pieces) {
    find(p.text, &matches);
    bool first = true;
    for (const Span& s : ApplyBehavior(Cover(p.text.size(), matches, invert), behavior)) {
      if (s.end == s.begin) continue;
      out.push_back(
          {p.text.substr(s.begin, s.end - s.begin), p.at_origin && first && s.begin == 0});
      first = false;
    }
  }
  *pieces = std::move(out);
}

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(std::unique_ptr<Regex> re, Behavior behavior, bool invert)
      : re_(std::move(re)), behavior_(behavior), invert_(invert) {}
  void Split(std::vector<Piece>* pieces) const override {
    SplitPieces(pieces, behavior_, invert_,
                [&](const std::string& t, auto* m) { re_->FindAll(t, m); });
  }

 private:
  std::unique_ptr<Regex> re_;
  Behavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::unique_ptr<Regex> re)
      : add_prefix_space_(add_prefix_space), re_(std::move(re)) {}
  void Split(std::vector<Piece>* pieces) const override {
    if (add_prefix_space_) {
      for (Piece& p : *pieces) {
        if (!p.text.starts_with(' ')) p.text.insert(0, " ");
      }
    }
    if (re_) {
      SplitPieces(pieces, Behavior::kIsolated, false,
                  [&](const std::string& t, auto* m) { re_->FindAll(t, m); });
    }
    std::string mapped;
    for (Piece& p : *pieces) {
      mapped.clear();
      for (const char c : p.text) AppendUtf8(ByteToUnicode(static_cast<uint8_t>(c)), &mapped);
      p.text.swap(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> re_;
};

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  enum class Prepend { kAlways, kFirst, kNever };
  MetaspacePreTokenizer(std::string replacement, Prepend prepend, bool split)
      : replacement_(std::move(replacement)), prepend_(prepend), split_(split) {}
  void Split(std::vector<Piece>* pieces) const override {
    for (Piece& p : *pieces) {
      std::string out;
      for (const char c : p.text) {
        if (c == ' ') {
          out += replacement_;
        } else {
          out += c;
        }
      }
      const bool want =
          prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && p.at_origin);
      if (want && !out.starts_with(replacement_)) out.insert(0, replacement_);
      p.text = std::move(out);
    }
    if (!split_) return;
    SplitPieces(pieces, Behavior::kMergedWithNext, false, [&](const std::string& t, auto* m) {
      m->clear();
      for (size_t pos = t.find(replacement_); pos != std::string::npos;
           pos = t.find(replacement_, pos + replacement_.size())) {
        m->emplace_back(pos, pos + replacement_.size());
      }
    });
  }

 private:
  std::string replacement_;
  Prepend prepend_;
  bool split_;
};

class DigitsPreTokenizer final : public PreTokenizer {
 public:
  explicit DigitsPreTokenizer(bool individual) : individual_(individual) {}
  void Split(std::vector<Piece>* pieces) const override {
    SplitPieces(pieces, individual_ ? Behavior::kIsolated : Behavior::kContiguous, false,
                [](const std::string& t, auto* m) {
                  m->clear();
                  for (size_t pos = 0; pos < t.size();) {
                    const size_t begin = pos;
                    if (IsDigit(NextCodePoint(t, &pos))) m->emplace_back(begin, pos);
                  }
                });
  }

 private:
  bool individual_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}
  void Split(std::vector<Piece>* pieces) const override {
    for (const auto& p : parts_) p->Split(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

Result<Behavior> ParseBehavior(const json& j, const std::string& field) {
  MESHLM_ASSIGN_OR_RETURN(const std::string b, GetString(j, "behavior", field));
  if (b == "Removed") return Behavior::kRemoved;
  if (b == "Isolated") return Behavior::kIsolated;
  if (b == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::kMergedWithNext;
  if (b == "Contiguous") return Behavior::kContiguous;
  return Error("[tokenizer] {}.behavior: unknown split behavior '{}'", field, b);
}

}  // namespace

Result<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const json& j, const std::string& field) {
  if (j.is_null()) return std::unique_ptr<PreTokenizer>();
  if (!j.is_object()) return Error("[tokenizer] {}: expected an object or null", field);
  MESHLM_ASSIGN_OR_RETURN(const std::string type, GetString(j, "type", field));
  std::unique_ptr<PreTokenizer> p;
  if (type == "ByteLevel") {
    std::unique_ptr<Regex> re;
    if (j.value("use_regex", true)) {
      MESHLM_ASSIGN_OR_RETURN(re, Regex::Compile(kGpt2Pattern));
    }
    p = std::make_unique<ByteLevelPreTokenizer>(j.value("add_prefix_space", true), std::move(re));
  } else if (type == "Split") {
    MESHLM_ASSIGN_OR_RETURN(const std::string pattern, GetPattern(j, field));
    MESHLM_ASSIGN_OR_RETURN(auto re, Regex::Compile(pattern));
    MESHLM_ASSIGN_OR_RETURN(const Behavior behavior, ParseBehavior(j, field));
    p = std::make_unique<SplitPreTokenizer>(std::move(re), behavior, j.value("invert", false));
  } else if (type == "Metaspace") {
    MESHLM_ASSIGN_OR_RETURN(std::string replacement, GetString(j, "replacement", field));
    auto scheme = MetaspacePreTokenizer::Prepend::kAlways;
    if (j.contains("prepend_scheme")) {
      MESHLM_ASSIGN_OR_RETURN(const std::string s, GetString(j, "prepend_scheme", field));
      if (s == "first") {
        scheme = MetaspacePreTokenizer::Prepend::kFirst;
      } else if (s == "never") {
        scheme = MetaspacePreTokenizer::Prepend::kNever;
      } else if (s != "always") {
        return Error("[tokenizer] {}.prepend_scheme: unknown value '{}'", field, s);
      }
    } else if (!j.value("add_prefix_space", true)) {
      scheme = MetaspacePreTokenizer::Prepend::kNever;
    }
    p = std::make_unique<MetaspacePreTokenizer>(std::move(replacement), scheme,
                                                j.value("split", true));
  } else if (type == "Digits") {
    p = std::make_unique<DigitsPreTokenizer>(j.value("individual_digits", false));
  } else if (type == "Sequence") {
    const auto it = j.find("pretokenizers");
    if (it == j.end() || !it->is_array()) {
      return Error("[tokenizer] {}.pretokenizers: expected an array", field);
    }
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (size_t i = 0; i < it->size(); ++i) {
      MESHLM_ASSIGN_OR_RETURN(
          auto part, MakePreTokenizer((*it)[i], fmt::format("{}.pretokenizers[{}]", field, i)));
      if (part) parts.push_back(std::move(part));
    }
    p = std::make_unique<SequencePreTokenizer>(std::move(parts));
  } else {
    return Error("[tokenizer] {}: pre_tokenizer type '{}' is not supported", field, type);
  }
  return p;
}

}  // namespace meshlm::tok
