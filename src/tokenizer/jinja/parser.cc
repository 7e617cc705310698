// Parser of the chat-template language: statements (if, for, set, macro, filter blocks)
// and expressions with the reference's precedence, lowest first: ternary / select, or,
// and, not, comparison and in, + - ~, * / // %, **, is, |, unary sign, call and member.
#include <cmath>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/value.h"

namespace meshlm::jinja {

namespace {

// Deeper nesting than this is refused rather than risking the stack (fuzzed inputs).
constexpr int kMaxDepth = 200;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  Result<NodeList> Run() {
    NodeList program;
    try {
      while (cur_ < t_.size()) program.push_back(Any());
    } catch (const TemplateError& e) {
      const int line = cur_ < t_.size() ? t_[cur_].line : (t_.empty() ? 1 : t_.back().line);
      return Error("[chat_template] near line {}: {}", line, e.message);
    }
    return program;
  }

 private:
  struct DepthGuard {
    explicit DepthGuard(int* d) : d_(d) {
      if (++*d_ > kMaxDepth) throw TemplateError{"template nests too deeply"};
    }
    ~DepthGuard() { --*d_; }
    int* d_;
  };

  [[noreturn]] void Fail(const std::string& what) { throw TemplateError{what}; }
  const Token& Peek(size_t ahead = 0) {
    if (cur_ + ahead >= t_.size()) Fail("unexpected end of template");
    return t_[cur_ + ahead];
  }
  bool Is(Tok type) const { return cur_ < t_.size() && t_[cur_].type == type; }
  bool IsIdent(std::string_view name, size_t ahead = 0) const {
    return cur_ + ahead < t_.size() && t_[cur_ + ahead].type == Tok::kIdent &&
           t_[cur_ + ahead].value == name;
  }
  // "{%" followed by one of the names.
  bool IsStatement(std::initializer_list<std::string_view> names) const {
    if (!Is(Tok::kOpenStatement) || cur_ + 1 >= t_.size() || t_[cur_ + 1].type != Tok::kIdent) {
      return false;
    }
    for (const auto n : names) {
      if (t_[cur_ + 1].value == n) return true;
    }
    return false;
  }
  void Expect(Tok type, const char* what) {
    if (!Is(type)) Fail(std::string("expected ") + what);
    ++cur_;
  }
  void ExpectIdent(const char* name) {
    if (!IsIdent(name)) Fail(std::string("expected '") + name + "'");
    ++cur_;
  }
  NodePtr New(Node::Kind kind) {
    auto n = std::make_unique<Node>();
    n->kind = kind;
    n->line = cur_ < t_.size() ? t_[cur_].line : 0;
    return n;
  }

  NodePtr Any() {
    DepthGuard guard(&depth_);
    const Token& tk = Peek();
    switch (tk.type) {
      case Tok::kComment:
        ++cur_;
        return New(Node::Kind::kText);  // empty text
      case Tok::kText: {
        auto n = New(Node::Kind::kText);
        n->s = tk.value;
        ++cur_;
        return n;
      }
      case Tok::kOpenStatement:
        return Statement();
      case Tok::kOpenExpression: {
        ++cur_;
        auto e = Expression();
        Expect(Tok::kCloseExpression, "'}}'");
        return e;
      }
      default:
        Fail("unexpected token '" + tk.value + "'");
    }
  }

  // Parses statements until "{% <one of names>"; the closing tag is left unconsumed.
  void BodyUntil(NodeList* body, std::initializer_list<std::string_view> names) {
    while (!IsStatement(names)) {
      if (cur_ >= t_.size()) {
        Fail("missing '{% " + std::string(*names.begin()) + " %}'");
      }
      body->push_back(Any());
    }
  }
  void EndTag(const char* name) {
    Expect(Tok::kOpenStatement, "'{%'");
    ExpectIdent(name);
    Expect(Tok::kCloseStatement, "'%}'");
  }

  NodePtr Statement() {
    Expect(Tok::kOpenStatement, "'{%'");
    if (!Is(Tok::kIdent)) Fail("expected a statement name after '{%'");
    const std::string name = t_[cur_++].value;
    if (name == "set") return Set();
    if (name == "if") {
      auto n = If();
      EndTag("endif");
      return n;
    }
    if (name == "for") {
      auto n = For();
      EndTag("endfor");
      return n;
    }
    if (name == "macro") {
      auto n = New(Node::Kind::kMacro);
      if (!Is(Tok::kIdent)) Fail("expected a macro name");
      n->s = t_[cur_++].value;
      Expect(Tok::kOpenParen, "'(' after the macro name");
      Arguments(&n->list, /*parameters=*/true);
      Expect(Tok::kCloseStatement, "'%}'");
      BodyUntil(&n->body, {"endmacro"});
      EndTag("endmacro");
      return n;
    }
    if (name == "break" || name == "continue") {
      Expect(Tok::kCloseStatement, "'%}'");
      return New(name == "break" ? Node::Kind::kBreak : Node::Kind::kContinue);
    }
    if (name == "filter") {
      auto n = New(Node::Kind::kFilterBlock);
      if (!Is(Tok::kIdent)) Fail("expected a filter name");
      n->s = t_[cur_++].value;
      if (Is(Tok::kOpenParen)) {
        ++cur_;
        n->flag = true;
        Arguments(&n->list, false);
      }
      Expect(Tok::kCloseStatement, "'%}'");
      BodyUntil(&n->body, {"endfilter"});
      EndTag("endfilter");
      return n;
    }
    Fail("unknown statement '" + name + "'");
  }

  NodePtr Set() {
    auto n = New(Node::Kind::kSet);
    n->a = Sequence(false);
    if (Is(Tok::kEquals)) {
      ++cur_;
      n->b = Sequence(false);
    } else {
      Expect(Tok::kCloseStatement, "'%}' or '='");
      BodyUntil(&n->body, {"endset"});
      Expect(Tok::kOpenStatement, "'{%'");
      ExpectIdent("endset");
    }
    Expect(Tok::kCloseStatement, "'%}'");
    return n;
  }

  NodePtr If() {
    DepthGuard guard(&depth_);
    auto n = New(Node::Kind::kIf);
    n->a = Expression();
    Expect(Tok::kCloseStatement, "'%}'");
    BodyUntil(&n->body, {"endif", "elif", "else"});
    if (IsStatement({"elif"})) {
      cur_ += 2;
      n->alt.push_back(If());
    } else if (IsStatement({"else"})) {
      cur_ += 2;
      Expect(Tok::kCloseStatement, "'%}'");
      BodyUntil(&n->alt, {"endif"});
    }
    return n;
  }

  NodePtr For() {
    auto n = New(Node::Kind::kFor);
    n->a = Sequence(true);
    if (n->a->kind != Node::Kind::kIdent && n->a->kind != Node::Kind::kTuple) {
      Fail("expected a name or names for the loop variable");
    }
    ExpectIdent("in");
    auto iterable = Expression();
    if (iterable->kind == Node::Kind::kSelect) {
      n->b = std::move(iterable->a);
      n->c = std::move(iterable->b);
    } else {
      n->b = std::move(iterable);
    }
    Expect(Tok::kCloseStatement, "'%}'");
    BodyUntil(&n->body, {"endfor", "else"});
    if (IsStatement({"else"})) {
      cur_ += 2;
      Expect(Tok::kCloseStatement, "'%}'");
      BodyUntil(&n->alt, {"endfor"});
    }
    return n;
  }

  // a, b, c -> tuple; a -> a.
  NodePtr Sequence(bool primary) {
    auto first = primary ? Primary() : Expression();
    if (!Is(Tok::kComma)) return first;
    auto tuple = New(Node::Kind::kTuple);
    tuple->list.push_back(std::move(first));
    while (Is(Tok::kComma)) {
      ++cur_;
      tuple->list.push_back(primary ? Primary() : Expression());
    }
    return tuple;
  }

  NodePtr Expression() {
    DepthGuard guard(&depth_);
    auto a = Or();
    if (!IsIdent("if")) return a;
    ++cur_;
    auto test = Or();
    if (IsIdent("else")) {
      ++cur_;
      auto n = New(Node::Kind::kTernary);
      n->a = std::move(test);
      n->b = std::move(a);
      n->c = Expression();
      return n;
    }
    auto n = New(Node::Kind::kSelect);
    n->a = std::move(a);
    n->b = std::move(test);
    return n;
  }

  NodePtr Binary(std::string op, NodePtr l, NodePtr r) {
    auto n = New(Node::Kind::kBinary);
    n->s = std::move(op);
    n->a = std::move(l);
    n->b = std::move(r);
    return n;
  }

  NodePtr Or() {
    auto l = And();
    while (IsIdent("or")) {
      ++cur_;
      l = Binary("or", std::move(l), And());
    }
    return l;
  }
  NodePtr And() {
    auto l = Not();
    while (IsIdent("and")) {
      ++cur_;
      l = Binary("and", std::move(l), Not());
    }
    return l;
  }
  NodePtr Not() {
    if (!IsIdent("not")) return Comparison();
    DepthGuard guard(&depth_);
    ++cur_;
    auto n = New(Node::Kind::kUnary);
    n->s = "not";
    n->a = Not();
    return n;
  }
  NodePtr Comparison() {
    auto l = Additive();
    while (true) {
      std::string op;
      if (IsIdent("not") && IsIdent("in", 1)) {
        cur_ += 2;
        op = "not in";
      } else if (IsIdent("in")) {
        ++cur_;
        op = "in";
      } else if (Is(Tok::kComparison)) {
        op = t_[cur_++].value;
      } else {
        break;
      }
      l = Binary(op, std::move(l), Additive());
    }
    return l;
  }
  NodePtr Additive() {
    auto l = Multiplicative();
    while (Is(Tok::kAdditive)) {
      const std::string op = t_[cur_++].value;
      l = Binary(op, std::move(l), Multiplicative());
    }
    return l;
  }
  NodePtr Multiplicative() {
    auto l = Power();
    while (Is(Tok::kMultiplicative)) {
      const std::string op = t_[cur_++].value;
      l = Binary(op, std::move(l), Power());
    }
    return l;
  }
  NodePtr Power() {
    auto l = Test();
    while (Is(Tok::kPower)) {
      ++cur_;
      l = Binary("**", std::move(l), Test());
    }
    return l;
  }
  NodePtr Test() {
    auto operand = Filter();
    while (IsIdent("is")) {
      ++cur_;
      auto n = New(Node::Kind::kTest);
      if (IsIdent("not")) {
        ++cur_;
        n->flag = true;
      }
      if (!Is(Tok::kIdent)) Fail("expected a test name after 'is'");
      n->s = t_[cur_++].value;
      n->a = std::move(operand);
      operand = std::move(n);
    }
    return operand;
  }
  NodePtr Filter() {
    auto operand = UnarySign();
    while (Is(Tok::kPipe)) {
      ++cur_;
      if (!Is(Tok::kIdent)) Fail("expected a filter name after '|'");
      auto n = New(Node::Kind::kFilter);
      n->s = t_[cur_++].value;
      if (Is(Tok::kOpenParen)) {
        ++cur_;
        n->flag = true;
        Arguments(&n->list, false);
      }
      n->a = std::move(operand);
      operand = std::move(n);
    }
    return operand;
  }
  NodePtr UnarySign() {
    if ((Is(Tok::kUnary) || Is(Tok::kAdditive)) &&
        (t_[cur_].value == "-" || t_[cur_].value == "+")) {
      DepthGuard guard(&depth_);
      auto n = New(Node::Kind::kUnary);
      n->s = t_[cur_++].value;
      n->a = UnarySign();
      return n;
    }
    return CallMember();
  }
  NodePtr CallMember() {
    auto e = Member(Primary());
    while (Is(Tok::kOpenParen)) {
      ++cur_;
      auto call = New(Node::Kind::kCall);
      call->a = std::move(e);
      Arguments(&call->list, false);
      e = Member(std::move(call));
    }
    return e;
  }
  // After '(' : arguments up to and including ')'.
  void Arguments(NodeList* out, bool parameters) {
    bool saw_keyword = false;
    while (!Is(Tok::kCloseParen)) {
      if (cur_ >= t_.size()) Fail("missing ')'");
      auto arg = Expression();
      if (Is(Tok::kEquals)) {
        ++cur_;
        if (arg->kind != Node::Kind::kIdent) Fail("expected a name before '='");
        auto kw = New(Node::Kind::kKwarg);
        kw->s = arg->s;
        kw->a = Expression();
        arg = std::move(kw);
        saw_keyword = true;
      } else if (saw_keyword) {
        Fail("positional argument after a keyword argument");
      }
      if (parameters && arg->kind != Node::Kind::kIdent && arg->kind != Node::Kind::kKwarg) {
        Fail("expected a parameter name");
      }
      out->push_back(std::move(arg));
      if (Is(Tok::kComma)) ++cur_;
    }
    ++cur_;  // ')'
  }
  NodePtr Member(NodePtr object) {
    while (Is(Tok::kDot) || Is(Tok::kOpenSquare)) {
      const bool computed = Is(Tok::kOpenSquare);
      ++cur_;
      auto n = New(Node::Kind::kMember);
      n->flag = computed;
      n->a = std::move(object);
      if (computed) {
        n->b = Subscript();
        Expect(Tok::kCloseSquare, "']'");
      } else {
        n->b = Primary();
        if (n->b->kind != Node::Kind::kIdent && n->b->kind != Node::Kind::kInt) {
          Fail("expected a name after '.'");
        }
      }
      object = std::move(n);
    }
    return object;
  }
  // Inside [ ]: an index or a slice a:b:c.
  NodePtr Subscript() {
    NodeList parts;
    bool is_slice = false;
    while (!Is(Tok::kCloseSquare)) {
      if (cur_ >= t_.size()) Fail("missing ']'");
      if (Is(Tok::kColon)) {
        parts.push_back(nullptr);
        ++cur_;
        is_slice = true;
      } else {
        parts.push_back(Expression());
        if (Is(Tok::kColon)) {
          ++cur_;
          is_slice = true;
        }
      }
    }
    if (parts.empty()) Fail("empty subscript '[]'");
    if (!is_slice) return std::move(parts[0]);
    if (parts.size() > 3) Fail("a slice takes at most three parts");
    auto n = New(Node::Kind::kSlice);
    parts.resize(3);
    n->a = std::move(parts[0]);
    n->b = std::move(parts[1]);
    n->c = std::move(parts[2]);
    return n;
  }

  NodePtr Primary() {
    DepthGuard guard(&depth_);
    const Token& tk = Peek();
    ++cur_;
    switch (tk.type) {
      case Tok::kNumber: {
        if (tk.value.find('.') != std::string::npos) {
          auto n = New(Node::Kind::kFloat);
          n->f = std::strtod(tk.value.c_str(), nullptr);
          return n;
        }
        auto n = New(Node::Kind::kInt);
        const double d = std::strtod(tk.value.c_str(), nullptr);
        if (std::fabs(d) > 9007199254740991.0) Fail("integer literal too large: " + tk.value);
        n->i = static_cast<int64_t>(d);
        return n;
      }
      case Tok::kString: {
        auto n = New(Node::Kind::kString);
        n->s = tk.value;
        while (Is(Tok::kString)) n->s += t_[cur_++].value;  // adjacent literals concatenate
        return n;
      }
      case Tok::kIdent: {
        auto n = New(Node::Kind::kIdent);
        n->s = tk.value;
        return n;
      }
      case Tok::kOpenParen: {
        auto e = Sequence(false);
        Expect(Tok::kCloseParen, "')'");
        return e;
      }
      case Tok::kOpenSquare: {
        auto n = New(Node::Kind::kArray);
        while (!Is(Tok::kCloseSquare)) {
          if (cur_ >= t_.size()) Fail("missing ']'");
          n->list.push_back(Expression());
          if (Is(Tok::kComma)) ++cur_;
        }
        ++cur_;
        return n;
      }
      case Tok::kOpenCurly: {
        auto n = New(Node::Kind::kObject);
        while (!Is(Tok::kCloseCurly)) {
          if (cur_ >= t_.size()) Fail("missing '}'");
          n->list.push_back(Expression());
          Expect(Tok::kColon, "':' between key and value");
          n->list.push_back(Expression());
          if (Is(Tok::kComma)) ++cur_;
        }
        ++cur_;
        return n;
      }
      default:
        Fail("unexpected token '" + tk.value + "'");
    }
  }

  std::vector<Token> t_;
  size_t cur_ = 0;
  int depth_ = 0;
};

}  // namespace

Result<NodeList> Parse(std::string_view source) {
  MESHLM_ASSIGN_OR_RETURN(auto tokens, Tokenize(source));
  return Parser(std::move(tokens)).Run();
}

}  // namespace meshlm::jinja
