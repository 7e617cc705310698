// Tests and methods (string and mapping) of the chat-template language, and the helpers
// the filters share with them, with the behaviour of @huggingface/jinja where it differs
// from Python's Jinja (for example strip() ignores its argument and trims all whitespace).
#include "tokenizer/jinja/builtins.h"

#include <fmt/format.h>
#include <unicode/locid.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <cmath>

#include "tokenizer/jinja/interp.h"
#include "tokenizer/unicode.h"

namespace meshlm::jinja {

namespace {

[[noreturn]] void Fail(std::string message) { throw TemplateError{std::move(message)}; }

std::string CaseMap(const std::string& s, bool upper) {
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(s);
  if (upper) {
    u.toUpper(icu::Locale::getRoot());
  } else {
    u.toLower(icu::Locale::getRoot());
  }
  std::string out;
  u.toUTF8String(out);
  return out;
}

bool IsAsciiWord(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// The reference's title(): upper-cases each ASCII word character that starts a word.
std::string Title(const std::string& s) {
  std::string out = s;
  for (size_t k = 0; k < out.size(); ++k) {
    const bool starts = IsAsciiWord(out[k]) && (k == 0 || !IsAsciiWord(out[k - 1]));
    if (starts && out[k] >= 'a' && out[k] <= 'z') out[k] = static_cast<char>(out[k] - 32);
  }
  return out;
}

std::string Replace(const std::string& s, const std::string& from, const std::string& to,
                    int64_t count) {
  if (count == 0) return s;
  std::string out;
  int64_t left = count < 0 ? INT64_MAX : count;
  if (from.empty()) {
    // An empty pattern matches before every code point and at the end.
    size_t pos = 0;
    while (pos <= s.size()) {
      if (left > 0) {
        out += to;
        --left;
      }
      if (pos == s.size()) break;
      const size_t b = pos;
      tok::NextCodePoint(s, &pos);
      out.append(s, b, pos - b);
    }
    return out;
  }
  size_t prev = 0;
  for (size_t pos = s.find(from); pos != std::string::npos && left > 0; pos = s.find(from, prev)) {
    out.append(s, prev, pos - prev);
    out += to;
    prev = pos + from.size();
    --left;
  }
  out.append(s, prev, std::string::npos);
  return out;
}

}  // namespace

std::vector<std::string> SplitAll(const std::string& s, const std::string& sep) {
  std::vector<std::string> parts;
  size_t prev = 0;
  for (size_t pos = s.find(sep); pos != std::string::npos; pos = s.find(sep, prev)) {
    parts.push_back(s.substr(prev, pos - prev));
    prev = pos + sep.size();
  }
  parts.push_back(s.substr(prev));
  return parts;
}

std::string Join(const Array& items, const std::string& sep) {
  std::string out;
  for (size_t k = 0; k < items.size(); ++k) {
    if (k) out += sep;
    const Value& v = items[k];
    if (!v.is_none() && !v.is_undefined()) out += ToString(v);
  }
  return out;
}

const Value* Arg(const Array& args, size_t k, const Kwargs& kwargs, const char* name) {
  if (k < args.size()) return &args[k];
  for (const auto& [n, v] : kwargs) {
    if (n == name) return &v;
  }
  return nullptr;
}

int Compare(const Value& a, const Value& b, bool case_sensitive) {
  auto numeric = [](const Value& v) { return v.is_number() || v.kind == Value::Kind::kBool; };
  auto num = [](const Value& v) {
    return v.kind == Value::Kind::kBool ? (v.b ? 1.0 : 0.0) : v.number();
  };
  if (a.is_none() && b.is_none()) return 0;
  if (a.is_undefined() && b.is_undefined()) return 0;
  if (numeric(a) && numeric(b)) return num(a) < num(b) ? -1 : num(a) > num(b) ? 1 : 0;
  if (a.is_string() && b.is_string()) {
    const std::string x = case_sensitive ? a.str() : CaseMap(a.str(), false);
    const std::string y = case_sensitive ? b.str() : CaseMap(b.str(), false);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  Fail(fmt::format("Cannot compare {} with {}", KindName(a.kind), KindName(b.kind)));
}

Value AttributePath(const Value& item, const std::string& path) {
  Value v = item;
  for (const std::string& part : SplitAll(path, ".")) {
    if (v.is_container()) {
      const Value* f = Find(*v.obj, part);
      v = f ? *f : Value();
    } else if (v.is_array()) {
      char* end = nullptr;
      const long k = std::strtol(part.c_str(), &end, 10);
      if (end == part.c_str() || k < 0 || static_cast<size_t>(k) >= v.arr->size()) return Value();
      v = (*v.arr)[k];
    } else {
      return Value();
    }
  }
  return v;
}
Value StringMethod(const std::string& s, const std::string& name, Array& args, Kwargs& kwargs) {
  if (name == "upper") return Value::Str(CaseMap(s, true));
  if (name == "lower") return Value::Str(CaseMap(s, false));
  if (name == "strip") return Value::Str(JsTrim(s, true, true));
  if (name == "lstrip") return Value::Str(JsTrim(s, true, false));
  if (name == "rstrip") return Value::Str(JsTrim(s, false, true));
  if (name == "title") return Value::Str(Title(s));
  if (name == "capitalize") {
    if (s.empty()) return Value::Str("");
    size_t pos = 0;
    tok::NextCodePoint(s, &pos);
    return Value::Str(CaseMap(s.substr(0, pos), true) + s.substr(pos));
  }
  if (name == "startswith" || name == "endswith") {
    if (args.empty()) Fail(name + "() requires at least one argument");
    auto test = [&](const std::string& p) {
      return name == "startswith" ? s.starts_with(p) : s.ends_with(p);
    };
    if (args[0].is_string()) return Value::Bool(test(args[0].str()));
    if (args[0].is_array()) {
      for (const Value& p : *args[0].arr) {
        if (!p.is_string()) Fail(name + "() tuple elements must be strings");
        if (test(p.str())) return Value::Bool(true);
      }
      return Value::Bool(false);
    }
    Fail(name + "() argument must be a string or tuple of strings");
  }
  if (name == "split") {
    const Value* sep = Arg(args, 0, kwargs, "sep");
    const Value* maxsplit_v = Arg(args, 1, kwargs, "maxsplit");
    const int64_t maxsplit =
        maxsplit_v && maxsplit_v->kind == Value::Kind::kInt ? maxsplit_v->i : -1;
    Array out;
    if (!sep || sep->is_none()) {
      // Runs of whitespace separate; leading whitespace is ignored.
      const std::string text = JsTrim(s, true, false);
      size_t pos = 0;
      while (pos < text.size()) {
        size_t b = pos;
        while (b < text.size()) {
          size_t p = b;
          if (!JsIsSpace(tok::NextCodePoint(text, &p))) break;
          b = p;
        }
        if (b >= text.size()) break;
        if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
          out.push_back(Value::Str(text.substr(b)));
          break;
        }
        size_t e = b;
        while (e < text.size()) {
          size_t p = e;
          if (JsIsSpace(tok::NextCodePoint(text, &p))) break;
          e = p;
        }
        out.push_back(Value::Str(text.substr(b, e - b)));
        pos = e;
      }
      return Value::MakeArray(std::move(out));
    }
    if (!sep->is_string()) Fail("sep argument must be a string or null");
    if (sep->str().empty()) Fail("empty separator");
    std::vector<std::string> parts = SplitAll(s, sep->str());
    if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) > maxsplit) {
      std::vector<std::string> head(parts.begin(), parts.begin() + maxsplit);
      std::string rest;
      for (size_t k = maxsplit; k < parts.size(); ++k)
        rest += (k > static_cast<size_t>(maxsplit) ? sep->str() : "") + parts[k];
      head.push_back(rest);
      parts = std::move(head);
    }
    for (auto& p : parts) out.push_back(Value::Str(std::move(p)));
    return Value::MakeArray(std::move(out));
  }
  if (name == "replace") {
    if (args.size() < 2) Fail("replace() requires at least two arguments");
    if (!args[0].is_string() || !args[1].is_string()) Fail("replace() arguments must be strings");
    const Value* count = Arg(args, 2, kwargs, "count");
    if (count && !count->is_none() && count->kind != Value::Kind::kInt) {
      Fail("replace() count argument must be a number or null");
    }
    return Value::Str(Replace(s, args[0].str(), args[1].str(),
                              count && count->kind == Value::Kind::kInt ? count->i : -1));
  }
  Fail("unknown string method " + name);
}

Value Items(const Value& o) {
  Array out;
  for (const auto& [k, v] : *o.obj) out.push_back(Value::MakeArray({Value::Str(k), v}));
  return Value::MakeArray(std::move(out));
}

Value ObjectMethod(const Value& o, const std::string& name, Array& args, Kwargs& kwargs) {
  if (name == "items") return Items(o);
  if (name == "keys" || name == "values") {
    Array out;
    for (const auto& [k, v] : *o.obj) out.push_back(name == "keys" ? Value::Str(k) : v);
    return Value::MakeArray(std::move(out));
  }
  if (name == "get") {
    if (args.empty() || !args[0].is_string()) Fail("Object key must be a string");
    if (const Value* v = Find(*o.obj, args[0].str())) return *v;
    return args.size() > 1 ? args[1] : Value::None();
  }
  if (name == "dictsort") {
    const Value* cs = Arg(args, 0, kwargs, "case_sensitive");
    const Value* by = Arg(args, 1, kwargs, "by");
    const Value* rev = Arg(args, 2, kwargs, "reverse");
    const bool case_sensitive = cs && cs->kind == Value::Kind::kBool && cs->b;
    const bool by_value = by && by->is_string() && by->str() == "value";
    const bool reverse = rev && rev->kind == Value::Kind::kBool && rev->b;
    Array items = *Items(o).arr;
    std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
      const int r = Compare((*a.arr)[by_value], (*b.arr)[by_value], case_sensitive);
      return reverse ? r > 0 : r < 0;
    });
    return Value::MakeArray(std::move(items));
  }
  Fail("unknown mapping method " + name);
}
Value Interpreter::Builtin(const Value& object, const std::string& name) {
  if (object.is_string()) {
    if (name == "length") return Value::Int(Utf16Length(object.str()));
    static const char* kMethods[] = {"upper",    "lower", "strip",      "lstrip",
                                     "rstrip",   "title", "capitalize", "startswith",
                                     "endswith", "split", "replace"};
    for (const char* m : kMethods) {
      if (name == m) {
        const auto s = object.s;
        return Value::MakeFunction([s, name](Interpreter&, Array& args, Kwargs& kwargs, Env&) {
          return StringMethod(*s, name, args, kwargs);
        });
      }
    }
    return Value();
  }
  if (object.is_array()) {
    return name == "length" ? Value::Int(static_cast<int64_t>(object.arr->size())) : Value();
  }
  if (object.is_object()) {
    static const char* kMethods[] = {"get", "items", "keys", "values", "dictsort"};
    for (const char* m : kMethods) {
      if (name == m) {
        return Value::MakeFunction([object, name](Interpreter&, Array& args, Kwargs& kwargs, Env&) {
          return ObjectMethod(object, name, args, kwargs);
        });
      }
    }
  }
  return Value();
}

bool Interpreter::RunTest(const std::string& name, const Value& v, const Value* arg) {
  using K = Value::Kind;
  if (name == "boolean") return v.kind == K::kBool;
  if (name == "callable") return v.kind == K::kFunction;
  if (name == "odd" || name == "even") {
    if (v.kind != K::kInt) Fail(fmt::format("cannot {} on {}", name, KindName(v.kind)));
    return (v.i % 2 != 0) == (name == "odd");
  }
  if (name == "false") return v.kind == K::kBool && !v.b;
  if (name == "true") return v.kind == K::kBool && v.b;
  if (name == "none") return v.kind == K::kNone;
  if (name == "string") return v.kind == K::kString;
  if (name == "number") return v.is_number();
  if (name == "integer") return v.kind == K::kInt;
  if (name == "iterable") return v.kind == K::kArray || v.kind == K::kString;
  if (name == "mapping") return v.kind == K::kObject;
  if (name == "sequence")
    return v.kind == K::kArray || v.kind == K::kObject || v.kind == K::kString;
  if (name == "lower") return v.is_string() && v.str() == CaseMap(v.str(), false);
  if (name == "upper") return v.is_string() && v.str() == CaseMap(v.str(), true);
  if (name == "defined") return v.kind != K::kUndefined;
  if (name == "undefined") return v.kind == K::kUndefined;
  if (name == "equalto" || name == "eq") return StrictEquals(v, arg ? *arg : Value());
  Fail("Unknown test: " + name);
}

}  // namespace meshlm::jinja
