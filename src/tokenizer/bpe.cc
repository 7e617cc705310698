// BPE merges with a priority queue over a linked list of symbols: O(n log n) per word.
#include "tokenizer/bpe.h"

#include <fmt/format.h>

#include <algorithm>
#include <queue>

#include "tokenizer/unicode.h"

namespace meshlm::tok {

namespace {

// Words longer than this are not cached: they are rare (long runs without a split) and
// would crowd out the common short ones.
constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kMaxCacheEntries = 1 << 17;
// Past this many distinct characters that join a following metaspace, cutting words
// would rarely apply; long words then go through BPE whole.
constexpr size_t kMaxMetaspaceJoiners = 64;

uint64_t PairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

}  // namespace

Result<std::unique_ptr<BpeModel>> BpeModel::Create(
    std::vector<std::string> vocab, const std::vector<std::pair<std::string, std::string>>& merges,
    BpeOptions options) {
  std::unique_ptr<BpeModel> m(new BpeModel());
  m->vocab_ = std::move(vocab);
  m->options_ = std::move(options);
  m->token_to_id_.reserve(m->vocab_.size());
  for (size_t i = 0; i < m->vocab_.size(); ++i) {
    if (m->vocab_[i].empty()) continue;
    m->token_to_id_.emplace(m->vocab_[i], static_cast<int32_t>(i));
  }
  m->merges_.reserve(merges.size());
  const std::string& prefix = m->options_.continuing_subword_prefix;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    const int32_t ia = m->TokenToId(a);
    const int32_t ib = m->TokenToId(b);
    if (ia < 0 || ib < 0) {
      return Error("[tokenizer] merge {} ('{}' '{}'): token '{}' is not in the vocabulary", rank, a,
                   b, ia < 0 ? a : b);
    }
    std::string merged = a;
    merged +=
        std::string_view(b).substr(!prefix.empty() && b.starts_with(prefix) ? prefix.size() : 0);
    const int32_t im = m->TokenToId(merged);
    if (im < 0) {
      return Error("[tokenizer] merge {} ('{}' '{}'): result '{}' is not in the vocabulary", rank,
                   a, b, merged);
    }
    // The first (highest-priority) occurrence of a pair wins.
    m->merges_.emplace(PairKey(ia, ib), std::make_pair(static_cast<int32_t>(rank), im));
  }
  if (!m->options_.unk_token.empty()) {
    m->unk_id_ = m->TokenToId(m->options_.unk_token);
    if (m->unk_id_ < 0) {
      return Error("[tokenizer] unk_token '{}' is not in the vocabulary", m->options_.unk_token);
    }
  }
  constexpr std::string_view kMeta = "\xE2\x96\x81";
  if (!m->options_.ignore_merges && m->TokenToId(kMeta) >= 0) {
    for (const std::string& t : m->vocab_) {
      for (size_t p = t.find(kMeta, 1); p != std::string::npos; p = t.find(kMeta, p + 1)) {
        size_t b = p - 1;
        while (b > 0 && (static_cast<uint8_t>(t[b]) & 0xC0) == 0x80) --b;
        size_t q = b;
        const char32_t c = NextCodePoint(t, &q);
        if (c == 0x2581) continue;
        if (std::find(m->metaspace_joiners_.begin(), m->metaspace_joiners_.end(), c) ==
            m->metaspace_joiners_.end()) {
          m->metaspace_joiners_.push_back(c);
        }
      }
    }
    m->split_at_metaspace_ = m->metaspace_joiners_.size() <= kMaxMetaspaceJoiners;
  }
  m->byte_ids_.assign(256, -1);
  if (m->options_.byte_fallback) {
    for (int b = 0; b < 256; ++b) m->byte_ids_[b] = m->TokenToId(fmt::format("<0x{:02X}>", b));
  }
  return m;
}

int32_t BpeModel::TokenToId(std::string_view token) const {
  const auto it = token_to_id_.find(token);
  return it == token_to_id_.end() ? -1 : it->second;
}

const std::string& BpeModel::IdToToken(int32_t id) const {
  static const std::string kEmpty;
  return id >= 0 && static_cast<size_t>(id) < vocab_.size() ? vocab_[id] : kEmpty;
}

void BpeModel::Tokenize(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  if (split_at_metaspace_ && word.size() > kMaxCachedWordBytes / 4) {
    constexpr std::string_view kMeta = "\xE2\x96\x81";
    size_t begin = 0;
    for (size_t p = word.find(kMeta, 1); p != std::string_view::npos; p = word.find(kMeta, p + 1)) {
      size_t b = p - 1;
      while (b > 0 && (static_cast<uint8_t>(word[b]) & 0xC0) == 0x80) --b;
      size_t q = b;
      const char32_t c = NextCodePoint(word, &q);
      if (c == 0x2581 || std::find(metaspace_joiners_.begin(), metaspace_joiners_.end(), c) !=
                             metaspace_joiners_.end()) {
        continue;
      }
      TokenizeCached(word.substr(begin, p - begin), ids);
      begin = p;
    }
    TokenizeCached(word.substr(begin), ids);
    return;
  }
  TokenizeCached(word, ids);
}

void BpeModel::TokenizeCached(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    const auto it = cache_.find(word);
    if (it != cache_.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = ids->size();
  TokenizeUncached(word, ids);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::string(word), std::vector<int32_t>(ids->begin() + first, ids->end()));
  }
}

void BpeModel::TokenizeUncached(std::string_view word, std::vector<int32_t>* ids) const {
  const std::string& prefix = options_.continuing_subword_prefix;
  const std::string& suffix = options_.end_of_word_suffix;
  if (options_.ignore_merges) {
    const int32_t id = TokenToId(word);
    if (id >= 0) {
      ids->push_back(id);
      return;
    }
  }
  // Symbols: one per character (or per byte for byte-fallback characters), doubly linked.
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    uint32_t len;  // bytes of the word covered; 0 once merged into its left neighbour
  };
  std::vector<Symbol> syms;
  syms.reserve(word.size());
  bool last_was_unk = false;
  std::string piece;
  for (size_t pos = 0; pos < word.size();) {
    const size_t begin = pos;
    NextCodePoint(word, &pos);
    const bool is_first = begin == 0, is_last = pos == word.size();
    piece.clear();
    if (!is_first && !prefix.empty()) piece = prefix;
    piece.append(word.substr(begin, pos - begin));
    if (is_last && !suffix.empty()) piece += suffix;
    const int32_t id = TokenToId(piece);
    if (id >= 0) {
      syms.push_back({id, 0, 0, static_cast<uint32_t>(pos - begin)});
      last_was_unk = false;
      continue;
    }
    if (options_.byte_fallback) {
      bool all = true;
      for (size_t k = begin; k < pos; ++k) all &= byte_ids_[static_cast<uint8_t>(word[k])] >= 0;
      if (all) {
        for (size_t k = begin; k < pos; ++k) {
          syms.push_back({byte_ids_[static_cast<uint8_t>(word[k])], 0, 0, 1});
        }
        last_was_unk = false;
        continue;
      }
    }
    if (unk_id_ < 0) continue;  // no unk token: the character is dropped, as HF does
    if (options_.fuse_unk && last_was_unk) {
      syms.back().len += static_cast<uint32_t>(pos - begin);
    } else {
      syms.push_back({unk_id_, 0, 0, static_cast<uint32_t>(pos - begin)});
    }
    last_was_unk = true;
  }
  const int n = static_cast<int>(syms.size());
  for (int i = 0; i < n; ++i) {
    syms[i].prev = i - 1;
    syms[i].next = i + 1 < n ? i + 1 : -1;
  }

  // Candidate merges ordered by rank, then by position (leftmost first).
  struct Candidate {
    int32_t rank, pos, left_id, right_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto push = [&](int i) {
    const int j = syms[i].next;
    if (j < 0) return;
    const auto it = merges_.find(PairKey(syms[i].id, syms[j].id));
    if (it != merges_.end()) queue.push({it->second.first, i, syms[i].id, syms[j].id});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = syms[c.pos];
    // Stale entries: the left symbol was merged away or either side changed since.
    if (left.len == 0 || left.id != c.left_id || left.next < 0) continue;
    Symbol& right = syms[left.next];
    if (right.id != c.right_id) continue;
    left.id = merges_.find(PairKey(c.left_id, c.right_id))->second.second;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (left.next >= 0) syms[left.next].prev = c.pos;
    if (left.prev >= 0) push(left.prev);
    push(c.pos);
  }
  for (int i = n > 0 ? 0 : -1; i >= 0; i = syms[i].next) ids->push_back(syms[i].id);
}

}  // namespace meshlm::tok
