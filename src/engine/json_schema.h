// JSON Schema to grammar: the structured outputs of the OpenAI API (response_format
// json_schema / json_object, strict tool arguments) as a Grammar for constrained sampling.
//
// Goals: the schemas SDK helpers emit (pydantic, zod): type (one or a list), properties
// (kept in schema order), required, additionalProperties, items, minItems, maxItems, enum,
// const, anyOf, $ref into $defs/definitions (recursion included); annotations are ignored.
// A keyword the grammar cannot enforce is refused by name, never silently dropped.
// Non-goals: pattern, format, numeric and length bounds, oneOf/allOf/not.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "base/status.h"
#include "engine/grammar.h"

namespace meshlm::engine {

/// Adds rules for JSON values to a grammar. Between tokens: nothing, a space, or a newline
/// and up to kMaxIndent blanks; numbers have bounded digits.
class JsonGrammarBuilder {
 public:
  static constexpr int kMaxIndent = 20;
  /// `root` is the document $refs resolve in; it must outlive the builder. `compact`:
  /// at most one space between tokens (as call arguments are written in a tool call).
  JsonGrammarBuilder(Grammar* g, const nlohmann::ordered_json& root, bool compact = false);

  /// The rule for values matching `schema`; errors name `path` (the field the schema
  /// came from, e.g. "response_format.json_schema.schema") and the keyword.
  Result<Grammar::RuleId> Value(const nlohmann::ordered_json& schema, const std::string& path);
  Grammar::RuleId AnyValue();
  Grammar::RuleId AnyObject();
  /// Optional whitespace.
  Grammar::RuleId Space();

 private:
  Result<Grammar::RuleId> Object(const nlohmann::ordered_json& s, const std::string& path);
  Result<Grammar::RuleId> Array(const nlohmann::ordered_json& s, const std::string& path);
  Result<Grammar::RuleId> Ref(const std::string& ref, const std::string& path);
  Result<Grammar::RuleId> Typed(const std::string& type, const nlohmann::ordered_json& s,
                                const std::string& path);
  Grammar::RuleId Literal(const std::string& name, const std::string& text);
  Grammar::RuleId String();
  Grammar::RuleId Number(bool integer);
  Grammar::RuleId Digits(int min, int max);

  Grammar* g_;
  const nlohmann::ordered_json& root_;
  bool compact_ = false;
  std::map<std::string, Grammar::RuleId> cache_;  // built-in rules and $refs
  int depth_ = 0;
};

/// A grammar for one JSON value matching `schema` (whole document, no text around it).
Result<std::shared_ptr<const Grammar>> JsonSchemaGrammar(const nlohmann::ordered_json& schema,
                                                         const std::string& path);
/// A grammar for any JSON object (response_format {"type": "json_object"}).
std::shared_ptr<const Grammar> JsonObjectGrammar();

}  // namespace meshlm::engine
