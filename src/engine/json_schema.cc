// JSON Schema compiler: one grammar rule per schema node, built-in rules cached.
#include "engine/json_schema.h"

#include <fmt/format.h>

#include <set>

namespace meshlm::engine {

using ojson = nlohmann::ordered_json;
using RuleId = Grammar::RuleId;
using Item = Grammar::Item;

namespace {

// Keywords that describe but do not constrain: accepted and ignored.
const std::set<std::string>& Annotations() {
  static const std::set<std::string> k = {
      "title",    "description", "default",    "examples", "$schema", "$id",    "$comment",
      "readOnly", "writeOnly",   "deprecated", "$defs",    "definitions"};
  return k;
}

const std::set<std::string>& Supported() {
  static const std::set<std::string> k = {
      "type",     "properties", "required", "additionalProperties", "items", "minItems",
      "maxItems", "enum",       "const",    "anyOf",                "$ref"};
  return k;
}

constexpr int kMaxDepth = 64;
constexpr int64_t kMaxCountedItems = 256;

}  // namespace

JsonGrammarBuilder::JsonGrammarBuilder(Grammar* g, const ojson& root, bool compact)
    : g_(g), root_(root), compact_(compact) {}

RuleId JsonGrammarBuilder::Space() {
  if (auto it = cache_.find("#space"); it != cache_.end()) return it->second;
  // "" | " " | "\n" then up to kMaxIndent blanks: room for indented output, but a model
  // cannot spend its budget on blank lines.
  std::bitset<256> blank;
  blank.set(' ');
  blank.set('\t');
  RuleId indent = g_->AddRule("indent_end");
  g_->AddAlternative(indent, {});
  for (int k = kMaxIndent - 1; k >= 0; --k) {
    const RuleId r = g_->AddRule(fmt::format("indent_{}", k));
    g_->AddAlternative(r, {});
    g_->AddAlternative(r, {g_->Bytes(blank), Grammar::Ref(indent)});
    indent = r;
  }
  const RuleId space = g_->AddRule("space");
  g_->AddAlternative(space, {});
  g_->AddAlternative(space, {g_->Byte(' ')});
  if (!compact_) g_->AddAlternative(space, {g_->Byte('\n'), Grammar::Ref(indent)});
  return cache_["#space"] = space;
}

RuleId JsonGrammarBuilder::Literal(const std::string& name, const std::string& text) {
  const std::string key = "#lit:" + text;
  if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  const RuleId r = g_->AddRule(name);
  g_->AddAlternative(r, g_->Literal(text));
  return cache_[key] = r;
}

RuleId JsonGrammarBuilder::String() {
  if (auto it = cache_.find("#string"); it != cache_.end()) return it->second;
  const RuleId r = g_->AddRule("string");
  g_->AddAlternative(r, {g_->Byte('"'), Grammar::JsonStringBody(), g_->Byte('"')});
  return cache_["#string"] = r;
}

RuleId JsonGrammarBuilder::Digits(int min, int max) {
  const std::string key = fmt::format("#digits:{}:{}", min, max);
  if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  const Item digit = g_->Range('0', '9');
  // d_k: digits k.. of at most max; the first min are required.
  RuleId next = g_->AddRule("digits_end");
  g_->AddAlternative(next, {});
  for (int k = max - 1; k >= 0; --k) {
    const RuleId r = g_->AddRule(fmt::format("digits_{}", k));
    if (k >= min) g_->AddAlternative(r, {});
    g_->AddAlternative(r, {digit, Grammar::Ref(next)});
    next = r;
  }
  return cache_[key] = next;
}

RuleId JsonGrammarBuilder::Number(bool integer) {
  const std::string key = integer ? "#integer" : "#number";
  if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  // -?(0|[1-9][0-9]{0,15})(\.[0-9]{1,16})?([eE][+-]?[0-9]{1,3})?
  const RuleId sign = g_->AddRule("sign");
  g_->AddAlternative(sign, {});
  g_->AddAlternative(sign, {g_->Byte('-')});
  const RuleId whole = g_->AddRule("int_part");
  g_->AddAlternative(whole, {g_->Byte('0')});
  g_->AddAlternative(whole, {g_->Range('1', '9'), Grammar::Ref(Digits(0, 15))});
  const RuleId r = g_->AddRule(integer ? "integer" : "number");
  if (integer) {
    g_->AddAlternative(r, {Grammar::Ref(sign), Grammar::Ref(whole)});
    return cache_[key] = r;
  }
  const RuleId frac = g_->AddRule("fraction");
  g_->AddAlternative(frac, {});
  g_->AddAlternative(frac, {g_->Byte('.'), Grammar::Ref(Digits(1, 16))});
  std::bitset<256> e, pm;
  e.set('e');
  e.set('E');
  pm.set('+');
  pm.set('-');
  const RuleId exp_sign = g_->AddRule("exponent_sign");
  g_->AddAlternative(exp_sign, {});
  g_->AddAlternative(exp_sign, {g_->Bytes(pm)});
  const RuleId exp = g_->AddRule("exponent");
  g_->AddAlternative(exp, {});
  g_->AddAlternative(exp, {g_->Bytes(e), Grammar::Ref(exp_sign), Grammar::Ref(Digits(1, 3))});
  g_->AddAlternative(r, {Grammar::Ref(sign), Grammar::Ref(whole), Grammar::Ref(frac),
                         Grammar::Ref(exp)});
  return cache_[key] = r;
}

RuleId JsonGrammarBuilder::AnyValue() {
  if (auto it = cache_.find("#value"); it != cache_.end()) return it->second;
  const RuleId value = g_->AddRule("value");
  cache_["#value"] = value;
  const RuleId ws = Space();
  // array: "[" ws ("]" | value ws ("," ws value ws)* "]")
  const RuleId more = g_->AddRule("array_more");
  g_->AddAlternative(more, {g_->Byte(']')});
  g_->AddAlternative(more, {g_->Byte(','), Grammar::Ref(ws), Grammar::Ref(value),
                            Grammar::Ref(ws), Grammar::Ref(more)});
  const RuleId array = g_->AddRule("array");
  g_->AddAlternative(array, {g_->Byte('['), Grammar::Ref(ws), g_->Byte(']')});
  g_->AddAlternative(array, {g_->Byte('['), Grammar::Ref(ws), Grammar::Ref(value),
                             Grammar::Ref(ws), Grammar::Ref(more)});
  g_->AddAlternative(value, {Grammar::Ref(AnyObject())});
  g_->AddAlternative(value, {Grammar::Ref(array)});
  g_->AddAlternative(value, {Grammar::Ref(String())});
  g_->AddAlternative(value, {Grammar::Ref(Number(false))});
  for (const char* lit : {"true", "false", "null"}) {
    g_->AddAlternative(value, {Grammar::Ref(Literal(lit, lit))});
  }
  return value;
}

RuleId JsonGrammarBuilder::AnyObject() {
  if (auto it = cache_.find("#object"); it != cache_.end()) return it->second;
  const RuleId object = g_->AddRule("object");
  cache_["#object"] = object;
  const RuleId ws = Space();
  const RuleId value = AnyValue();
  // member: string ws ":" ws value ws
  const RuleId member = g_->AddRule("member");
  g_->AddAlternative(member, {Grammar::Ref(String()), Grammar::Ref(ws), g_->Byte(':'),
                              Grammar::Ref(ws), Grammar::Ref(value), Grammar::Ref(ws)});
  const RuleId more = g_->AddRule("object_more");
  g_->AddAlternative(more, {g_->Byte('}')});
  g_->AddAlternative(more,
                     {g_->Byte(','), Grammar::Ref(ws), Grammar::Ref(member), Grammar::Ref(more)});
  g_->AddAlternative(object, {g_->Byte('{'), Grammar::Ref(ws), g_->Byte('}')});
  g_->AddAlternative(object,
                     {g_->Byte('{'), Grammar::Ref(ws), Grammar::Ref(member), Grammar::Ref(more)});
  return object;
}

Result<RuleId> JsonGrammarBuilder::Ref(const std::string& ref, const std::string& path) {
  if (auto it = cache_.find(ref); it != cache_.end()) return it->second;
  if (!ref.starts_with("#")) {
    return Error("'{}.$ref': only references into this schema (\"#/...\") are supported, not '{}'",
                 path, ref);
  }
  const ojson* target = nullptr;
  try {
    target = &root_.at(nlohmann::json::json_pointer(ref.substr(1)));
  } catch (const std::exception&) {
    return Error("'{}.$ref': '{}' points at nothing in the schema", path, ref);
  }
  // Made before the body, so a recursive reference finds it.
  const RuleId r = g_->AddRule("ref " + ref);
  cache_[ref] = r;
  MESHLM_ASSIGN_OR_RETURN(RuleId body, Value(*target, ref));
  g_->AddAlternative(r, {Grammar::Ref(body)});
  return r;
}

Result<RuleId> JsonGrammarBuilder::Object(const ojson& s, const std::string& path) {
  const RuleId ws = Space();
  const auto props = s.find("properties");
  if (props == s.end()) {
    // A map: any keys; values of additionalProperties' schema when it has one.
    const auto extra = s.find("additionalProperties");
    if (extra == s.end() || extra->is_boolean()) return AnyObject();
    MESHLM_ASSIGN_OR_RETURN(RuleId value, Value(*extra, path + ".additionalProperties"));
    const RuleId member = g_->AddRule(path + " member");
    g_->AddAlternative(member, {Grammar::Ref(String()), Grammar::Ref(ws), g_->Byte(':'),
                                Grammar::Ref(ws), Grammar::Ref(value), Grammar::Ref(ws)});
    const RuleId more = g_->AddRule(path + " more");
    g_->AddAlternative(more, {g_->Byte('}')});
    g_->AddAlternative(more,
                       {g_->Byte(','), Grammar::Ref(ws), Grammar::Ref(member), Grammar::Ref(more)});
    const RuleId r = g_->AddRule(path);
    g_->AddAlternative(r, {g_->Byte('{'), Grammar::Ref(ws), g_->Byte('}')});
    g_->AddAlternative(r,
                       {g_->Byte('{'), Grammar::Ref(ws), Grammar::Ref(member), Grammar::Ref(more)});
    return r;
  }
  if (!props->is_object()) return Error("'{}.properties': expected an object", path);
  std::set<std::string> required;
  if (auto req = s.find("required"); req != s.end()) {
    if (!req->is_array()) return Error("'{}.required': expected an array of names", path);
    for (const auto& name : *req) {
      if (!name.is_string() || !props->contains(name.get<std::string>())) {
        return Error("'{}.required': {} is not one of the properties", path, name.dump());
      }
      required.insert(name.get<std::string>());
    }
  }
  // Properties come in schema order (as OpenAI's strict mode writes them); optional ones
  // may be left out. first_k: properties k.. with none written yet; rest_k: after one.
  std::vector<RuleId> members;
  std::vector<bool> needed;
  for (const auto& [name, sub] : props->items()) {
    MESHLM_ASSIGN_OR_RETURN(RuleId value, Value(sub, path + ".properties." + name));
    const RuleId m = g_->AddRule(path + "." + name);
    std::vector<Item> items = g_->Literal(ojson(name).dump());
    for (Item it : {Grammar::Ref(ws), g_->Byte(':'), Grammar::Ref(ws), Grammar::Ref(value),
                    Grammar::Ref(ws)}) {
      items.push_back(it);
    }
    g_->AddAlternative(m, items);
    members.push_back(m);
    needed.push_back(required.count(name) > 0);
  }
  const size_t n = members.size();
  RuleId first = g_->AddRule(path + " end"), rest = first;
  g_->AddAlternative(first, {g_->Byte('}')});
  for (size_t k = n; k-- > 0;) {
    const RuleId f = g_->AddRule(fmt::format("{} from {}", path, k));
    const RuleId r = g_->AddRule(fmt::format("{} after {}", path, k));
    g_->AddAlternative(f, {Grammar::Ref(members[k]), Grammar::Ref(rest)});
    g_->AddAlternative(r, {g_->Byte(','), Grammar::Ref(ws), Grammar::Ref(members[k]),
                           Grammar::Ref(rest)});
    if (!needed[k]) {
      g_->AddAlternative(f, {Grammar::Ref(first)});
      g_->AddAlternative(r, {Grammar::Ref(rest)});
    }
    first = f;
    rest = r;
  }
  const RuleId obj = g_->AddRule(path);
  g_->AddAlternative(obj, {g_->Byte('{'), Grammar::Ref(ws), Grammar::Ref(first)});
  return obj;
}

Result<RuleId> JsonGrammarBuilder::Array(const ojson& s, const std::string& path) {
  const RuleId ws = Space();
  RuleId item = 0;
  if (auto it = s.find("items"); it != s.end()) {
    MESHLM_ASSIGN_OR_RETURN(item, Value(*it, path + ".items"));
  } else {
    item = AnyValue();
  }
  int64_t lo = 0, hi = -1;  // hi -1: unbounded
  for (const auto& [key, out] : {std::pair{"minItems", &lo}, std::pair{"maxItems", &hi}}) {
    if (auto it = s.find(key); it != s.end()) {
      if (!it->is_number_integer() || it->get<int64_t>() < 0) {
        return Error("'{}.{}': expected a non-negative integer", path, key);
      }
      *out = it->get<int64_t>();
    }
  }
  if (hi >= 0 && lo > hi) return Error("'{}': minItems {} exceeds maxItems {}", path, lo, hi);
  if (lo > kMaxCountedItems || hi > kMaxCountedItems) {
    return Error("'{}': minItems/maxItems above {} are not supported", path, kMaxCountedItems);
  }
  // tail_k: after k items, "]" or ("," item) more, as the bounds allow.
  RuleId loop = -1;
  if (hi < 0) {
    loop = g_->AddRule(path + " more");
    g_->AddAlternative(loop, {g_->Byte(']')});
    g_->AddAlternative(loop, {g_->Byte(','), Grammar::Ref(ws), Grammar::Ref(item),
                              Grammar::Ref(ws), Grammar::Ref(loop)});
  }
  const int64_t top = hi < 0 ? lo : hi;  // counted tails up to here
  std::vector<RuleId> tail(static_cast<size_t>(top) + 1);
  for (int64_t k = top; k >= 1; --k) {
    const RuleId t = g_->AddRule(fmt::format("{} after {}", path, k));
    if (k == top && hi < 0) {
      g_->AddAlternative(t, {Grammar::Ref(loop)});
    } else {
      if (k >= lo) g_->AddAlternative(t, {g_->Byte(']')});
      if (k < top) {
        g_->AddAlternative(t, {g_->Byte(','), Grammar::Ref(ws), Grammar::Ref(item),
                               Grammar::Ref(ws), Grammar::Ref(tail[k + 1])});
      }
    }
    tail[k] = t;
  }
  const RuleId arr = g_->AddRule(path);
  if (lo == 0) g_->AddAlternative(arr, {g_->Byte('['), Grammar::Ref(ws), g_->Byte(']')});
  if (hi != 0) {
    const RuleId after_first = top >= 1 ? tail[1] : loop;
    g_->AddAlternative(arr, {g_->Byte('['), Grammar::Ref(ws), Grammar::Ref(item),
                             Grammar::Ref(ws), Grammar::Ref(after_first)});
  }
  return arr;
}

Result<RuleId> JsonGrammarBuilder::Typed(const std::string& type, const ojson& s,
                                         const std::string& path) {
  if (type == "object") return Object(s, path);
  if (type == "array") return Array(s, path);
  if (type == "string") return String();
  if (type == "number") return Number(false);
  if (type == "integer") return Number(true);
  if (type == "boolean") {
    const RuleId r = g_->AddRule(path);
    g_->AddAlternative(r, {Grammar::Ref(Literal("true", "true"))});
    g_->AddAlternative(r, {Grammar::Ref(Literal("false", "false"))});
    return r;
  }
  if (type == "null") return Literal("null", "null");
  return Error("'{}.type': '{}' is not a JSON Schema type", path, type);
}

Result<RuleId> JsonGrammarBuilder::Value(const ojson& s, const std::string& path) {
  if (s.is_boolean()) {
    if (!s.get<bool>()) return Error("'{}': the schema false allows no value", path);
    return AnyValue();
  }
  if (!s.is_object()) return Error("'{}': a schema must be an object or a boolean", path);
  if (++depth_ > kMaxDepth) {
    return Error("'{}': schemas nested deeper than {} are not supported", path, kMaxDepth);
  }
  struct Leave {
    int* d;
    ~Leave() { --*d; }
  } leave{&depth_};
  for (const auto& [key, _] : s.items()) {
    if (Supported().count(key) || Annotations().count(key)) continue;
    return Error("'{}.{}': this keyword is not supported (supported: type, properties, required, "
                 "additionalProperties, items, minItems, maxItems, enum, const, anyOf, $ref)",
                 path, key);
  }
  if (auto it = s.find("$ref"); it != s.end()) {
    if (!it->is_string()) return Error("'{}.$ref': expected a string", path);
    return Ref(it->get<std::string>(), path);
  }
  if (auto it = s.find("const"); it != s.end()) return Literal(path, it->dump());
  if (auto it = s.find("enum"); it != s.end()) {
    if (!it->is_array() || it->empty()) return Error("'{}.enum': expected a non-empty array", path);
    const RuleId r = g_->AddRule(path);
    for (const auto& v : *it) g_->AddAlternative(r, g_->Literal(v.dump()));
    return r;
  }
  if (auto it = s.find("anyOf"); it != s.end()) {
    if (!it->is_array() || it->empty()) return Error("'{}.anyOf': expected a non-empty array", path);
    const RuleId r = g_->AddRule(path);
    for (size_t i = 0; i < it->size(); ++i) {
      // Keywords beside anyOf apply to every branch: merge them in.
      ojson branch = (*it)[i];
      if (branch.is_object()) {
        for (const auto& [key, v] : s.items()) {
          if (key != "anyOf" && !branch.contains(key)) branch[key] = v;
        }
      }
      MESHLM_ASSIGN_OR_RETURN(RuleId b, Value(branch, fmt::format("{}.anyOf[{}]", path, i)));
      g_->AddAlternative(r, {Grammar::Ref(b)});
    }
    return r;
  }
  const auto type = s.find("type");
  if (type == s.end()) {
    if (s.contains("properties")) return Object(s, path);
    if (s.contains("items")) return Array(s, path);
    return AnyValue();
  }
  if (type->is_string()) return Typed(type->get<std::string>(), s, path);
  if (!type->is_array() || type->empty()) {
    return Error("'{}.type': expected a type name or a non-empty array of them", path);
  }
  const RuleId r = g_->AddRule(path);
  for (const auto& t : *type) {
    if (!t.is_string()) return Error("'{}.type': expected type names", path);
    MESHLM_ASSIGN_OR_RETURN(RuleId b, Typed(t.get<std::string>(), s, path));
    g_->AddAlternative(r, {Grammar::Ref(b)});
  }
  return r;
}

Result<std::shared_ptr<const Grammar>> JsonSchemaGrammar(const ojson& schema,
                                                         const std::string& path) {
  auto g = std::make_shared<Grammar>();
  JsonGrammarBuilder b(g.get(), schema);
  MESHLM_ASSIGN_OR_RETURN(RuleId value, b.Value(schema, path));
  const RuleId root = g->AddRule("root");
  g->AddAlternative(root, {Grammar::Ref(value)});
  g->set_root(root);
  if (Status st = g->Finalize(); !st.ok()) return Error("'{}': {}", path, st.message());
  return std::shared_ptr<const Grammar>(std::move(g));
}

std::shared_ptr<const Grammar> JsonObjectGrammar() {
  static const std::shared_ptr<const Grammar> grammar = [] {
    auto g = std::make_shared<Grammar>();
    const ojson none;
    JsonGrammarBuilder b(g.get(), none);
    const RuleId root = g->AddRule("root");
    g->AddAlternative(root, {Grammar::Ref(b.AnyObject())});
    g->set_root(root);
    const Status st = g->Finalize();
    (void)st;  // a fixed grammar: Finalize cannot fail
    return std::shared_ptr<const Grammar>(std::move(g));
  }();
  return grammar;
}

}  // namespace meshlm::engine
