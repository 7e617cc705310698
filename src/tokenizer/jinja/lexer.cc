// Lexer of the chat-template language: whitespace control, literals and operators.
#include <array>
#include <utility>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/value.h"
#include "tokenizer/unicode.h"

namespace meshlm::jinja {

namespace {

// Length of the whitespace code point at s[k], or 0.
size_t SpaceLen(std::string_view s, size_t k) {
  if (k >= s.size()) return 0;
  size_t p = k;
  return JsIsSpace(tok::NextCodePoint(s, &p)) ? p - k : 0;
}

// Drops transformers' "{% generation %}" and "{% endgeneration %}" markers, honouring
// "-" on either side for the whitespace around them, as the reference does.
std::string RemoveGenerationTags(const std::string& s) {
  if (s.find("generation") == std::string::npos) return s;
  std::string out;
  size_t copied = 0;  // s[0, copied) is in out
  for (size_t open = s.find("{%"); open != std::string::npos; open = s.find("{%", open + 2)) {
    size_t k = open + 2;
    const bool strip_before = k < s.size() && s[k] == '-';
    if (strip_before) ++k;
    while (size_t n = SpaceLen(s, k)) k += n;
    if (s.compare(k, 3, "end") == 0) k += 3;
    if (s.compare(k, 10, "generation") != 0) continue;
    k += 10;
    while (size_t n = SpaceLen(s, k)) k += n;
    const bool strip_after = k < s.size() && s[k] == '-';
    if (strip_after) ++k;
    if (s.compare(k, 2, "%}") != 0) continue;
    k += 2;
    // Whitespace before the tag (not reaching into what was already copied).
    size_t ws_begin = open;
    while (ws_begin > copied) {
      size_t b = ws_begin - 1;
      while (b > copied && (static_cast<uint8_t>(s[b]) & 0xC0) == 0x80) --b;
      if (SpaceLen(s, b) != ws_begin - b) break;
      ws_begin = b;
    }
    size_t ws_end = k;
    while (size_t n = SpaceLen(s, ws_end)) ws_end += n;
    out.append(s, copied, ws_begin - copied);
    if (!strip_before) out.append(s, ws_begin, open - ws_begin);
    if (!strip_after) out.append(s, k, ws_end - k);
    copied = ws_end;
    open = ws_end - 2;  // the next search starts at ws_end
  }
  out.append(s, copied, std::string::npos);
  return out;
}

// lstrip_blocks, trim_blocks and the removal of one final newline, as the reference
// applies them to the source before lexing.
std::string Preprocess(std::string_view src) {
  if (src.ends_with('\n')) src.remove_suffix(1);
  std::string a;
  a.reserve(src.size());
  // lstrip_blocks: spaces and tabs between a line start and "{%", "{#" or "{-" go.
  size_t line_start = 0;
  for (size_t k = 0; k <= src.size(); ++k) {
    if (k < src.size() && src[k] != '\n' && src[k] != '\r') continue;
    const std::string_view line = src.substr(line_start, k - line_start);
    size_t w = 0;
    while (w < line.size() && (line[w] == ' ' || line[w] == '\t')) ++w;
    if (w + 1 < line.size() && line[w] == '{' &&
        (line[w + 1] == '%' || line[w + 1] == '#' || line[w + 1] == '-')) {
      a.append(line.substr(w));
    } else {
      a.append(line);
    }
    if (k < src.size()) a.push_back(src[k]);
    line_start = k + 1;
  }
  // trim_blocks: the newline right after "%}", "#}" or "-}" goes.
  std::string b;
  b.reserve(a.size());
  for (size_t k = 0; k < a.size(); ++k) {
    b.push_back(a[k]);
    if (a[k] == '}' && k > 0 && (a[k - 1] == '%' || a[k - 1] == '#' || a[k - 1] == '-') &&
        k + 1 < a.size() && a[k + 1] == '\n') {
      ++k;
    }
  }
  return RemoveGenerationTags(b);
}

bool IsDigitChar(char c) { return c >= '0' && c <= '9'; }
bool IsWordChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || IsDigitChar(c) || c == '_';
}

class Lexer {
 public:
  explicit Lexer(std::string src) : src_(std::move(src)) {}

  Result<std::vector<Token>> Run() {
    try {
      Loop();
    } catch (const TemplateError& e) {
      return Error("[chat_template] near line {}: {}", line_, e.message);
    }
    return std::move(tokens_);
  }

 private:
  char At(size_t k) const { return k < src_.size() ? src_[k] : '\0'; }
  bool StartsWith(std::string_view s) const { return src_.compare(pos_, s.size(), s) == 0; }
  void Push(Tok t, std::string v) { tokens_.push_back({t, std::move(v), line_}); }
  void Advance(size_t n) {
    for (size_t k = 0; k < n && pos_ < src_.size(); ++k) {
      if (src_[pos_++] == '\n') ++line_;
    }
  }
  bool SpaceAt(size_t k) const {
    if (k >= src_.size()) return false;
    size_t p = k;
    return JsIsSpace(tok::NextCodePoint(src_, &p));
  }
  void SkipSpaces() {
    while (SpaceAt(pos_)) Advance(tok::Utf8SeqLen(static_cast<uint8_t>(src_[pos_])));
  }
  void StripTrailingSpaceOfLastText() {
    if (tokens_.empty() || tokens_.back().type != Tok::kText) return;
    tokens_.back().value = JsTrim(tokens_.back().value, false, true);
    if (tokens_.back().value.empty()) tokens_.pop_back();
  }

  // Body of a string literal up to `quote`, with escapes.
  std::string StringBody(char quote) {
    std::string out;
    while (true) {
      if (pos_ >= src_.size()) throw TemplateError{"unterminated string literal"};
      const char c = src_[pos_];
      if (c == quote) break;
      if (c != '\\') {
        out.push_back(c);
        Advance(1);
        continue;
      }
      Advance(1);
      if (pos_ >= src_.size()) throw TemplateError{"unexpected end of input after '\\'"};
      const char e = src_[pos_];
      Advance(1);
      if (e == 'x' || e == 'u') {
        const size_t len = e == 'x' ? 2 : 4;
        uint32_t cp = 0;
        for (size_t k = 0; k < len; ++k) {
          const char h = At(pos_ + k);
          const int d = IsDigitChar(h)           ? h - '0'
                        : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                        : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                                 : -1;
          if (d < 0) throw TemplateError{std::string("invalid escape sequence \\") + e};
          cp = cp * 16 + d;
        }
        Advance(len);
        // Lone surrogates cannot be UTF-8; they become U+FFFD.
        tok::AppendUtf8(cp >= 0xD800 && cp <= 0xDFFF ? 0xFFFD : cp, &out);
        continue;
      }
      static constexpr std::array<std::pair<char, char>, 9> kEscapes = {{{'n', '\n'},
                                                                         {'t', '\t'},
                                                                         {'r', '\r'},
                                                                         {'b', '\b'},
                                                                         {'f', '\f'},
                                                                         {'v', '\v'},
                                                                         {'\'', '\''},
                                                                         {'"', '"'},
                                                                         {'\\', '\\'}}};
      bool found = false;
      for (const auto& [k, v] : kEscapes) {
        if (k == e) {
          out.push_back(v);
          found = true;
        }
      }
      if (!found) throw TemplateError{std::string("unexpected escaped character: ") + e};
    }
    Advance(1);  // closing quote
    return out;
  }

  std::string Digits() {
    std::string out;
    while (IsDigitChar(At(pos_))) {
      out.push_back(src_[pos_]);
      Advance(1);
    }
    return out;
  }

  void Loop() {
    while (pos_ < src_.size()) {
      const Tok last = tokens_.empty() ? Tok::kCloseStatement : tokens_.back().type;
      if (tokens_.empty() || last == Tok::kCloseStatement || last == Tok::kCloseExpression ||
          last == Tok::kComment) {
        const size_t begin = pos_;
        while (pos_ < src_.size() &&
               !(src_[pos_] == '{' &&
                 (At(pos_ + 1) == '%' || At(pos_ + 1) == '{' || At(pos_ + 1) == '#'))) {
          Advance(1);
        }
        if (pos_ > begin) {
          tokens_.push_back({Tok::kText, src_.substr(begin, pos_ - begin), line_});
          continue;
        }
      }
      if (StartsWith("{#")) {
        Advance(2);
        const bool strip_before = At(pos_) == '-';
        if (strip_before) Advance(1);
        const size_t end = src_.find("#}", pos_);
        if (end == std::string::npos) throw TemplateError{"missing end of comment tag '#}'"};
        std::string comment = src_.substr(pos_, end - pos_);
        const bool strip_after = comment.ends_with('-');
        if (strip_before) StripTrailingSpaceOfLastText();
        Advance(end + 2 - pos_);
        Push(Tok::kComment, std::move(comment));
        if (strip_after) SkipSpaces();
        continue;
      }
      if (StartsWith("{%-")) {
        StripTrailingSpaceOfLastText();
        Push(Tok::kOpenStatement, "{%");
        Advance(3);
        continue;
      }
      if (StartsWith("{{-")) {
        StripTrailingSpaceOfLastText();
        Push(Tok::kOpenExpression, "{{");
        curly_depth_ = 0;
        Advance(3);
        continue;
      }
      SkipSpaces();
      if (pos_ >= src_.size()) break;
      if (StartsWith("-%}")) {
        Push(Tok::kCloseStatement, "%}");
        Advance(3);
        SkipSpaces();
        continue;
      }
      if (StartsWith("-}}")) {
        Push(Tok::kCloseExpression, "}}");
        Advance(3);
        SkipSpaces();
        continue;
      }
      const char c = src_[pos_];
      if (c == '-' || c == '+') {
        if (tokens_.empty() || last == Tok::kText) {
          throw TemplateError{std::string("unexpected character: ") + c};
        }
        if (last != Tok::kIdent && last != Tok::kNumber && last != Tok::kString &&
            last != Tok::kCloseParen && last != Tok::kCloseSquare) {
          Advance(1);
          std::string num = Digits();
          if (!num.empty() && At(pos_) == '.' && IsDigitChar(At(pos_ + 1))) {
            Advance(1);
            num += "." + Digits();
          }
          Push(num.empty() ? Tok::kUnary : Tok::kNumber, std::string(1, c) + num);
          continue;
        }
      }
      if (MatchOperator()) continue;
      if (c == '\'' || c == '"') {
        Advance(1);
        Push(Tok::kString, StringBody(c));
        continue;
      }
      if (IsDigitChar(c)) {
        std::string num = Digits();
        if (last != Tok::kDot && At(pos_) == '.' && IsDigitChar(At(pos_ + 1))) {
          Advance(1);
          num += "." + Digits();
        }
        Push(Tok::kNumber, std::move(num));
        continue;
      }
      if (IsWordChar(c)) {
        const size_t begin = pos_;
        while (IsWordChar(At(pos_))) Advance(1);
        Push(Tok::kIdent, src_.substr(begin, pos_ - begin));
        continue;
      }
      throw TemplateError{std::string("unexpected character: ") + c};
    }
  }

  bool MatchOperator() {
    static constexpr std::array<std::pair<std::string_view, Tok>, 29> kTable = {{
        {"{%", Tok::kOpenStatement},  {"%}", Tok::kCloseStatement},
        {"{{", Tok::kOpenExpression}, {"}}", Tok::kCloseExpression},
        {"(", Tok::kOpenParen},       {")", Tok::kCloseParen},
        {"{", Tok::kOpenCurly},       {"}", Tok::kCloseCurly},
        {"[", Tok::kOpenSquare},      {"]", Tok::kCloseSquare},
        {",", Tok::kComma},           {".", Tok::kDot},
        {":", Tok::kColon},           {"|", Tok::kPipe},
        {"<=", Tok::kComparison},     {">=", Tok::kComparison},
        {"==", Tok::kComparison},     {"!=", Tok::kComparison},
        {"<", Tok::kComparison},      {">", Tok::kComparison},
        {"+", Tok::kAdditive},        {"-", Tok::kAdditive},
        {"~", Tok::kAdditive},        {"**", Tok::kPower},
        {"*", Tok::kMultiplicative},  {"//", Tok::kMultiplicative},
        {"/", Tok::kMultiplicative},  {"%", Tok::kMultiplicative},
        {"=", Tok::kEquals},
    }};
    for (const auto& [seq, type] : kTable) {
      if (seq == "}}" && curly_depth_ > 0) continue;
      if (!StartsWith(seq)) continue;
      Push(type, std::string(seq));
      if (type == Tok::kOpenExpression) {
        curly_depth_ = 0;
      } else if (type == Tok::kOpenCurly) {
        ++curly_depth_;
      } else if (type == Tok::kCloseCurly) {
        --curly_depth_;
      }
      Advance(seq.size());
      return true;
    }
    return false;
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  int curly_depth_ = 0;
  std::vector<Token> tokens_;
};

}  // namespace

Result<std::vector<Token>> Tokenize(std::string_view source) {
  if (tok::FindInvalidUtf8(source) != std::string_view::npos) {
    return Error("[chat_template] template is not valid UTF-8");
  }
  return Lexer(Preprocess(source)).Run();
}

}  // namespace meshlm::jinja
