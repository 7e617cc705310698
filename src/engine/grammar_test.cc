// Grammar matcher and JSON Schema grammars against nlohmann's parser and a brute-force
// mask, on fresh random documents and vocabularies.
#include "engine/grammar.h"

#include <gtest/gtest.h>

#include <random>
#include <regex>

#include "engine/json_schema.h"

namespace meshlm::engine {
namespace {

using ojson = nlohmann::ordered_json;

std::string RandomKey(std::mt19937& rng) {
  static const std::vector<std::string> pieces = {"a", "b", "name", "x y", "é", "\xE2\x82\xAC",
                                                  "\\", "\"", "\n", "\xF0\x9F\x98\x80", "0"};
  std::string s;
  for (int n = rng() % 4; n >= 0; --n) s += pieces[rng() % pieces.size()];
  return s;
}

ojson RandomJson(std::mt19937& rng, int depth) {
  const int kind = depth > 3 ? rng() % 5 : rng() % 7;
  switch (kind) {
    case 0:
      return nullptr;
    case 1:
      return rng() % 2 == 0;
    case 2:
      return static_cast<int64_t>(rng() % 2000000) - 1000000;
    case 3:
      return std::ldexp(static_cast<double>(rng() % 100000) - 50000, -(int)(rng() % 10));
    case 4:
      return RandomKey(rng);
    case 5: {
      ojson a = ojson::array();
      for (int n = rng() % 4; n > 0; --n) a.push_back(RandomJson(rng, depth + 1));
      return a;
    }
    default: {
      ojson o = ojson::object();
      for (int n = rng() % 4; n > 0; --n) o[RandomKey(rng)] = RandomJson(rng, depth + 1);
      return o;
    }
  }
}

bool Matches(const std::shared_ptr<const Grammar>& g, const std::string& text) {
  GrammarMatcher m(g);
  return m.Accept(text) && m.complete();
}

TEST(Grammar, AnyObjectAcceptsWhatJsonParsersAccept) {
  std::mt19937 rng(std::random_device{}());
  const auto g = JsonObjectGrammar();
  for (int i = 0; i < 300; ++i) {
    ojson o = ojson::object();
    for (int n = rng() % 5; n > 0; --n) o[RandomKey(rng)] = RandomJson(rng, 1);
    for (int indent : {-1, 2}) {
      const std::string text = o.dump(indent);
      ASSERT_TRUE(Matches(g, text)) << text;
    }
    // Damage the text: whatever the grammar still takes whole must parse as an object.
    std::string bad = o.dump();
    for (int k = 0; k < 3; ++k) {
      const size_t at = rng() % (bad.size() + 1);
      switch (rng() % 3) {
        case 0:
          if (at < bad.size()) bad.erase(at, 1);
          break;
        case 1:
          bad.insert(at, 1, "{}[]\",:0e.-\\ a\x01\xC3"[rng() % 18]);
          break;
        default:
          if (at < bad.size()) bad[at] = "{}[]\",:0e.-\\ a"[rng() % 15];
      }
      if (Matches(g, bad)) {
        // The parser refuses numbers out of a double's range, which JSON's grammar allows.
        const std::string in_range =
            std::regex_replace(bad, std::regex("([0-9])[eE][-+]?[0-9]+"), "$1e0");
        ASSERT_TRUE(ojson::accept(in_range)) << bad;
        ASSERT_TRUE(ojson::parse(in_range).is_object()) << bad;
      }
    }
  }
  for (const char* bad : {"[]", "{\"a\":01}", "{\"a\":1,}", "{\"a\" 1}", "{\"\xC3\x28\":1}",
                          "{\"\xED\xA0\x80\":1}", "{\"a\":\"\\x\"}", "{\"a\":tru}", "{} {}"}) {
    EXPECT_FALSE(Matches(g, bad)) << bad;
  }
}

// A schema with most supported keywords, and a generator of documents that fit it.
const char* kSchema = R"({
  "type": "object",
  "$defs": {"node": {"type": "object", "properties": {
      "label": {"type": "string"},
      "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
    "required": ["label"], "additionalProperties": false}},
  "properties": {
    "name": {"type": "string", "description": "ignored"},
    "age": {"type": "integer"},
    "score": {"type": ["number", "null"]},
    "kind": {"enum": ["cat", "dog", 3, null]},
    "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
    "ok": {"type": "boolean"},
    "fixed": {"const": {"v": [1, "two"]}},
    "either": {"anyOf": [{"type": "integer"}, {"type": "object", "properties":
        {"z": {"type": "boolean"}}, "required": ["z"]}]},
    "tree": {"$ref": "#/$defs/node"},
    "map": {"type": "object", "additionalProperties": {"type": "integer"}}
  },
  "required": ["name", "age", "kind", "tags"],
  "additionalProperties": false
})";

ojson Node(std::mt19937& rng, int depth) {
  ojson n = {{"label", RandomKey(rng)}};
  if (depth < 3 && rng() % 2) {
    n["children"] = ojson::array();
    for (int k = rng() % 3; k > 0; --k) n["children"].push_back(Node(rng, depth + 1));
  }
  return n;
}

ojson Conforming(std::mt19937& rng) {
  ojson d = ojson::object();
  d["name"] = RandomKey(rng);
  d["age"] = static_cast<int64_t>(rng() % 200) - 20;
  if (rng() % 2) d["score"] = rng() % 3 ? ojson(0.25 * (rng() % 100)) : ojson(nullptr);
  const ojson kinds = ojson::parse(R"(["cat", "dog", 3, null])");
  d["kind"] = kinds[rng() % 4];
  d["tags"] = ojson::array();
  for (int k = 1 + rng() % 3; k > 0; --k) d["tags"].push_back(RandomKey(rng));
  if (rng() % 2) d["ok"] = rng() % 2 == 0;
  if (rng() % 2) d["fixed"] = ojson::parse(R"({"v": [1, "two"]})");
  if (rng() % 2) d["either"] = rng() % 2 ? ojson(7) : ojson({{"z", true}});
  if (rng() % 2) d["tree"] = Node(rng, 0);
  if (rng() % 2) d["map"] = {{RandomKey(rng), 1}, {RandomKey(rng) + "_", -2}};
  return d;
}

TEST(Grammar, SchemaAcceptsConformingDocumentsAndRefusesOthers) {
  std::mt19937 rng(std::random_device{}());
  auto g = JsonSchemaGrammar(ojson::parse(kSchema), "schema");
  ASSERT_TRUE(g.ok()) << g.status().message();
  for (int i = 0; i < 200; ++i) {
    const ojson d = Conforming(rng);
    ASSERT_TRUE(Matches(*g, d.dump())) << d.dump();
    // Whitespace anywhere between tokens, except inside a const or enum value (written
    // compact).
    ojson pretty = d;
    pretty.erase("fixed");
    ASSERT_TRUE(Matches(*g, pretty.dump(2))) << pretty.dump(2);
    // Each way of breaking the schema, on a fresh valid document.
    ojson bad = d;
    switch (i % 8) {
      case 0:
        bad.erase("name");  // a required property missing
        break;
      case 1:
        bad["extra"] = 1;  // additionalProperties: false
        break;
      case 2:
        bad["age"] = 1.5;  // not an integer
        break;
      case 3:
        bad["kind"] = "bird";  // outside the enum
        break;
      case 4:
        bad["tags"] = ojson::array();  // minItems 1
        break;
      case 5:
        bad["tags"] = {"a", "b", "c", "d"};  // maxItems 3
        break;
      case 6:
        bad["tree"] = {{"label", "x"}, {"children", {{{"label", 1}}}}};  // a recursive mismatch
        break;
      default:
        bad["map"] = {{"k", "v"}};  // map values must be integers
    }
    ASSERT_FALSE(Matches(*g, bad.dump())) << bad.dump();
  }
  // Properties keep the schema's order.
  EXPECT_FALSE(Matches(*g, R"({"age": 1, "name": "a", "kind": 3, "tags": ["t"]})"));
  EXPECT_TRUE(Matches(*g, R"({"name": "a", "age": 1, "kind": 3, "tags": ["t"]})"));
}

TEST(Grammar, UnsupportedKeywordsAreNamed) {
  for (const auto& [schema, want] : std::vector<std::pair<const char*, const char*>>{
           {R"({"type": "string", "pattern": "^a"})", "'s.pattern'"},
           {R"({"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}})",
            "'s.properties.n.minimum'"},
           {R"({"oneOf": [{"type": "string"}]})", "'s.oneOf'"},
           {R"({"type": "strng"})", "'strng' is not"},
           {R"({"$ref": "#/$defs/missing"})", "points at nothing"},
           {R"({"type": "object", "properties": {"a": {}}, "required": ["b"]})", "\"b\""},
           {R"({"type": "array", "minItems": 3, "maxItems": 2})", "exceeds"},
           {R"({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"})", "left-recursive"}}) {
    auto g = JsonSchemaGrammar(ojson::parse(schema), "s");
    ASSERT_FALSE(g.ok()) << schema;
    EXPECT_NE(g.status().message().find(want), std::string::npos) << g.status().message();
  }
}

// The mask against feeding every token to a copy of the matcher.
void ExpectMaskIsExact(const TokenIndex& index, const GrammarMatcher& m, const std::string& where) {
  GrammarMatcher fast = m;
  std::vector<uint64_t> mask;
  fast.FillMask(index, &mask);
  for (size_t id = 0; id < index.vocab_size(); ++id) {
    GrammarMatcher slow = m;
    const bool want = slow.AcceptToken(index, static_cast<int32_t>(id));
    const bool got = (mask[id / 64] >> (id % 64)) & 1;
    ASSERT_EQ(got, want) << "token " << id << " '" << index.bytes(id) << "' after '" << where
                         << "'";
  }
}

TEST(Grammar, MaskMatchesTokenByTokenCheck) {
  std::mt19937 rng(std::random_device{}());
  // A random vocabulary of JSON-ish pieces, UTF-8 fragments and special tokens ("").
  const std::vector<std::string> atoms = {"{", "}", "[", "]", "\"", ":", ",", " ", "\n", "\\",
                                          "n", "u", "0", "1", "9", ".", "e", "-", "a", "name",
                                          "true", "null", "\xC3", "\xA9", "\xE2\x82", "\xAC",
                                          "\x01", "cat", "dog", "label"};
  std::vector<std::string> bytes = {"", ""};  // two special tokens
  for (int i = 0; i < 1500; ++i) {
    std::string t;
    for (int n = 1 + rng() % 4; n > 0; --n) t += atoms[rng() % atoms.size()];
    bytes.push_back(t);
  }
  for (const std::string& a : atoms) bytes.push_back(a);
  const TokenIndex index(bytes, {0});
  auto g = JsonSchemaGrammar(ojson::parse(kSchema), "schema");
  ASSERT_TRUE(g.ok());
  for (int i = 0; i < 4; ++i) {
    ojson d = Conforming(rng);
    if (i % 2) d.erase("fixed");
    const std::string doc = d.dump(i % 2 ? 2 : -1);
    GrammarMatcher m(*g);
    ExpectMaskIsExact(index, m, "");
    // States along the document: at structure, inside strings, inside numbers.
    for (size_t at = 0; at < doc.size(); at += 1 + rng() % 5) {
      GrammarMatcher p(*g);
      ASSERT_TRUE(p.Accept(doc.substr(0, at + 1)));
      ExpectMaskIsExact(index, p, doc.substr(0, at + 1));
    }
    GrammarMatcher done(*g);
    ASSERT_TRUE(done.Accept(doc));
    std::vector<uint64_t> mask;
    done.FillMask(index, &mask);
    EXPECT_TRUE(mask[0] & 1) << "end of sequence allowed once complete";
    EXPECT_TRUE(done.AcceptToken(index, 0));
    EXPECT_FALSE(done.AcceptToken(index, 5)) << "nothing after the end";
  }
}

TEST(Grammar, LongOutputKeepsMemoryBounded) {
  const auto g = JsonObjectGrammar();
  GrammarMatcher m(g);
  ASSERT_TRUE(m.Accept("{\"a\": ["));
  for (int i = 0; i < 20000; ++i) ASSERT_TRUE(m.Accept("1, "));
  ASSERT_TRUE(m.Accept("2]}"));
  EXPECT_TRUE(m.finished());
}

}  // namespace
}  // namespace meshlm::engine
