// The filters of the chat-template language (`x|f` and `x|f(...)`), as tables from name
// to function, with the behaviour of @huggingface/jinja where it differs from Python's Jinja.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string_view>
#include <unordered_map>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/interp.h"
#include "tokenizer/unicode.h"

namespace meshlm::jinja {

namespace {

[[noreturn]] void Fail(std::string message) { throw TemplateError{std::move(message)}; }

}  // namespace

Value Interpreter::ApplyFilter(Value operand, const Node& filter, Env& env) {
  Array args;
  Kwargs kwargs;
  if (filter.flag) {
    // selectattr/rejectattr take string literals only, as in the reference.
    if (filter.s == "selectattr" || filter.s == "rejectattr") {
      for (const NodePtr& a : filter.list) {
        if (a->kind != Node::Kind::kString) Fail("arguments of `" + filter.s + "` must be strings");
      }
    }
    EvalArgs(filter.list, env, &args, &kwargs);
  }
  if (!filter.flag) args.clear();
  return ApplyFilterNamed(std::move(operand), filter.flag ? "(" + filter.s : filter.s, args,
                          kwargs);
}

namespace {

// The filters, as tables from name to function. A filter is looked up first among those
// that take any operand, then among those of the operand's kind; `x|f` and `x|f()` have
// tables of their own, since the reference treats them differently for several filters.
struct FilterCall {
  Value& operand;
  const std::string& name;  // without the "(" of a call
  Array& args;
  Kwargs& kwargs;
};
using FilterFn = Value (*)(FilterCall& c);
using FilterMap = std::unordered_map<std::string_view, FilterFn>;

// The filters of one operand kind; `family` names the kind in "Unknown ... filter" errors.
struct FilterSet {
  const char* family = nullptr;  // null: no filter of this table applies to the kind
  FilterMap by_name;
};

struct FilterTable {
  FilterMap any;
  FilterSet array, string, number, object, boolean;
};

[[noreturn]] void CannotApply(const FilterCall& c) {
  Fail(fmt::format("Cannot apply filter \"{}\" to type: {}", c.name, KindName(c.operand.kind)));
}

Value Operand(FilterCall& c) { return c.operand; }
Value Length(FilterCall& c) {
  if (c.operand.is_string()) return Value::Int(Utf16Length(c.operand.str()));
  if (c.operand.is_array()) return Value::Int(static_cast<int64_t>(c.operand.arr->size()));
  return Value::Int(static_cast<int64_t>(c.operand.obj->size()));
}
Value StringMethodFilter(FilterCall& c) {
  return StringMethod(c.operand.str(), c.name, c.args, c.kwargs);
}
Value ObjectMethodFilter(FilterCall& c) {
  return ObjectMethod(c.operand, c.name, c.args, c.kwargs);
}

Value SortArray(FilterCall& c) {
  Array s = *c.operand.arr;
  std::stable_sort(s.begin(), s.end(),
                   [](const Value& x, const Value& y) { return Compare(x, y, false) < 0; });
  return Value::MakeArray(std::move(s));
}

Value Unique(FilterCall& c) {
  Array out;
  for (const Value& v : *c.operand.arr) {
    bool seen = false;
    for (const Value& o : out) seen = seen || StrictEquals(o, v);
    if (!seen) out.push_back(v);
  }
  return Value::MakeArray(std::move(out));
}

Value Abs(FilterCall& c) {
  const Value& v = c.operand;
  return v.kind == Value::Kind::kInt ? Value::Int(std::llabs(v.i)) : Value::Float(std::fabs(v.f));
}

// Called filters (`x|f(...)`).

Value ToJsonCalled(FilterCall& c) {
  using K = Value::Kind;
  JsonOptions o;
  for (const auto& [k, v] : c.kwargs) {
    if (k == "indent") {
      if (v.kind != K::kInt && !v.is_none()) Fail("If set, indent must be a number");
      o.indent = v.kind == K::kInt ? static_cast<int>(std::clamp<int64_t>(v.i, -1, 64)) : -1;
    } else if (k == "ensure_ascii") {
      o.ensure_ascii = v.kind == K::kBool && v.b;
    } else if (k == "sort_keys") {
      o.sort_keys = v.kind == K::kBool && v.b;
    } else if (k == "separators" && v.is_array()) {
      if (v.arr->size() != 2 || !(*v.arr)[0].is_string() || !(*v.arr)[1].is_string()) {
        Fail("separators must be a tuple of two strings");
      }
      o.item_separator = (*v.arr)[0].str();
      o.key_separator = (*v.arr)[1].str();
    }
  }
  return Value::Str(ToJson(c.operand, o, true));
}

Value JoinCalled(FilterCall& c) {
  const Value* sep = Arg(c.args, 0, c.kwargs, "separator");
  if (sep && !sep->is_string()) Fail("separator must be a string");
  const std::string sep_s = sep ? sep->str() : "";
  if (c.operand.is_array()) return Value::Str(Join(*c.operand.arr, sep_s));
  if (c.operand.is_string()) {
    std::string out;
    const std::string& s = c.operand.str();
    for (size_t pos = 0; pos < s.size();) {
      const size_t b = pos;
      tok::NextCodePoint(s, &pos);
      if (b) out += sep_s;
      out.append(s, b, pos - b);
    }
    return Value::Str(std::move(out));
  }
  CannotApply(c);
}

Value DefaultCalled(FilterCall& c) {
  const Value def = c.args.size() > 0 ? c.args[0] : Value::Str("");
  const Value* boolean = Arg(c.args, 1, c.kwargs, "boolean");
  const bool use_bool = boolean && boolean->kind == Value::Kind::kBool && boolean->b;
  if (c.operand.is_undefined() || (use_bool && !Truthy(c.operand))) return def;
  return c.operand;
}

// int(default) and float(default).
Value NumberCalled(FilterCall& c) {
  const Value& operand = c.operand;
  const bool to_int = c.name == "int";
  const Value* def = Arg(c.args, 0, c.kwargs, "default");
  if (operand.is_string()) {
    char* end = nullptr;
    const double d = std::strtod(operand.str().c_str(), &end);
    if (end == operand.str().c_str())
      return def ? *def : (to_int ? Value::Int(0) : Value::Float(0));
    return to_int ? Value::Int(static_cast<int64_t>(d)) : Value::Float(d);
  }
  if (operand.is_number()) return operand;
  if (operand.kind == Value::Kind::kBool) {
    return to_int ? Value::Int(operand.b) : Value::Float(operand.b);
  }
  CannotApply(c);
}

Value SortCalled(FilterCall& c) {
  using K = Value::Kind;
  const Value* rev = Arg(c.args, 0, c.kwargs, "reverse");
  const Value* cs = Arg(c.args, 1, c.kwargs, "case_sensitive");
  const Value* attr = Arg(c.args, 2, c.kwargs, "attribute");
  const bool reverse = rev && rev->kind == K::kBool && rev->b;
  const bool case_sensitive = cs && cs->kind == K::kBool && cs->b;
  Array s = *c.operand.arr;
  auto key = [&](const Value& v) {
    if (!attr || attr->is_none()) return v;
    return AttributePath(v, attr->kind == K::kInt ? fmt::format("{}", attr->i) : ToString(*attr));
  };
  std::stable_sort(s.begin(), s.end(), [&](const Value& x, const Value& y) {
    const int r = Compare(key(x), key(y), case_sensitive);
    return reverse ? r > 0 : r < 0;
  });
  return Value::MakeArray(std::move(s));
}

// selectattr(name[, test[, arg]]) and rejectattr.
Value SelectAttrCalled(FilterCall& c) {
  const Array& a = *c.operand.arr;
  for (const Value& item : a) {
    if (!item.is_container()) Fail("`" + c.name + "` can only be applied to array of objects");
  }
  if (c.args.empty()) Fail("`" + c.name + "` needs an attribute name");
  const std::string attr = c.args[0].str();
  const Value* test_arg = c.args.size() > 2 ? &c.args[2] : nullptr;
  Array out;
  for (const Value& item : a) {
    const Value* v = Find(*item.obj, attr);
    // A missing attribute fails the test (the reference checks presence first).
    bool r = false;
    if (v) {
      r = c.args.size() > 1 ? Interpreter::RunTest(c.args[1].str(), *v, test_arg) : Truthy(*v);
    }
    if (r == (c.name == "selectattr")) out.push_back(item);
  }
  return Value::MakeArray(std::move(out));
}

Value MapCalled(FilterCall& c) {
  const Value* attr = nullptr;
  const Value* def = nullptr;
  for (const auto& [k, v] : c.kwargs) {
    if (k == "attribute") attr = &v;
    if (k == "default") def = &v;
  }
  if (!attr) Fail("`map` expressions without `attribute` set are not currently supported.");
  if (!attr->is_string()) Fail("attribute must be a string");
  Array out;
  for (const Value& item : *c.operand.arr) {
    if (!item.is_container()) Fail("items in map must be an object");
    Value v = AttributePath(item, attr->str());
    out.push_back(v.is_undefined() && def ? *def : v);
  }
  return Value::MakeArray(std::move(out));
}

Value IndentCalled(FilterCall& c) {
  const Value* width = Arg(c.args, 0, c.kwargs, "width");
  const Value* first = Arg(c.args, 1, c.kwargs, "first");
  const Value* blank = Arg(c.args, 2, c.kwargs, "blank");
  if (width && width->kind != Value::Kind::kInt) Fail("width must be a number");
  const std::string pad(width ? static_cast<size_t>(std::clamp<int64_t>(width->i, 0, 256)) : 4,
                        ' ');
  const bool indent_first = first && Truthy(*first);
  const bool indent_blank = blank && Truthy(*blank);
  const std::vector<std::string> lines = SplitAll(c.operand.str(), "\n");
  std::string out;
  for (size_t k = 0; k < lines.size(); ++k) {
    if (k) out += '\n';
    const bool skip = (!indent_first && k == 0) || (!indent_blank && lines[k].empty());
    out += skip ? lines[k] : pad + lines[k];
  }
  return Value::Str(std::move(out));
}

// `x|indent` is indent() with the keyword arguments only.
Value IndentBare(FilterCall& c) {
  Array none;
  FilterCall called{c.operand, c.name, none, c.kwargs};
  return IndentCalled(called);
}

const FilterTable& BareFilters() {
  static const FilterTable table{
      .any =
          {
              {"safe", Operand},
              {"tojson",
               [](FilterCall& c) { return Value::Str(ToJson(c.operand, JsonOptions{}, true)); }},
          },
      .array = {"ArrayValue",
                {
                    {"list", Operand},
                    {"first",
                     [](FilterCall& c) {
                       const Array& a = *c.operand.arr;
                       return a.empty() ? Value() : a.front();
                     }},
                    {"last",
                     [](FilterCall& c) {
                       const Array& a = *c.operand.arr;
                       return a.empty() ? Value() : a.back();
                     }},
                    {"length", Length},
                    {"reverse",
                     [](FilterCall& c) {
                       const Array& a = *c.operand.arr;
                       return Value::MakeArray(Array(a.rbegin(), a.rend()));
                     }},
                    {"sort", SortArray},
                    {"join", [](FilterCall& c) { return Value::Str(Join(*c.operand.arr, "")); }},
                    {"string",
                     [](FilterCall& c) {
                       return Value::Str(ToJson(c.operand, JsonOptions{}, false));
                     }},
                    {"unique", Unique},
                }},
      .string = {"StringValue",
                 {
                     {"length", Length},
                     {"upper", StringMethodFilter},
                     {"lower", StringMethodFilter},
                     {"title", StringMethodFilter},
                     {"capitalize", StringMethodFilter},
                     {"trim",
                      [](FilterCall& c) {
                        return Value::Str(JsTrim(c.operand.str(), true, true));
                      }},
                     {"indent", IndentBare},
                     {"join", Operand},
                     {"string", Operand},
                     {"int",
                      [](FilterCall& c) {
                        return Value::Int(std::strtoll(c.operand.str().c_str(), nullptr, 10));
                      }},
                     {"float",
                      [](FilterCall& c) {
                        return Value::Float(std::strtod(c.operand.str().c_str(), nullptr));
                      }},
                 }},
      .number = {"NumericValue",
                 {
                     {"abs", Abs},
                     {"int",
                      [](FilterCall& c) {
                        return Value::Int(static_cast<int64_t>(std::floor(c.operand.number())));
                      }},
                     {"float", [](FilterCall& c) { return Value::Float(c.operand.number()); }},
                     {"string", [](FilterCall& c) { return Value::Str(ToString(c.operand)); }},
                 }},
      .object = {"ObjectValue",
                 {
                     {"items", [](FilterCall& c) { return Items(c.operand); }},
                     {"length", Length},
                     {"keys", ObjectMethodFilter},
                     {"values", ObjectMethodFilter},
                     {"dictsort", ObjectMethodFilter},
                 }},
      .boolean = {"BooleanValue",
                  {
                      {"bool", Operand},
                      {"int", [](FilterCall& c) { return Value::Int(c.operand.b ? 1 : 0); }},
                      {"float", [](FilterCall& c) { return Value::Float(c.operand.b ? 1 : 0); }},
                      {"string",
                       [](FilterCall& c) { return Value::Str(c.operand.b ? "true" : "false"); }},
                  }},
  };
  return table;
}

const FilterTable& CalledFilters() {
  static const FilterTable table{
      .any =
          {
              {"tojson", ToJsonCalled},
              {"join", JoinCalled},
              {"default", DefaultCalled},
              {"int", NumberCalled},
              {"float", NumberCalled},
          },
      .array = {"ArrayValue",
                {
                    {"sort", SortCalled},
                    {"selectattr", SelectAttrCalled},
                    {"rejectattr", SelectAttrCalled},
                    {"map", MapCalled},
                }},
      .string = {"StringValue",
                 {
                     {"indent", IndentCalled},
                     {"replace",
                      [](FilterCall& c) {
                        return StringMethod(c.operand.str(), "replace", c.args, c.kwargs);
                      }},
                 }},
      .number = {},
      .object = {"ObjectValue",
                 {
                     {"get", ObjectMethodFilter},
                     {"items", ObjectMethodFilter},
                     {"keys", ObjectMethodFilter},
                     {"values", ObjectMethodFilter},
                     {"dictsort", ObjectMethodFilter},
                 }},
      .boolean = {},
  };
  return table;
}

// The filters of `table` for the operand's kind; null for kinds no filter takes.
const FilterSet* SetFor(const FilterTable& table, const Value& operand) {
  const FilterSet* set = nullptr;
  if (operand.is_array()) {
    set = &table.array;
  } else if (operand.is_string()) {
    set = &table.string;
  } else if (operand.is_number()) {
    set = &table.number;
  } else if (operand.is_object()) {
    set = &table.object;
  } else if (operand.kind == Value::Kind::kBool) {
    set = &table.boolean;
  }
  return set && set->family ? set : nullptr;
}

}  // namespace

// `name` starts with "(" when the filter was called with an argument list.
Value Interpreter::ApplyFilterNamed(Value operand, const std::string& raw_name, Array& args,
                                    Kwargs& kwargs) {
  const bool called = raw_name.starts_with('(');
  const std::string name = called ? raw_name.substr(1) : raw_name;
  const FilterTable& table = called ? CalledFilters() : BareFilters();
  FilterCall call{operand, name, args, kwargs};
  if (const auto it = table.any.find(name); it != table.any.end()) return it->second(call);
  const FilterSet* set = SetFor(table, operand);
  if (!set) CannotApply(call);
  const auto it = set->by_name.find(name);
  if (it == set->by_name.end()) Fail(fmt::format("Unknown {} filter: {}", set->family, name));
  return it->second(call);
}

}  // namespace meshlm::jinja
