// Grammar: rules laid out flat, a matcher over persistent stacks, trie-walk token masks.
#include "engine/grammar.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <numeric>

namespace meshlm::engine {

namespace {

// Where a JSON string body is: 0 between characters; 11..13 that many UTF-8
// continuation bytes to come; 20..23 a lead byte whose next continuation byte has a
// narrower range (E0, ED, F0, F4: no overlong forms, no surrogates, nothing past
// U+10FFFF); 30 after a backslash; 31..34 hex digits of \u still to come.
constexpr int kReject = -1;

int StringStep(uint8_t sub, uint8_t b) {
  switch (sub) {
    case 0:
      if (b < 0x20 || b == '"') return kReject;
      if (b == '\\') return 30;
      if (b < 0x80) return 0;
      if (b >= 0xC2 && b <= 0xDF) return 11;
      if (b == 0xE0) return 20;
      if (b == 0xED) return 21;
      if (b >= 0xE1 && b <= 0xEF) return 12;
      if (b == 0xF0) return 22;
      if (b >= 0xF1 && b <= 0xF3) return 13;
      if (b == 0xF4) return 23;
      return kReject;
    case 11:
    case 12:
    case 13:
      return b >= 0x80 && b <= 0xBF ? (sub == 11 ? 0 : sub - 1) : kReject;
    case 20:
      return b >= 0xA0 && b <= 0xBF ? 11 : kReject;
    case 21:
      return b >= 0x80 && b <= 0x9F ? 11 : kReject;
    case 22:
      return b >= 0x90 && b <= 0xBF ? 12 : kReject;
    case 23:
      return b >= 0x80 && b <= 0x8F ? 12 : kReject;
    case 30:
      if (b == 'u') return 34;
      return std::string_view("\"\\/bfnrt").find(static_cast<char>(b)) != std::string_view::npos
                 ? 0
                 : kReject;
    case 31:
    case 32:
    case 33:
    case 34: {
      const bool hex = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F');
      return hex ? (sub == 31 ? 0 : sub - 1) : kReject;
    }
    default:
      return kReject;
  }
}

// Whole JSON string characters only, no closing quote: a matcher between characters
// of a free string takes these bytes and is back between characters.
bool IsStringContent(const std::string& bytes) {
  if (bytes.empty()) return false;
  int sub = 0;
  for (unsigned char b : bytes) {
    sub = StringStep(static_cast<uint8_t>(sub), b);
    if (sub == kReject) return false;
  }
  return sub == 0;
}

}  // namespace

// ---- Grammar ----

Grammar::RuleId Grammar::AddRule(std::string name) {
  names_.push_back(std::move(name));
  rules_.emplace_back();
  return static_cast<RuleId>(rules_.size() - 1);
}

void Grammar::AddAlternative(RuleId rule, std::vector<Item> items) {
  rules_[rule].push_back(std::move(items));
}

Grammar::Item Grammar::Bytes(const std::bitset<256>& set) {
  for (size_t i = 0; i < classes_.size(); ++i) {
    if (classes_[i] == set) return {Item::Kind::kBytes, static_cast<int32_t>(i)};
  }
  classes_.push_back(set);
  return {Item::Kind::kBytes, static_cast<int32_t>(classes_.size() - 1)};
}

Grammar::Item Grammar::Byte(uint8_t b) {
  std::bitset<256> s;
  s.set(b);
  return Bytes(s);
}

Grammar::Item Grammar::Range(uint8_t lo, uint8_t hi) {
  std::bitset<256> s;
  for (int b = lo; b <= hi; ++b) s.set(b);
  return Bytes(s);
}

std::vector<Grammar::Item> Grammar::Literal(std::string_view bytes) {
  std::vector<Item> items;
  for (unsigned char b : bytes) items.push_back(Byte(b));
  return items;
}

Status Grammar::Finalize() {
  if (final_) return OkStatus();
  const size_t n = rules_.size();
  if (n == 0) return Error("[grammar] no rules");
  for (size_t r = 0; r < n; ++r) {
    if (rules_[r].empty()) return Error("[grammar] rule '{}' has no alternatives", names_[r]);
  }
  // Nullable rules, to a fixed point; then refuse a rule that can reach itself without
  // consuming a byte (the matcher would expand it forever).
  std::vector<bool> nullable(n, false);
  auto item_nullable = [&](const Item& it) {
    return (it.kind == Item::Kind::kRule && nullable[it.arg]) || it.kind == Item::Kind::kJsonString;
  };
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < n; ++r) {
      if (nullable[r]) continue;
      for (const auto& alt : rules_[r]) {
        if (std::all_of(alt.begin(), alt.end(), item_nullable)) {
          nullable[r] = changed = true;
          break;
        }
      }
    }
  }
  std::vector<std::vector<int32_t>> first(n);  // rules reachable before any byte
  for (size_t r = 0; r < n; ++r) {
    for (const auto& alt : rules_[r]) {
      for (const Item& it : alt) {
        if (it.kind == Item::Kind::kRule) first[r].push_back(it.arg);
        if (!item_nullable(it)) break;
      }
    }
  }
  std::vector<uint8_t> color(n, 0);  // 0 new, 1 on the path, 2 done
  std::vector<std::pair<int32_t, size_t>> stack;
  for (size_t start = 0; start < n; ++start) {
    if (color[start]) continue;
    stack.push_back({static_cast<int32_t>(start), 0});
    color[start] = 1;
    while (!stack.empty()) {
      auto& [r, i] = stack.back();
      if (i == first[r].size()) {
        color[r] = 2;
        stack.pop_back();
        continue;
      }
      const int32_t next = first[r][i++];
      if (color[next] == 1) {
        return Error("[grammar] rule '{}' is left-recursive (reaches itself before a byte)",
                     names_[next]);
      }
      if (color[next] == 0) {
        color[next] = 1;
        stack.push_back({next, 0});
      }
    }
  }
  rule_alts_.assign(n, {});
  for (size_t r = 0; r < n; ++r) {
    for (const auto& alt : rules_[r]) {
      rule_alts_[r].push_back(static_cast<int32_t>(items_.size()));
      items_.insert(items_.end(), alt.begin(), alt.end());
      items_.push_back({Item::Kind::kEnd, 0});
    }
  }
  rules_.clear();
  final_ = true;
  return OkStatus();
}

// ---- TokenIndex ----

void TokenIndex::Trie::Build(const std::vector<std::string>& bytes,
                             const std::vector<int32_t>& ids) {
  std::vector<int32_t> order = ids;
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return bytes[a] < bytes[b]; });
  // Sorted, each token shares a prefix with the one before it: insert along the path.
  struct Temp {
    std::vector<std::pair<uint8_t, uint32_t>> kids;
    std::vector<int32_t> tokens;
  };
  std::vector<Temp> temp(1);
  std::vector<uint32_t> path = {0};  // path[d]: node after d bytes of the previous token
  const std::string* prev = nullptr;
  for (int32_t id : order) {
    const std::string& s = bytes[id];
    size_t common = 0;
    if (prev) {
      const size_t limit = std::min(prev->size(), s.size());
      while (common < limit && (*prev)[common] == s[common]) ++common;
    }
    path.resize(common + 1);
    for (size_t d = common; d < s.size(); ++d) {
      const uint32_t node = static_cast<uint32_t>(temp.size());
      temp.emplace_back();
      temp[path.back()].kids.push_back({static_cast<uint8_t>(s[d]), node});
      path.push_back(node);
    }
    temp[path.back()].tokens.push_back(id);
    prev = &s;
  }
  nodes.assign(temp.size(), {});
  children.clear();
  tokens.clear();
  for (size_t i = 0; i < temp.size(); ++i) {
    nodes[i].child_begin = static_cast<uint32_t>(children.size());
    children.insert(children.end(), temp[i].kids.begin(), temp[i].kids.end());
    nodes[i].child_end = static_cast<uint32_t>(children.size());
    nodes[i].token_begin = static_cast<uint32_t>(tokens.size());
    tokens.insert(tokens.end(), temp[i].tokens.begin(), temp[i].tokens.end());
    nodes[i].token_end = static_cast<uint32_t>(tokens.size());
  }
}

TokenIndex::TokenIndex(const std::vector<std::string>& bytes, std::vector<int32_t> eos_ids)
    : vocab_size_(bytes.size()), bytes_(bytes), eos_ids_(std::move(eos_ids)) {
  string_tokens_.assign((vocab_size_ + 63) / 64, 0);
  std::vector<int32_t> with_bytes, other;
  for (size_t id = 0; id < bytes_.size(); ++id) {
    if (bytes_[id].empty()) continue;
    max_len_ = std::max(max_len_, bytes_[id].size());
    with_bytes.push_back(static_cast<int32_t>(id));
    if (IsStringContent(bytes_[id])) {
      string_tokens_[id / 64] |= uint64_t{1} << (id % 64);
    } else {
      other.push_back(static_cast<int32_t>(id));
    }
  }
  all_.Build(bytes_, with_bytes);
  other_.Build(bytes_, other);
}

// ---- GrammarMatcher ----

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar) : g_(std::move(grammar)) {
  State s;
  for (int32_t a : g_->rule_alts_[g_->root_]) Expand(NewNode(a, -1, 0), &s, 0);
  tops_ = std::move(s.tops);
  accepting_ = s.accepting;
}

int32_t GrammarMatcher::NewNode(int32_t pos, int32_t parent, uint8_t sub) {
  nodes_.push_back({pos, parent, sub});
  return static_cast<int32_t>(nodes_.size() - 1);
}

void GrammarMatcher::Add(int32_t node, State* out) {
  const Node& n = nodes_[node];
  for (int32_t t : out->tops) {
    const Node& o = nodes_[t];
    if (o.pos == n.pos && o.parent == n.parent && o.sub == n.sub) return;
  }
  out->tops.push_back(node);
}

void GrammarMatcher::Expand(int32_t node, State* out, int depth) {
  // Finalize refused left recursion, so the depth is bounded by the grammar's nesting;
  // the guard only keeps a malformed grammar from exhausting the stack.
  if (depth > 4096) return;
  const Node n = nodes_[node];  // a copy: NewNode may move nodes_
  const Grammar::Item item = g_->items_[n.pos];
  switch (item.kind) {
    case Grammar::Item::Kind::kBytes:
      Add(node, out);
      return;
    case Grammar::Item::Kind::kJsonString:
      Add(node, out);
      if (n.sub == 0) Expand(NewNode(n.pos + 1, n.parent, 0), out, depth + 1);
      return;
    case Grammar::Item::Kind::kRule: {
      // A reference in tail position returns straight to this alternative's caller, so
      // a right-recursive loop keeps a constant stack.
      const bool tail = g_->items_[n.pos + 1].kind == Grammar::Item::Kind::kEnd;
      const int32_t ret = tail ? n.parent : node;
      for (int32_t a : g_->rule_alts_[item.arg]) Expand(NewNode(a, ret, 0), out, depth + 1);
      return;
    }
    case Grammar::Item::Kind::kEnd:
      if (n.parent < 0) {
        out->accepting = true;
      } else {
        const Node p = nodes_[n.parent];
        Expand(NewNode(p.pos + 1, p.parent, 0), out, depth + 1);
      }
      return;
  }
}

bool GrammarMatcher::Step(const State& from, uint8_t b, State* to) {
  to->tops.clear();
  to->accepting = false;
  for (int32_t t : from.tops) {
    const Node n = nodes_[t];
    const Grammar::Item item = g_->items_[n.pos];
    if (item.kind == Grammar::Item::Kind::kBytes) {
      if (g_->classes_[item.arg].test(b)) Expand(NewNode(n.pos + 1, n.parent, 0), to, 0);
    } else {  // kJsonString
      const int sub = StringStep(n.sub, b);
      if (sub != kReject) Expand(NewNode(n.pos, n.parent, static_cast<uint8_t>(sub)), to, 0);
    }
  }
  return !to->tops.empty() || to->accepting;
}

bool GrammarMatcher::Accept(std::string_view bytes) {
  if (ended_ || bytes.empty()) return false;
  const size_t mark = nodes_.size();
  State cur{tops_, accepting_}, next;
  for (unsigned char b : bytes) {
    if (cur.tops.empty() || !Step(cur, b, &next)) {
      nodes_.resize(mark);
      return false;
    }
    std::swap(cur, next);
  }
  tops_ = std::move(cur.tops);
  accepting_ = cur.accepting;
  // Keep only the nodes the live stacks reach, so a long output does not grow memory.
  if (nodes_.size() > 4096 + 64 * tops_.size()) {
    std::vector<int32_t> remap(nodes_.size(), -1);
    std::vector<Node> kept;
    std::function<int32_t(int32_t)> keep = [&](int32_t i) -> int32_t {
      if (i < 0) return -1;
      if (remap[i] >= 0) return remap[i];
      Node n = nodes_[i];
      n.parent = keep(n.parent);
      kept.push_back(n);
      return remap[i] = static_cast<int32_t>(kept.size() - 1);
    };
    for (int32_t& t : tops_) t = keep(t);
    nodes_ = std::move(kept);
  }
  return true;
}

bool GrammarMatcher::AcceptToken(const TokenIndex& index, int32_t id) {
  if (ended_ || id < 0) return false;
  const auto& eos = index.eos_ids();
  if (std::find(eos.begin(), eos.end(), id) != eos.end()) {
    if (!accepting_) return false;
    ended_ = true;
    return true;
  }
  if (static_cast<size_t>(id) >= index.vocab_size()) return false;
  return Accept(index.bytes(id));
}

bool GrammarMatcher::InFreeString(const State& s) {
  int32_t str = -1;
  for (int32_t t : s.tops) {
    const Node& n = nodes_[t];
    if (g_->items_[n.pos].kind != Grammar::Item::Kind::kJsonString) continue;
    if (str >= 0 || n.sub != 0) return false;
    str = t;
  }
  if (str < 0) return false;
  // Everything else alive must be what leaving that string leads to.
  State exit;
  exit.tops.push_back(str);
  const Node n = nodes_[str];
  Expand(NewNode(n.pos + 1, n.parent, 0), &exit, 0);
  if (exit.accepting != s.accepting || exit.tops.size() != s.tops.size()) return false;
  for (int32_t t : s.tops) {
    const Node& a = nodes_[t];
    const bool found = std::any_of(exit.tops.begin(), exit.tops.end(), [&](int32_t e) {
      const Node& b = nodes_[e];
      return a.pos == b.pos && a.parent == b.parent && a.sub == b.sub;
    });
    if (!found) return false;
  }
  return true;
}

void GrammarMatcher::Walk(const TokenIndex::Trie& trie, uint32_t node, const State& state,
                          size_t depth, std::vector<uint64_t>* mask) {
  const TokenIndex::Trie::Node& tn = trie.nodes[node];
  State& next = scratch_[depth + 1];
  for (uint32_t c = tn.child_begin; c < tn.child_end; ++c) {
    const auto [b, child] = trie.children[c];
    const size_t mark = nodes_.size();
    if (Step(state, b, &next)) {
      const TokenIndex::Trie::Node& cn = trie.nodes[child];
      for (uint32_t k = cn.token_begin; k < cn.token_end; ++k) {
        const int32_t id = trie.tokens[k];
        (*mask)[id / 64] |= uint64_t{1} << (id % 64);
      }
      if (!next.tops.empty() && cn.child_begin < cn.child_end) {
        Walk(trie, child, next, depth + 1, mask);
      }
    }
    nodes_.resize(mark);
  }
}

void GrammarMatcher::FillMask(const TokenIndex& index, std::vector<uint64_t>* mask) {
  mask->assign((index.vocab_size() + 63) / 64, 0);
  if (ended_) return;
  auto allow_eos = [&] {
    for (int32_t id : index.eos_ids()) {
      if (id >= 0 && static_cast<size_t>(id) < index.vocab_size()) {
        (*mask)[id / 64] |= uint64_t{1} << (id % 64);
      }
    }
  };
  if (accepting_) allow_eos();
  if (tops_.empty()) return;
  const size_t mark = nodes_.size();
  if (scratch_.size() < index.max_len_ + 2) scratch_.resize(index.max_len_ + 2);
  scratch_[0].tops = tops_;
  scratch_[0].accepting = accepting_;
  if (InFreeString(scratch_[0])) {
    for (size_t w = 0; w < mask->size(); ++w) (*mask)[w] |= index.string_tokens_[w];
    Walk(index.other_, 0, scratch_[0], 0, mask);
  } else {
    Walk(index.all_, 0, scratch_[0], 0, mask);
  }
  nodes_.resize(mark);
}

bool GrammarMatcher::ApplyMask(const TokenIndex& index, std::span<float> logits) {
  FillMask(index, &mask_);
  bool any = false;
  const float kNegInf = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < logits.size(); ++i) {
    const bool ok = i < index.vocab_size() && ((mask_[i / 64] >> (i % 64)) & 1);
    if (!ok) logits[i] = kNegInf;
    any = any || ok;
  }
  return any;
}

}  // namespace meshlm::engine
