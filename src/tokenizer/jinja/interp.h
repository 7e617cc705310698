// The chat-template interpreter: evaluates the syntax tree of ast.h with the
// semantics of @huggingface/jinja (scoping, operators, filters, tests, methods).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/value.h"

namespace meshlm::jinja {

/// One scope. A for loop, a macro call and a filtered selection open a child scope;
/// `set` writes to the scope it runs in.
struct Env {
  explicit Env(Env* parent_env = nullptr) : parent(parent_env) {}
  Env* parent;
  std::unordered_map<std::string, Value> vars;

  Value Lookup(const std::string& name) const {
    for (const Env* e = this; e; e = e->parent) {
      const auto it = e->vars.find(name);
      if (it != e->vars.end()) return it->second;
    }
    return Value();
  }
  void Set(const std::string& name, Value v) { vars[name] = std::move(v); }
};

class Interpreter {
 public:
  /// `now_unix` is the instant strftime_now() formats (local time).
  explicit Interpreter(int64_t now_unix) : now_unix_(now_unix) {}

  /// Installs the globals (namespace, range, raise_exception, strftime_now, true...).
  void AddGlobals(Env& env);
  /// Renders a whole template (throws TemplateError, also for a stray break/continue).
  std::string Render(const NodeList& program, Env& env);
  /// Renders statements to text (throws TemplateError).
  std::string Block(const NodeList& body, Env& env);
  Value Eval(const Node& n, Env& env);

  // Builtins: filters.cc (filters), builtins.cc (tests, methods).
  Value ApplyFilter(Value operand, const Node& filter, Env& env);
  Value ApplyFilterNamed(Value operand, const std::string& name, Array& args, Kwargs& kwargs);
  static bool RunTest(const std::string& name, const Value& v, const Value* arg);
  /// Attribute `name` of a value that is not a mapping entry: string and object
  /// methods, `length`. Undefined when there is none.
  static Value Builtin(const Value& object, const std::string& name);

 private:
  Value Binary(const Node& n, Env& env);
  Value Member(const Node& n, Env& env);
  Value Call(const Node& n, Env& env);
  Value For(const Node& n, Env& env);
  Value Set(const Node& n, Env& env);
  Value Macro(const Node& n, Env& env);
  void EvalArgs(const NodeList& list, Env& env, Array* args, Kwargs* kwargs);
  void Step();

  int64_t now_unix_;
  int64_t steps_ = 0;
  int call_depth_ = 0;
  size_t output_bytes_ = 0;
};

/// Python-style slice of n items: indices for start:stop:step (missing = nullptr).
std::vector<int64_t> SliceIndices(int64_t n, const Value& start, const Value& stop,
                                  const Value& step);
std::string Strftime(int64_t now_unix, std::string_view format);

}  // namespace meshlm::jinja
