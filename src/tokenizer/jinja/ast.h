// Tokens and syntax tree of the chat-template language (a Jinja subset), and the
// lexer and parser entry points. Grammar and whitespace rules follow @huggingface/jinja
// with lstrip_blocks and trim_blocks on, as transformers renders chat templates.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace meshlm::jinja {

enum class Tok {
  kText,
  kNumber,
  kString,
  kIdent,
  kEquals,
  kOpenParen,
  kCloseParen,
  kOpenStatement,
  kCloseStatement,
  kOpenExpression,
  kCloseExpression,
  kOpenSquare,
  kCloseSquare,
  kOpenCurly,
  kCloseCurly,
  kComma,
  kDot,
  kColon,
  kPipe,
  kAdditive,
  kMultiplicative,
  kPower,
  kComparison,
  kUnary,
  kComment
};

struct Token {
  Tok type;
  std::string value;
  int line;
};

/// Splits a template into tokens. Errors carry the line.
Result<std::vector<Token>> Tokenize(std::string_view source);

struct Node;
using NodePtr = std::unique_ptr<Node>;
using NodeList = std::vector<NodePtr>;

struct Node {
  enum class Kind {
    // statements
    kText,
    kIf,
    kFor,
    kSet,
    kMacro,
    kBreak,
    kContinue,
    kFilterBlock,
    // expressions
    kInt,
    kFloat,
    kString,
    kIdent,
    kArray,
    kTuple,
    kObject,
    kMember,
    kSlice,
    kCall,
    kKwarg,
    kBinary,
    kUnary,
    kFilter,
    kTest,
    kTernary,
    kSelect
  };
  Kind kind;
  int line = 0;
  std::string s;  // text, identifier, operator, filter/test/macro name
  int64_t i = 0;
  double f = 0;
  bool flag = false;  // member: computed; test: negated; filter: called with arguments
  NodePtr a, b, c;
  NodeList list;  // array/tuple items, object key/value pairs, call arguments, parameters
  NodeList body, alt;
};

/// Parses a whole template.
Result<NodeList> Parse(std::string_view source);

}  // namespace meshlm::jinja
