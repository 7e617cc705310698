// Value printing, JSON, equality and truthiness for the chat-template interpreter.
#include "tokenizer/jinja/value.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "tokenizer/unicode.h"

namespace meshlm::jinja {

using tok::NextCodePoint;

const char* KindName(Value::Kind kind) {
  switch (kind) {
    case Value::Kind::kUndefined:
      return "UndefinedValue";
    case Value::Kind::kNone:
      return "NullValue";
    case Value::Kind::kBool:
      return "BooleanValue";
    case Value::Kind::kInt:
      return "IntegerValue";
    case Value::Kind::kFloat:
      return "FloatValue";
    case Value::Kind::kString:
      return "StringValue";
    case Value::Kind::kArray:
      return "ArrayValue";
    case Value::Kind::kObject:
      return "ObjectValue";
    case Value::Kind::kNamespace:
      return "NamespaceValue";
    case Value::Kind::kFunction:
      return "FunctionValue";
  }
  return "?";
}

const Value* Find(const Object& o, std::string_view key) {
  for (const auto& [k, v] : o) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Put(Object& o, const std::string& key, Value v) {
  for (auto& [k, old] : o) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  o.emplace_back(key, std::move(v));
}

bool Truthy(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return false;
    case Value::Kind::kBool:
      return v.b;
    case Value::Kind::kInt:
      return v.i != 0;
    case Value::Kind::kFloat:
      return v.f != 0 && !std::isnan(v.f);
    case Value::Kind::kString:
      return !v.s->empty();
    case Value::Kind::kArray:
      return !v.arr->empty();
    case Value::Kind::kObject:
      return !v.obj->empty();
    case Value::Kind::kNamespace:
    case Value::Kind::kFunction:
      return true;
  }
  return false;
}

namespace {

bool IsNumeric(const Value& v) {
  return v.kind == Value::Kind::kInt || v.kind == Value::Kind::kFloat ||
         v.kind == Value::Kind::kBool;
}
double NumericOf(const Value& v) {
  return v.kind == Value::Kind::kBool ? (v.b ? 1 : 0) : v.number();
}

}  // namespace

bool LooseEquals(const Value& a, const Value& b) {
  const bool a_nullish = a.is_undefined() || a.is_none();
  const bool b_nullish = b.is_undefined() || b.is_none();
  if (a_nullish || b_nullish) return a_nullish && b_nullish;
  if (IsNumeric(a) && IsNumeric(b)) return NumericOf(a) == NumericOf(b);
  if (a.is_string() && b.is_string()) return a.str() == b.str();
  if (a.is_string() && IsNumeric(b)) {
    // JavaScript converts the string to a number; only plain decimal forms are handled.
    char* end = nullptr;
    const double d = std::strtod(a.str().c_str(), &end);
    return end != a.str().c_str() && *end == '\0' && d == NumericOf(b);
  }
  if (b.is_string() && IsNumeric(a)) return LooseEquals(b, a);
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Value::Kind::kArray:
      return a.arr == b.arr;
    case Value::Kind::kObject:
    case Value::Kind::kNamespace:
      return a.obj == b.obj;
    case Value::Kind::kFunction:
      return a.fn == b.fn;
    default:
      return false;
  }
}

bool StrictEquals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return a.number() == b.number();
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kBool:
      return a.b == b.b;
    case Value::Kind::kString:
      return a.str() == b.str();
    default:
      return LooseEquals(a, b);
  }
}

std::string JsNumber(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  if (v == 0) return "0";
  // Shortest round-trip digits, then JavaScript's choice between fixed and exponent form.
  char buf[64];
  const auto res =
      std::to_chars(buf, buf + sizeof(buf), std::fabs(v), std::chars_format::scientific);
  const std::string sci(buf, res.ptr);
  const size_t e = sci.find('e');
  std::string digits;
  for (size_t k = 0; k < e; ++k) {
    if (sci[k] != '.') digits += sci[k];
  }
  const int exp10 = std::stoi(sci.substr(e + 1));
  const int k = static_cast<int>(digits.size());
  const int n = exp10 + 1;  // position of the decimal point
  std::string out = v < 0 ? "-" : "";
  if (k <= n && n <= 21) {
    out += digits + std::string(n - k, '0');
  } else if (0 < n && n <= 21) {
    out += digits.substr(0, n) + "." + digits.substr(n);
  } else if (-6 < n && n <= 0) {
    out += "0." + std::string(-n, '0') + digits;
  } else {
    out += digits.substr(0, 1);
    if (k > 1) out += "." + digits.substr(1);
    out += fmt::format("e{}{}", n - 1 >= 0 ? "+" : "-", std::abs(n - 1));
  }
  return out;
}

std::string ToString(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kUndefined:
      return "undefined";
    case Value::Kind::kNone:
      return "null";
    case Value::Kind::kBool:
      return v.b ? "true" : "false";
    case Value::Kind::kInt:
      return fmt::format("{}", v.i);
    case Value::Kind::kFloat:
      if (v.f == 0 && std::signbit(v.f)) return "-0.0";
      if (std::isfinite(v.f) && v.f == std::floor(v.f) && std::fabs(v.f) < 1e21) {
        return fmt::format("{:.1f}", v.f);
      }
      return JsNumber(v.f);
    case Value::Kind::kString:
      return v.str();
    case Value::Kind::kArray:
    case Value::Kind::kObject:
    case Value::Kind::kNamespace:
      return ToJson(v, JsonOptions{}, false);
    case Value::Kind::kFunction:
      return "function";
  }
  return "";
}

namespace {

// JSON.stringify's escaping of a string; ensure_ascii escapes everything above 0x7E as
// UTF-16 units, as the reference does.
void JsonString(std::string_view s, bool ensure_ascii, std::string* out) {
  out->push_back('"');
  for (size_t pos = 0; pos < s.size();) {
    const char32_t c = NextCodePoint(s, &pos);
    switch (c) {
      case '"':
        *out += "\\\"";
        continue;
      case '\\':
        *out += "\\\\";
        continue;
      case '\b':
        *out += "\\b";
        continue;
      case '\f':
        *out += "\\f";
        continue;
      case '\n':
        *out += "\\n";
        continue;
      case '\r':
        *out += "\\r";
        continue;
      case '\t':
        *out += "\\t";
        continue;
      default:
        break;
    }
    if (c < 0x20) {
      *out += fmt::format("\\u{:04x}", static_cast<uint32_t>(c));
    } else if (ensure_ascii && c >= 0x7F) {
      if (c >= 0x10000) {
        const char32_t u = c - 0x10000;
        *out += fmt::format("\\u{:04x}\\u{:04x}", 0xD800 + (u >> 10), 0xDC00 + (u & 0x3FF));
      } else {
        *out += fmt::format("\\u{:04x}", static_cast<uint32_t>(c));
      }
    } else {
      tok::AppendUtf8(c, out);
    }
  }
  out->push_back('"');
}

void JsonValue(const Value& v, const JsonOptions& o, int depth, bool undefined_as_null,
               std::string* out) {
  switch (v.kind) {
    case Value::Kind::kNone:
      *out += "null";
      return;
    case Value::Kind::kUndefined:
      *out += undefined_as_null ? "null" : "undefined";
      return;
    case Value::Kind::kBool:
      *out += v.b ? "true" : "false";
      return;
    case Value::Kind::kInt:
      *out += fmt::format("{}", v.i);
      return;
    case Value::Kind::kFloat:
      *out += std::isfinite(v.f) ? JsNumber(v.f) : "null";
      return;
    case Value::Kind::kString:
      JsonString(v.str(), o.ensure_ascii, out);
      return;
    case Value::Kind::kFunction:
      throw TemplateError{"Cannot convert to JSON: FunctionValue"};
    default:
      break;
  }
  const bool indent = o.indent > 0;
  const std::string item_sep = !o.item_separator.empty() ? o.item_separator : indent ? "," : ", ";
  const std::string key_sep = !o.key_separator.empty() ? o.key_separator : ": ";
  const std::string child_pad = indent ? "\n" + std::string((depth + 1) * o.indent, ' ') : "";
  const std::string base_pad = indent ? "\n" + std::string(depth * o.indent, ' ') : "";
  if (v.kind == Value::Kind::kArray) {
    if (v.arr->empty()) {
      *out += "[]";
      return;
    }
    *out += '[';
    for (size_t k = 0; k < v.arr->size(); ++k) {
      *out += k == 0 ? child_pad : item_sep + child_pad;
      JsonValue((*v.arr)[k], o, depth + 1, undefined_as_null, out);
    }
    *out += base_pad + "]";
    return;
  }
  std::vector<const std::pair<std::string, Value>*> entries;
  for (const auto& e : *v.obj) entries.push_back(&e);
  if (o.sort_keys) {
    std::stable_sort(entries.begin(), entries.end(),
                     [](const auto* a, const auto* b) { return a->first < b->first; });
  }
  if (entries.empty()) {
    *out += "{}";
    return;
  }
  *out += '{';
  for (size_t k = 0; k < entries.size(); ++k) {
    if (k > 0) *out += item_sep;
    *out += child_pad;
    JsonString(entries[k]->first, o.ensure_ascii, out);
    *out += key_sep;
    JsonValue(entries[k]->second, o, depth + 1, undefined_as_null, out);
  }
  *out += base_pad + "}";
}

}  // namespace

std::string ToJson(const Value& v, const JsonOptions& options, bool undefined_as_null) {
  std::string out;
  JsonValue(v, options, 0, undefined_as_null, &out);
  return out;
}

Value FromJson(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::None();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::Bool(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::Int(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned:
      return Value::Int(static_cast<int64_t>(j.get<uint64_t>()));
    case nlohmann::ordered_json::value_t::number_float: {
      const double d = j.get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9007199254740992.0) {
        return Value::Int(static_cast<int64_t>(d));
      }
      return Value::Float(d);
    }
    case nlohmann::ordered_json::value_t::string:
      return Value::Str(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      Array a;
      a.reserve(j.size());
      for (const auto& e : j) a.push_back(FromJson(e));
      return Value::MakeArray(std::move(a));
    }
    case nlohmann::ordered_json::value_t::object: {
      Object o;
      o.reserve(j.size());
      for (const auto& [k, e] : j.items()) o.emplace_back(k, FromJson(e));
      return Value::MakeObject(std::move(o));
    }
    default:
      return Value();
  }
}

int64_t Utf16Length(std::string_view s) {
  int64_t n = 0;
  for (size_t pos = 0; pos < s.size();) n += NextCodePoint(s, &pos) >= 0x10000 ? 2 : 1;
  return n;
}

bool JsIsSpace(char32_t c) {
  switch (c) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
    case 0xFEFF:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

std::string JsTrim(std::string_view s, bool left, bool right) {
  size_t begin = 0, end = s.size();
  if (left) {
    while (begin < end) {
      size_t p = begin;
      if (!JsIsSpace(NextCodePoint(s, &p))) break;
      begin = p;
    }
  }
  if (right) {
    while (end > begin) {
      size_t b = end - 1;
      while (b > begin && (static_cast<uint8_t>(s[b]) & 0xC0) == 0x80) --b;
      size_t p = b;
      if (!JsIsSpace(NextCodePoint(s, &p))) break;
      end = b;
    }
  }
  return std::string(s.substr(begin, end - begin));
}

}  // namespace meshlm::jinja
