// Normalizers of tokenizer.json: NFC, NFKC, NFD, NFKD, Prepend, Replace, Strip, Sequence.
#include <string_view>

#include "tokenizer/pipeline.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace meshlm::tok {

using nlohmann::json;

Result<std::string> GetString(const json& j, const char* key, const std::string& field) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_string()) {
    return Error("[tokenizer] {}.{}: expected a string", field, key);
  }
  return it->get<std::string>();
}

Result<std::string> GetPattern(const json& j, const std::string& field) {
  const auto it = j.find("pattern");
  if (it == j.end() || !it->is_object()) {
    return Error("[tokenizer] {}.pattern: expected {{\"String\": ...}} or {{\"Regex\": ...}}",
                 field);
  }
  if (it->contains("String")) {
    MESHLM_ASSIGN_OR_RETURN(std::string s, GetString(*it, "String", field + ".pattern"));
    return RegexEscape(s);
  }
  return GetString(*it, "Regex", field + ".pattern");
}

namespace {

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormalForm form) : form_(form) {}
  Status Normalize(std::string* text) const override {
    MESHLM_ASSIGN_OR_RETURN(*text, tok::Normalize(*text, form_));
    return OkStatus();
  }

 private:
  NormalForm form_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  Status Normalize(std::string* text) const override {
    if (!text->empty()) text->insert(0, prefix_);
    return OkStatus();
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(std::unique_ptr<Regex> re, std::string content)
      : re_(std::move(re)), content_(std::move(content)) {}
  Status Normalize(std::string* text) const override {
    std::vector<std::pair<size_t, size_t>> m;
    re_->FindAll(*text, &m);
    if (m.empty()) return OkStatus();
    std::string out;
    out.reserve(text->size() + m.size() * content_.size());
    size_t prev = 0;
    for (const auto& [b, e] : m) {
      out.append(*text, prev, b - prev);
      out += content_;
      prev = e;
    }
    out.append(*text, prev, std::string::npos);
    *text = std::move(out);
    return OkStatus();
  }

 private:
  std::unique_ptr<Regex> re_;
  std::string content_;
};

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  Status Normalize(std::string* text) const override {
    size_t begin = 0, end = text->size();
    if (left_) {
      while (begin < end) {
        size_t p = begin;
        if (!IsWhitespace(NextCodePoint(*text, &p))) break;
        begin = p;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<uint8_t>((*text)[start]) & 0xC0) == 0x80) --start;
        size_t p = start;
        if (!IsWhitespace(NextCodePoint(*text, &p))) break;
        end = start;
      }
    }
    *text = text->substr(begin, end - begin);
    return OkStatus();
  }

 private:
  bool left_, right_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  Status Normalize(std::string* text) const override {
    for (const auto& p : parts_) MESHLM_RETURN_IF_ERROR(p->Normalize(text));
    return OkStatus();
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

Result<std::unique_ptr<Normalizer>> MakeNormalizer(const json& j, const std::string& field) {
  if (j.is_null()) return std::unique_ptr<Normalizer>();
  if (!j.is_object()) return Error("[tokenizer] {}: expected an object or null", field);
  MESHLM_ASSIGN_OR_RETURN(const std::string type, GetString(j, "type", field));
  std::unique_ptr<Normalizer> n;
  if (type == "NFC") {
    n = std::make_unique<UnicodeNormalizer>(NormalForm::kNfc);
  } else if (type == "NFKC") {
    n = std::make_unique<UnicodeNormalizer>(NormalForm::kNfkc);
  } else if (type == "NFD") {
    n = std::make_unique<UnicodeNormalizer>(NormalForm::kNfd);
  } else if (type == "NFKD") {
    n = std::make_unique<UnicodeNormalizer>(NormalForm::kNfkd);
  } else if (type == "Prepend") {
    MESHLM_ASSIGN_OR_RETURN(std::string prefix, GetString(j, "prepend", field));
    n = std::make_unique<PrependNormalizer>(std::move(prefix));
  } else if (type == "Replace") {
    MESHLM_ASSIGN_OR_RETURN(const std::string pattern, GetPattern(j, field));
    MESHLM_ASSIGN_OR_RETURN(std::string content, GetString(j, "content", field));
    MESHLM_ASSIGN_OR_RETURN(auto re, Regex::Compile(pattern));
    n = std::make_unique<ReplaceNormalizer>(std::move(re), std::move(content));
  } else if (type == "Strip") {
    n = std::make_unique<StripNormalizer>(j.value("strip_left", true),
                                          j.value("strip_right", true));
  } else if (type == "Sequence") {
    const auto it = j.find("normalizers");
    if (it == j.end() || !it->is_array()) {
      return Error("[tokenizer] {}.normalizers: expected an array", field);
    }
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (size_t i = 0; i < it->size(); ++i) {
      MESHLM_ASSIGN_OR_RETURN(
          auto p, MakeNormalizer((*it)[i], fmt::format("{}.normalizers[{}]", field, i)));
      if (p) parts.push_back(std::move(p));
    }
    n = std::make_unique<SequenceNormalizer>(std::move(parts));
  } else {
    return Error("[tokenizer] {}: normalizer type '{}' is not supported", field, type);
  }
  return n;
}

}  // namespace meshlm::tok
