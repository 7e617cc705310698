// Evaluation of statements and expressions of the chat-template language.
#include "tokenizer/jinja/interp.h"

#include <fmt/format.h>

#include <cmath>
#include <ctime>

#include "tokenizer/unicode.h"

namespace meshlm::jinja {

namespace {

// Limits that keep a hostile or broken template from running forever or exhausting
// memory: evaluation steps, macro recursion, output size and range() length.
constexpr int64_t kMaxSteps = 50'000'000;
constexpr int kMaxCallDepth = 100;
constexpr size_t kMaxOutputBytes = 64u << 20;
constexpr int64_t kMaxRange = 1'000'000;

struct BreakSignal {};
struct ContinueSignal {};

[[noreturn]] void Fail(std::string message) { throw TemplateError{std::move(message)}; }

bool IsNumericLike(const Value& v) { return v.is_number() || v.kind == Value::Kind::kBool; }
double NumOf(const Value& v) { return v.kind == Value::Kind::kBool ? (v.b ? 1 : 0) : v.number(); }

Value NumberResult(double r, bool is_float) {
  if (is_float) return Value::Float(r);
  if (!std::isfinite(r) || std::fabs(r) > 9.2e18) return Value::Float(r);
  return Value::Int(static_cast<int64_t>(r));
}

}  // namespace

void Interpreter::Step() {
  if (++steps_ > kMaxSteps) Fail("template runs too long (step limit reached)");
}

void Interpreter::AddGlobals(Env& env) {
  env.Set("true", Value::Bool(true));
  env.Set("false", Value::Bool(false));
  env.Set("none", Value::None());
  env.Set("True", Value::Bool(true));
  env.Set("False", Value::Bool(false));
  env.Set("None", Value::None());
  env.Set("raise_exception",
          Value::MakeFunction([](Interpreter&, Array& args, Kwargs&, Env&) -> Value {
            std::string message;
            for (size_t k = 0; k < args.size(); ++k) message += (k ? "," : "") + ToString(args[k]);
            throw TemplateError{message, true};
          }));
  env.Set("range", Value::MakeFunction([](Interpreter&, Array& args, Kwargs&, Env&) -> Value {
            if (args.empty() || args.size() > 3) Fail("range() takes 1 to 3 arguments");
            for (const Value& a : args) {
              if (a.kind != Value::Kind::kInt) Fail("range() arguments must be integers");
            }
            int64_t start = 0, stop, step = 1;
            if (args.size() == 1) {
              stop = args[0].i;
            } else {
              start = args[0].i;
              stop = args[1].i;
              if (args.size() == 3) step = args[2].i;
            }
            if (step == 0) Fail("range() step must not be zero");
            Array out;
            for (int64_t v = start; step > 0 ? v < stop : v > stop; v += step) {
              if (static_cast<int64_t>(out.size()) >= kMaxRange) Fail("range() is too long");
              out.push_back(Value::Int(v));
            }
            return Value::MakeArray(std::move(out));
          }));
  env.Set("strftime_now",
          Value::MakeFunction([](Interpreter& in, Array& args, Kwargs&, Env&) -> Value {
            if (args.empty() || !args[0].is_string()) Fail("strftime_now() needs a format string");
            return Value::Str(Strftime(in.now_unix_, args[0].str()));
          }));
  env.Set("namespace",
          Value::MakeFunction([](Interpreter&, Array& args, Kwargs& kwargs, Env&) -> Value {
            if (args.size() > 1)
              Fail(fmt::format("namespace expected at most 1 argument, got {}", args.size()));
            Object entries;
            if (args.size() == 1) {
              if (args[0].is_object()) {
                entries = *args[0].obj;
              } else {
                Fail(fmt::format("'{}' object is not iterable", KindName(args[0].kind)));
              }
            }
            for (auto& [k, v] : kwargs) Put(entries, k, v);
            return Value::MakeObject(std::move(entries), Value::Kind::kNamespace);
          }));
}

std::string Interpreter::Render(const NodeList& program, Env& env) {
  try {
    return Block(program, env);
  } catch (const BreakSignal&) {
    Fail("'break' outside a loop");
  } catch (const ContinueSignal&) {
    Fail("'continue' outside a loop");
  }
}

std::string Interpreter::Block(const NodeList& body, Env& env) {
  std::string out;
  for (const NodePtr& stmt : body) {
    const Value v = Eval(*stmt, env);
    if (v.is_none() || v.is_undefined()) continue;
    if (v.is_string()) {
      out += v.str();
    } else {
      out += ToString(v);
    }
    if (out.size() > kMaxOutputBytes) Fail("template output is too large");
  }
  return out;
}

Value Interpreter::Eval(const Node& n, Env& env) {
  Step();
  switch (n.kind) {
    case Node::Kind::kText:
      return Value::Str(n.s);
    case Node::Kind::kInt:
      return Value::Int(n.i);
    case Node::Kind::kFloat:
      return Value::Float(n.f);
    case Node::Kind::kString:
      return Value::Str(n.s);
    case Node::Kind::kIdent:
      return env.Lookup(n.s);
    case Node::Kind::kArray:
    case Node::Kind::kTuple: {
      Array a;
      for (const NodePtr& e : n.list) a.push_back(Eval(*e, env));
      return Value::MakeArray(std::move(a));
    }
    case Node::Kind::kObject: {
      Object o;
      for (size_t k = 0; k + 1 < n.list.size(); k += 2) {
        const Value key = Eval(*n.list[k], env);
        if (!key.is_string())
          Fail(fmt::format("Object keys must be strings: got {}", KindName(key.kind)));
        Put(o, key.str(), Eval(*n.list[k + 1], env));
      }
      return Value::MakeObject(std::move(o));
    }
    case Node::Kind::kMember:
      return Member(n, env);
    case Node::Kind::kCall:
      return Call(n, env);
    case Node::Kind::kBinary:
      return Binary(n, env);
    case Node::Kind::kUnary: {
      const Value v = Eval(*n.a, env);
      if (n.s == "not") return Value::Bool(!Truthy(v));
      if (!IsNumericLike(v))
        Fail(fmt::format("Unknown operator \"{}\" for {}", n.s, KindName(v.kind)));
      const double r = (n.s == "-" ? -1 : 1) * NumOf(v);
      return NumberResult(r, v.kind == Value::Kind::kFloat);
    }
    case Node::Kind::kFilter:
      return ApplyFilter(Eval(*n.a, env), n, env);
    case Node::Kind::kTest: {
      const bool r = RunTest(n.s, Eval(*n.a, env), nullptr);
      return Value::Bool(n.flag ? !r : r);
    }
    case Node::Kind::kTernary:
      return Truthy(Eval(*n.a, env)) ? Eval(*n.b, env) : Eval(*n.c, env);
    case Node::Kind::kSelect:
      return Truthy(Eval(*n.b, env)) ? Eval(*n.a, env) : Value();
    case Node::Kind::kIf:
      return Value::Str(Block(Truthy(Eval(*n.a, env)) ? n.body : n.alt, env));
    case Node::Kind::kFor:
      return For(n, env);
    case Node::Kind::kSet:
      return Set(n, env);
    case Node::Kind::kMacro:
      return Macro(n, env);
    case Node::Kind::kBreak:
      throw BreakSignal{};
    case Node::Kind::kContinue:
      throw ContinueSignal{};
    case Node::Kind::kFilterBlock:
      return ApplyFilter(Value::Str(Block(n.body, env)), n, env);
    case Node::Kind::kSlice:
    case Node::Kind::kKwarg:
      Fail("unexpected slice or keyword argument");
  }
  return Value();
}

Value Interpreter::Binary(const Node& n, Env& env) {
  const Value l = Eval(*n.a, env);
  const std::string& op = n.s;
  if (op == "and") return Truthy(l) ? Eval(*n.b, env) : l;
  if (op == "or") return Truthy(l) ? l : Eval(*n.b, env);
  const Value r = Eval(*n.b, env);
  if (op == "==") return Value::Bool(LooseEquals(l, r));
  if (op == "!=") return Value::Bool(!LooseEquals(l, r));
  if (l.is_undefined() || r.is_undefined()) {
    if (r.is_undefined() && (op == "in" || op == "not in")) return Value::Bool(op == "not in");
    Fail(fmt::format("Cannot perform operation {} on undefined values", op));
  }
  if (l.is_none() || r.is_none()) Fail("Cannot perform operation on null values");
  if (op == "~") return Value::Str(ToString(l) + ToString(r));
  if (op == "**" && IsNumericLike(l) && IsNumericLike(r)) {
    const double a = NumOf(l), b = NumOf(r);
    if (a == 0 && b < 0) Fail("0.0 cannot be raised to a negative power");
    const double res = std::pow(a, b);
    if (!std::isfinite(res)) Fail("Exponentiation result is not a finite real number");
    return NumberResult(res,
                        l.kind == Value::Kind::kFloat || r.kind == Value::Kind::kFloat || b < 0);
  }
  if (l.is_number() && r.is_number()) {
    const double a = l.number(), b = r.number();
    const bool is_float = l.kind == Value::Kind::kFloat || r.kind == Value::Kind::kFloat;
    if (op == "+") return NumberResult(a + b, is_float);
    if (op == "-") return NumberResult(a - b, is_float);
    if (op == "*") return NumberResult(a * b, is_float);
    if (op == "/") return Value::Float(a / b);
    if (op == "//") return NumberResult(std::floor(a / b), is_float || b == 0);
    if (op == "%") return NumberResult(std::fmod(a, b), is_float || b == 0);
    if (op == "<") return Value::Bool(a < b);
    if (op == ">") return Value::Bool(a > b);
    if (op == "<=") return Value::Bool(a <= b);
    if (op == ">=") return Value::Bool(a >= b);
  } else if (l.is_array() && r.is_array()) {
    if (op == "+") {
      Array a = *l.arr;
      a.insert(a.end(), r.arr->begin(), r.arr->end());
      return Value::MakeArray(std::move(a));
    }
  } else if (r.is_array()) {
    bool member = false;
    for (const Value& x : *r.arr) member = member || StrictEquals(x, l);
    if (op == "in") return Value::Bool(member);
    if (op == "not in") return Value::Bool(!member);
  }
  if ((l.is_string() || r.is_string()) && op == "+") return Value::Str(ToString(l) + ToString(r));
  if (l.is_string() && r.is_string()) {
    if (op == "in") return Value::Bool(r.str().find(l.str()) != std::string::npos);
    if (op == "not in") return Value::Bool(r.str().find(l.str()) == std::string::npos);
  }
  if (l.is_string() && r.is_object()) {
    const bool has = Find(*r.obj, l.str()) != nullptr;
    if (op == "in") return Value::Bool(has);
    if (op == "not in") return Value::Bool(!has);
  }
  Fail(fmt::format("Unknown operator \"{}\" between {} and {}", op, KindName(l.kind),
                   KindName(r.kind)));
}

Value Interpreter::Member(const Node& n, Env& env) {
  const Value object = Eval(*n.a, env);
  if (n.flag && n.b->kind == Node::Kind::kSlice) {
    const Node& s = *n.b;
    const Value start = s.a ? Eval(*s.a, env) : Value();
    const Value stop = s.b ? Eval(*s.b, env) : Value();
    const Value step = s.c ? Eval(*s.c, env) : Value();
    for (const Value* v : {&start, &stop, &step}) {
      if (!v->is_undefined() && v->kind != Value::Kind::kInt)
        Fail("Slice indices must be integers");
    }
    if (object.is_array()) {
      Array out;
      for (const int64_t k : SliceIndices(object.arr->size(), start, stop, step)) {
        out.push_back((*object.arr)[k]);
      }
      return Value::MakeArray(std::move(out));
    }
    if (object.is_string()) {
      std::vector<std::string_view> chars;
      const std::string& str = object.str();
      for (size_t pos = 0; pos < str.size();) {
        const size_t b = pos;
        tok::NextCodePoint(str, &pos);
        chars.emplace_back(str.data() + b, pos - b);
      }
      std::string out;
      for (const int64_t k : SliceIndices(chars.size(), start, stop, step)) out += chars[k];
      return Value::Str(std::move(out));
    }
    Fail("Slice object must be an array or string");
  }
  Value property;
  if (n.flag) {
    property = Eval(*n.b, env);
  } else if (n.b->kind == Node::Kind::kInt) {
    property = Value::Int(n.b->i);
  } else {
    property = Value::Str(n.b->s);
  }
  if (object.is_container()) {
    if (!property.is_string()) {
      Fail(fmt::format("Cannot access property with non-string: got {}", KindName(property.kind)));
    }
    if (const Value* v = Find(*object.obj, property.str())) return *v;
    return object.is_object() ? Builtin(object, property.str()) : Value();
  }
  if (object.is_array() || object.is_string()) {
    if (property.kind == Value::Kind::kInt) {
      if (object.is_array()) {
        const int64_t size = static_cast<int64_t>(object.arr->size());
        const int64_t k = property.i < 0 ? size + property.i : property.i;
        return k >= 0 && k < size ? (*object.arr)[k] : Value();
      }
      std::vector<std::string> chars;
      for (size_t pos = 0; pos < object.str().size();) {
        const size_t b = pos;
        tok::NextCodePoint(object.str(), &pos);
        chars.push_back(object.str().substr(b, pos - b));
      }
      const int64_t size = static_cast<int64_t>(chars.size());
      const int64_t k = property.i < 0 ? size + property.i : property.i;
      return k >= 0 && k < size ? Value::Str(chars[k]) : Value();
    }
    if (property.is_string()) return Builtin(object, property.str());
    Fail(fmt::format("Cannot access property with non-string/non-number: got {}",
                     KindName(property.kind)));
  }
  if (!property.is_string()) {
    Fail(fmt::format("Cannot access property with non-string: got {}", KindName(property.kind)));
  }
  return Value();
}

void Interpreter::EvalArgs(const NodeList& list, Env& env, Array* args, Kwargs* kwargs) {
  for (const NodePtr& a : list) {
    if (a->kind != Node::Kind::kKwarg) args->push_back(Eval(*a, env));
  }
  for (const NodePtr& a : list) {
    if (a->kind != Node::Kind::kKwarg) continue;
    for (const auto& [k, v] : *kwargs) {
      if (k == a->s) Fail(fmt::format("Got multiple values for keyword argument '{}'", k));
    }
    kwargs->emplace_back(a->s, Eval(*a->a, env));
  }
}

Value Interpreter::Call(const Node& n, Env& env) {
  Array args;
  Kwargs kwargs;
  EvalArgs(n.list, env, &args, &kwargs);
  const Value fn = Eval(*n.a, env);
  if (fn.kind != Value::Kind::kFunction) {
    Fail(fmt::format("Cannot call something that is not a function: got {}", KindName(fn.kind)));
  }
  struct DepthGuard {
    explicit DepthGuard(int* d) : d_(d) {
      if (++*d_ > kMaxCallDepth) Fail("calls nest too deeply (recursive macro?)");
    }
    ~DepthGuard() { --*d_; }
    int* d_;
  } guard(&call_depth_);
  return (*fn.fn)(*this, args, kwargs, env);
}

Value Interpreter::For(const Node& n, Env& env) {
  Env scope(&env);
  Value iterable = Eval(*n.b, scope);
  if (iterable.is_object()) {
    Array keys;
    for (const auto& [k, v] : *iterable.obj) keys.push_back(Value::Str(k));
    iterable = Value::MakeArray(std::move(keys));
  }
  if (!iterable.is_array()) {
    Fail(fmt::format("Expected iterable or object type in for loop: got {}",
                     KindName(iterable.kind)));
  }
  auto bind = [&](Env& target, const Value& item) {
    if (n.a->kind == Node::Kind::kIdent) {
      target.Set(n.a->s, item);
      return;
    }
    if (!item.is_array())
      Fail(fmt::format("Cannot unpack non-iterable type: {}", KindName(item.kind)));
    if (item.arr->size() != n.a->list.size()) {
      Fail(fmt::format("Too {} items to unpack",
                       n.a->list.size() > item.arr->size() ? "few" : "many"));
    }
    for (size_t k = 0; k < n.a->list.size(); ++k) {
      if (n.a->list[k]->kind != Node::Kind::kIdent) Fail("Cannot unpack to a non-name");
      target.Set(n.a->list[k]->s, (*item.arr)[k]);
    }
  };
  Array items;
  for (const Value& item : *iterable.arr) {
    if (n.c) {
      Env test_scope(&scope);
      bind(test_scope, item);
      if (!Truthy(Eval(*n.c, test_scope))) continue;
    }
    items.push_back(item);
  }
  std::string out;
  const int64_t count = static_cast<int64_t>(items.size());
  for (int64_t k = 0; k < count; ++k) {
    Object loop = {
        {"index", Value::Int(k + 1)},
        {"index0", Value::Int(k)},
        {"revindex", Value::Int(count - k)},
        {"revindex0", Value::Int(count - k - 1)},
        {"first", Value::Bool(k == 0)},
        {"last", Value::Bool(k == count - 1)},
        {"length", Value::Int(count)},
        {"previtem", k > 0 ? items[k - 1] : Value()},
        {"nextitem", k + 1 < count ? items[k + 1] : Value()},
    };
    scope.Set("loop", Value::MakeObject(std::move(loop)));
    bind(scope, items[k]);
    try {
      out += Block(n.body, scope);
    } catch (const ContinueSignal&) {
      continue;
    } catch (const BreakSignal&) {
      break;
    }
    if (out.size() > kMaxOutputBytes) Fail("template output is too large");
  }
  if (count == 0) out += Block(n.alt, scope);
  return Value::Str(std::move(out));
}

Value Interpreter::Set(const Node& n, Env& env) {
  const Value rhs = n.b ? Eval(*n.b, env) : Value::Str(Block(n.body, env));
  const Node& lhs = *n.a;
  if (lhs.kind == Node::Kind::kIdent) {
    env.Set(lhs.s, rhs);
  } else if (lhs.kind == Node::Kind::kTuple) {
    if (!rhs.is_array())
      Fail(fmt::format("Cannot unpack non-iterable type in set: {}", KindName(rhs.kind)));
    if (rhs.arr->size() != lhs.list.size()) {
      Fail(fmt::format("Too {} items to unpack in set",
                       lhs.list.size() > rhs.arr->size() ? "few" : "many"));
    }
    for (size_t k = 0; k < lhs.list.size(); ++k) {
      if (lhs.list[k]->kind != Node::Kind::kIdent) Fail("Cannot unpack to a non-name in set");
      env.Set(lhs.list[k]->s, (*rhs.arr)[k]);
    }
  } else if (lhs.kind == Node::Kind::kMember) {
    const Value object = Eval(*lhs.a, env);
    if (object.kind != Value::Kind::kNamespace)
      Fail("cannot assign attribute on non-namespace object");
    if (lhs.flag || lhs.b->kind != Node::Kind::kIdent)
      Fail("Cannot assign to member with non-identifier property");
    Put(*object.obj, lhs.b->s, rhs);
  } else {
    Fail("Invalid left-hand side of set");
  }
  return Value::None();
}

Value Interpreter::Macro(const Node& n, Env& env) {
  const Node* node = &n;
  env.Set(n.s, Value::MakeFunction(
                   [node](Interpreter& in, Array& args, Kwargs& kwargs, Env& caller) -> Value {
                     Env scope(&caller);
                     std::vector<std::pair<std::string, const Node*>> pending_defaults;
                     for (size_t k = 0; k < node->list.size(); ++k) {
                       const Node& p = *node->list[k];
                       const std::string& name = p.kind == Node::Kind::kIdent ? p.s : p.s;
                       Value v;
                       bool given = false;
                       if (k < args.size()) {
                         v = args[k];
                         given = true;
                       } else {
                         for (auto it = kwargs.begin(); it != kwargs.end(); ++it) {
                           if (it->first == name) {
                             v = it->second;
                             kwargs.erase(it);
                             given = true;
                             break;
                           }
                         }
                       }
                       if (!given && p.kind == Node::Kind::kKwarg)
                         pending_defaults.emplace_back(name, p.a.get());
                       scope.Set(name, v);
                     }
                     if (!kwargs.empty()) {
                       Fail(fmt::format("macro '{}' takes no keyword argument '{}'", node->s,
                                        kwargs.front().first));
                     }
                     if (args.size() > node->list.size()) {
                       Fail(fmt::format("macro '{}' takes not more than {} argument(s)", node->s,
                                        node->list.size()));
                     }
                     for (const auto& [name, def] : pending_defaults)
                       scope.Set(name, in.Eval(*def, scope));
                     return Value::Str(in.Block(node->body, scope));
                   }));
  return Value::None();
}

std::vector<int64_t> SliceIndices(int64_t n, const Value& start_v, const Value& stop_v,
                                  const Value& step_v) {
  const int64_t step = step_v.is_undefined() ? 1 : step_v.i;
  if (step == 0) Fail("slice step cannot be zero");
  std::vector<int64_t> out;
  int64_t start, stop;
  if (step > 0) {
    start = start_v.is_undefined() ? 0 : start_v.i;
    stop = stop_v.is_undefined() ? n : stop_v.i;
    start = start < 0 ? std::max<int64_t>(n + start, 0) : std::min(start, n);
    stop = stop < 0 ? std::max<int64_t>(n + stop, 0) : std::min(stop, n);
    for (int64_t k = start; k < stop; k += step) out.push_back(k);
  } else {
    start = start_v.is_undefined() ? n - 1 : start_v.i;
    stop = stop_v.is_undefined() ? -1 : stop_v.i;
    start = start < 0 ? std::max<int64_t>(n + start, -1) : std::min(start, n - 1);
    stop = stop < -1 ? std::max<int64_t>(n + stop, -1) : std::min(stop, n - 1);
    for (int64_t k = start; k > stop; k += step) out.push_back(k);
  }
  return out;
}

std::string Strftime(int64_t now_unix, std::string_view format) {
  static constexpr const char* kMonths[] = {"January",   "February", "March",    "April",
                                            "May",       "June",     "July",     "August",
                                            "September", "October",  "November", "December"};
  const std::time_t t = now_unix >= 0 ? static_cast<std::time_t>(now_unix) : std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  std::string out;
  for (size_t k = 0; k < format.size(); ++k) {
    if (format[k] != '%' || k + 1 >= format.size()) {
      out += format[k];
      continue;
    }
    const char c = format[++k];
    switch (c) {
      case 'Y':
        out += fmt::format("{}", tm.tm_year + 1900);
        break;
      case 'm':
        out += fmt::format("{:02d}", tm.tm_mon + 1);
        break;
      case 'd':
        out += fmt::format("{:02d}", tm.tm_mday);
        break;
      case 'b':
        out += std::string(kMonths[tm.tm_mon]).substr(0, 3);
        break;
      case 'B':
        out += kMonths[tm.tm_mon];
        break;
      case 'H':
        out += fmt::format("{:02d}", tm.tm_hour);
        break;
      case 'M':
        out += fmt::format("{:02d}", tm.tm_min);
        break;
      case '%':
        out += '%';
        break;
      default:
        out += '%';
        out += c;
    }
  }
  return out;
}

}  // namespace meshlm::jinja
