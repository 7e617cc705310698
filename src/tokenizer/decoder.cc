// Decoders of tokenizer.json: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip,
// Sequence. Each follows the token-list semantics of Hugging Face's decode_chain.
#include <string_view>

#include "tokenizer/pipeline.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace meshlm::tok {

using nlohmann::json;

namespace {

class ByteLevelDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string bytes;
    for (const std::string& t : *tokens) {
      // A token outside the byte alphabet (an added token such as "<｜User｜>") is kept
      // as its own UTF-8 bytes.
      const size_t mark = bytes.size();
      bool all_mapped = true;
      for (size_t pos = 0; pos < t.size();) {
        const int b = UnicodeToByte(NextCodePoint(t, &pos));
        if (b < 0) {
          all_mapped = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
      }
      if (!all_mapped) {
        bytes.resize(mark);
        bytes += t;
      }
    }
    std::string text;
    AppendUtf8Lossy(bytes, &text);
    tokens->assign(1, std::move(text));
  }
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(char32_t replacement, bool strip_first)
      : replacement_(replacement), strip_first_(strip_first) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      const std::string& t = (*tokens)[i];
      std::string out;
      for (size_t pos = 0; pos < t.size();) {
        const char32_t c = NextCodePoint(t, &pos);
        if (c != replacement_) {
          AppendUtf8(c, &out);
        } else if (!(i == 0 && strip_first_)) {
          out += ' ';
        }
      }
      (*tokens)[i] = std::move(out);
    }
  }

 private:
  char32_t replacement_;
  bool strip_first_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(std::unique_ptr<Regex> re, std::string content)
      : re_(std::move(re)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::pair<size_t, size_t>> m;
    for (std::string& t : *tokens) {
      re_->FindAll(t, &m);
      if (m.empty()) continue;
      std::string out;
      size_t prev = 0;
      for (const auto& [b, e] : m) {
        out.append(t, prev, b - prev);
        out += content_;
        prev = e;
      }
      out.append(t, prev, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  std::unique_ptr<Regex> re_;
  std::string content_;
};

// "<0xAB>" -> 0xAB, or -1.
int ParseByteToken(std::string_view t) {
  if (t.size() != 6 || !t.starts_with("<0x") || t[5] != '>') return -1;
  int v = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = t[i];
    v <<= 4;
    if (c >= '0' && c <= '9') {
      v |= c - '0';
    } else if (c >= 'A' && c <= 'F') {
      v |= c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      v |= c - 'a' + 10;
    } else {
      return -1;
    }
  }
  return v;
}

class ByteFallbackDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (FindInvalidUtf8(pending) == std::string::npos) {
        out.push_back(pending);
      } else {
        // Invalid bytes give one U+FFFD each, not one per maximal subpart.
        for (size_t i = 0; i < pending.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
    };
    for (std::string& t : *tokens) {
      const int b = ParseByteToken(t);
      if (b >= 0) {
        pending.push_back(static_cast<char>(b));
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    *tokens = std::move(out);
  }
};

class FuseDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string all;
    for (const std::string& t : *tokens) all += t;
    tokens->assign(1, std::move(all));
  }
};

class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop)
      : content_(content), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& t : *tokens) {
      std::vector<size_t> starts;  // byte offset of each code point
      for (size_t pos = 0; pos < t.size();) {
        starts.push_back(pos);
        NextCodePoint(t, &pos);
      }
      auto at = [&](size_t i) {
        size_t p = starts[i];
        return NextCodePoint(t, &p);
      };
      size_t cut_start = 0, cut_stop = 0;
      while (cut_start < start_ && cut_start < starts.size() && at(cut_start) == content_) {
        ++cut_start;
      }
      while (cut_stop < stop_ && cut_stop < starts.size() &&
             at(starts.size() - 1 - cut_stop) == content_) {
        ++cut_stop;
      }
      if (cut_start + cut_stop >= starts.size()) {
        t.clear();
        continue;
      }
      const size_t b = starts[cut_start];
      const size_t e = cut_stop == 0 ? t.size() : starts[starts.size() - cut_stop];
      t = t.substr(b, e - b);
    }
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts)
      : parts_(std::move(parts)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (const auto& p : parts_) p->DecodeChain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

Result<char32_t> GetChar(const json& j, const char* key, const std::string& field) {
  MESHLM_ASSIGN_OR_RETURN(const std::string s, GetString(j, key, field));
  if (s.empty() || FindInvalidUtf8(s) != std::string::npos) {
    return Error("[tokenizer] {}.{}: expected one character", field, key);
  }
  size_t pos = 0;
  const char32_t c = NextCodePoint(s, &pos);
  if (pos != s.size())
    return Error("[tokenizer] {}.{}: expected one character, got '{}'", field, key, s);
  return c;
}

}  // namespace

Result<std::unique_ptr<Decoder>> MakeDecoder(const json& j, const std::string& field) {
  if (j.is_null()) return std::unique_ptr<Decoder>();
  if (!j.is_object()) return Error("[tokenizer] {}: expected an object or null", field);
  MESHLM_ASSIGN_OR_RETURN(const std::string type, GetString(j, "type", field));
  std::unique_ptr<Decoder> d;
  if (type == "ByteLevel") {
    d = std::make_unique<ByteLevelDecoder>();
  } else if (type == "Metaspace") {
    MESHLM_ASSIGN_OR_RETURN(const char32_t c, GetChar(j, "replacement", field));
    bool strip_first = j.value("add_prefix_space", true);
    if (j.contains("prepend_scheme")) strip_first = j.value("prepend_scheme", "") != "never";
    d = std::make_unique<MetaspaceDecoder>(c, strip_first);
  } else if (type == "Replace") {
    MESHLM_ASSIGN_OR_RETURN(const std::string pattern, GetPattern(j, field));
    MESHLM_ASSIGN_OR_RETURN(std::string content, GetString(j, "content", field));
    MESHLM_ASSIGN_OR_RETURN(auto re, Regex::Compile(pattern));
    d = std::make_unique<ReplaceDecoder>(std::move(re), std::move(content));
  } else if (type == "ByteFallback") {
    d = std::make_unique<ByteFallbackDecoder>();
  } else if (type == "Fuse") {
    d = std::make_unique<FuseDecoder>();
  } else if (type == "Strip") {
    MESHLM_ASSIGN_OR_RETURN(const char32_t c, GetChar(j, "content", field));
    const int64_t start = j.value("start", int64_t{0}), stop = j.value("stop", int64_t{0});
    if (start < 0 || stop < 0) return Error("[tokenizer] {}: start/stop must be >= 0", field);
    d = std::make_unique<StripDecoder>(c, static_cast<size_t>(start), static_cast<size_t>(stop));
  } else if (type == "Sequence") {
    const auto it = j.find("decoders");
    if (it == j.end() || !it->is_array()) {
      return Error("[tokenizer] {}.decoders: expected an array", field);
    }
    std::vector<std::unique_ptr<Decoder>> parts;
    for (size_t i = 0; i < it->size(); ++i) {
      MESHLM_ASSIGN_OR_RETURN(auto part,
                              MakeDecoder((*it)[i], fmt::format("{}.decoders[{}]", field, i)));
      if (part) parts.push_back(std::move(part));
    }
    d = std::make_unique<SequenceDecoder>(std::move(parts));
  } else {
    return Error("[tokenizer] {}: decoder type '{}' is not supported", field, type);
  }
  return d;
}

}  // namespace meshlm::tok
