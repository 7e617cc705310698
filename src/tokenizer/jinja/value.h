// Values of the chat-template interpreter (a Jinja subset), with the semantics of
// @huggingface/jinja, the reference that chat templates are rendered against:
// JavaScript-style printing of numbers and booleans, Python-style JSON (", " and ": ").
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meshlm::jinja {

/// Thrown inside the interpreter for template errors; caught at the public API.
struct TemplateError {
  std::string message;
  bool raised = false;  // from raise_exception() in the template itself
};

class Interpreter;
struct Env;
struct Value;

using Array = std::vector<Value>;
// Insertion-ordered, as JavaScript's Map: printing and iteration keep the given order.
using Object = std::vector<std::pair<std::string, Value>>;
using Kwargs = std::vector<std::pair<std::string, Value>>;
using Function = std::function<Value(Interpreter&, Array& args, Kwargs& kwargs, Env& env)>;

struct Value {
  enum class Kind {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kArray,
    kObject,
    kNamespace,
    kFunction
  };
  Kind kind = Kind::kUndefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::shared_ptr<const std::string> s;
  std::shared_ptr<Array> arr;   // shared: JavaScript reference semantics
  std::shared_ptr<Object> obj;  // objects and namespaces
  std::shared_ptr<Function> fn;

  static Value None() { return Make(Kind::kNone); }
  static Value Bool(bool v) {
    Value x = Make(Kind::kBool);
    x.b = v;
    return x;
  }
  static Value Int(int64_t v) {
    Value x = Make(Kind::kInt);
    x.i = v;
    return x;
  }
  static Value Float(double v) {
    Value x = Make(Kind::kFloat);
    x.f = v;
    return x;
  }
  static Value Str(std::string v) {
    Value x = Make(Kind::kString);
    x.s = std::make_shared<const std::string>(std::move(v));
    return x;
  }
  static Value MakeArray(Array v = {}) {
    Value x = Make(Kind::kArray);
    x.arr = std::make_shared<Array>(std::move(v));
    return x;
  }
  static Value MakeObject(Object v = {}, Kind kind = Kind::kObject) {
    Value x = Make(kind);
    x.obj = std::make_shared<Object>(std::move(v));
    return x;
  }
  static Value MakeFunction(Function f) {
    Value x = Make(Kind::kFunction);
    x.fn = std::make_shared<Function>(std::move(f));
    return x;
  }

  bool is_undefined() const { return kind == Kind::kUndefined; }
  bool is_none() const { return kind == Kind::kNone; }
  bool is_string() const { return kind == Kind::kString; }
  bool is_number() const { return kind == Kind::kInt || kind == Kind::kFloat; }
  bool is_array() const { return kind == Kind::kArray; }
  bool is_object() const { return kind == Kind::kObject; }
  bool is_container() const { return kind == Kind::kObject || kind == Kind::kNamespace; }
  const std::string& str() const { return *s; }
  double number() const { return kind == Kind::kInt ? static_cast<double>(i) : f; }

 private:
  static Value Make(Kind k) {
    Value x;
    x.kind = k;
    return x;
  }
};

/// Name of a kind as the reference prints it in errors ("StringValue", ...).
const char* KindName(Value::Kind kind);
/// Looks a key up in an object; nullptr when absent.
const Value* Find(const Object& o, std::string_view key);
void Put(Object& o, const std::string& key, Value v);

bool Truthy(const Value& v);
/// JavaScript's loose ==, as the reference compares with it (objects by identity).
bool LooseEquals(const Value& a, const Value& b);
/// Strict equality of the "equalto" test.
bool StrictEquals(const Value& a, const Value& b);
/// Text of a value in output and in `~` / `+` concatenation.
std::string ToString(const Value& v);
/// JavaScript's Number.prototype.toString.
std::string JsNumber(double v);

struct JsonOptions {
  int indent = -1;  // < 0: one line
  bool ensure_ascii = false;
  bool sort_keys = false;
  std::string item_separator, key_separator;  // empty: the defaults for the indent
};
/// Python-style json.dumps, as the tojson filter. Undefined prints as null when
/// `undefined_as_null`, otherwise as "undefined".
std::string ToJson(const Value& v, const JsonOptions& options, bool undefined_as_null);

/// JSON data from the caller (messages, tools) into values. Numbers that are integral
/// become integers, as in JavaScript.
Value FromJson(const nlohmann::ordered_json& j);

/// JavaScript's String.prototype.length: UTF-16 code units.
int64_t Utf16Length(std::string_view s);
/// JavaScript's trim/trimStart/trimEnd whitespace set.
std::string JsTrim(std::string_view s, bool left, bool right);
bool JsIsSpace(char32_t c);

}  // namespace meshlm::jinja
