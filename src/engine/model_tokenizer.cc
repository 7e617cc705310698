#include "engine/model_tokenizer.h"

#include <sys/stat.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "model/gguf.h"

namespace meshlm::engine {

namespace {

using nlohmann::json;

// GGUF token types (as llama.cpp's converter writes them).
enum TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// Splitting rules of the byte-level BPE pre-tokenizers, by GGUF name. The regexes are the
// ones the models' tokenizer.json files carry.
constexpr const char* kGpt2Regex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
constexpr const char* kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kTekkenRegex =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|"
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kDeepseekV3Regexes[] = {
    "\\p{N}{1,3}",
    "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    "[!\"#$%&'()*+,\\-./"
    ":;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
};

struct PreTokenizerRule {
  std::vector<std::string> names;
  std::vector<const char*> regexes;  // empty: GPT-2's ByteLevel splitting
  bool nfc = false;                  // the model normalizes text to NFC first
  bool ignore_merges = false;        // a word found whole in the vocabulary is one token
};

const std::vector<PreTokenizerRule>& Rules() {
  static const std::vector<PreTokenizerRule> rules = {
      {{"default", "gpt-2", "gpt2", ""}, {}, false, false},
      {{"llama-bpe", "llama3", "llama-v3"}, {kLlama3Regex}, false, true},
      {{"qwen2", "deepseek-r1-qwen"}, {kQwen2Regex}, true, false},
      {{"tekken"}, {kTekkenRegex}, false, true},
      {{"deepseek-v3"},
       {kDeepseekV3Regexes[0], kDeepseekV3Regexes[1], kDeepseekV3Regexes[2]},
       false,
       false},
  };
  return rules;
}

json Split(const char* regex) {
  return {{"type", "Split"},
          {"pattern", {{"Regex", regex}}},
          {"behavior", "Isolated"},
          {"invert", false}};
}

// TemplateProcessing that puts BOS before and/or EOS after a single sequence.
json SpecialTemplate(const model::GgufTokenizer& g, bool bos, bool eos) {
  json single = json::array(), specials = json::object();
  auto add = [&](int64_t id) {
    const std::string& t = g.tokens[static_cast<size_t>(id)];
    single.push_back({{"SpecialToken", {{"id", t}, {"type_id", 0}}}});
    specials[t] = {{"id", t}, {"ids", {id}}, {"tokens", {t}}};
  };
  if (bos) add(g.bos_id);
  single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
  if (eos) add(g.eos_id);
  return {{"type", "TemplateProcessing"}, {"single", single}, {"special_tokens", specials}};
}

// Number of bytes of the UTF-8 sequence starting with byte `c` (1 for stray bytes).
size_t Utf8Length(unsigned char c) {
  return c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
}

// SentencePiece BPE merges a pair when the joined piece is in the vocabulary, highest
// score first. As merges: every split of every piece into two pieces, ordered by the
// joined piece's score, then its id, then the ids of the two halves.
std::vector<std::pair<std::string, std::string>> MergesFromScores(const model::GgufTokenizer& g) {
  auto mergeable = [&](size_t id) {
    const int32_t type = g.token_types.empty() ? kNormal : g.token_types[id];
    return type == kNormal || type == kUserDefined;
  };
  std::unordered_map<std::string_view, int32_t> ids;
  for (size_t i = 0; i < g.tokens.size(); ++i) {
    if (mergeable(i)) ids.emplace(g.tokens[i], static_cast<int32_t>(i));
  }
  struct Merge {
    float score;
    int32_t joined, left, right;
  };
  std::vector<Merge> merges;
  for (size_t i = 0; i < g.tokens.size(); ++i) {
    if (!mergeable(i)) continue;
    const std::string& t = g.tokens[i];
    for (size_t cut = Utf8Length(t[0]); cut < t.size(); cut += Utf8Length(t[cut])) {
      auto l = ids.find(std::string_view(t).substr(0, cut));
      if (l == ids.end()) continue;
      auto r = ids.find(std::string_view(t).substr(cut));
      if (r == ids.end()) continue;
      merges.push_back({g.scores.empty() ? -static_cast<float>(i) : g.scores[i],
                        static_cast<int32_t>(i), l->second, r->second});
    }
  }
  std::sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.joined != b.joined) return a.joined < b.joined;
    if (a.left != b.left) return a.left < b.left;
    return a.right < b.right;
  });
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (const Merge& m : merges) out.emplace_back(g.tokens[m.left], g.tokens[m.right]);
  return out;
}

bool IsFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

const std::vector<std::string>& SupportedGgufPreTokenizers() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& r : Rules()) {
      for (const auto& n : r.names) {
        if (!n.empty()) v.push_back(n);
      }
    }
    return v;
  }();
  return names;
}

Result<TokenizerParts> TokenizerPartsFromGguf(const model::GgufTokenizer& g) {
  const size_t n = g.tokens.size();
  if (n == 0) return Error("[gguf] tokenizer.ggml.tokens is empty");
  if (!g.token_types.empty() && g.token_types.size() != n) {
    return Error("[gguf] tokenizer.ggml.token_type has {} entries for {} tokens",
                 g.token_types.size(), n);
  }
  const bool spm = g.model == "llama";
  if (!spm && g.model != "gpt2") {
    return Error(
        "[gguf] tokenizer.ggml.model '{}' is not supported (supported: 'gpt2' byte-level BPE, "
        "'llama' SentencePiece BPE)",
        g.model);
  }
  if (g.add_bos && g.bos_id < 0) {
    return Error("[gguf] tokenizer.ggml.add_bos_token is set but there is no bos_token_id");
  }
  if (g.add_eos && g.eos_id < 0) {
    return Error("[gguf] tokenizer.ggml.add_eos_token is set but there is no eos_token_id");
  }
  TokenizerParts p;
  p.vocab = g.tokens;
  // Control, unknown and user-defined tokens are matched whole in the text, before any
  // splitting, as the added tokens of tokenizer.json are.
  for (size_t i = 0; i < n && !g.token_types.empty(); ++i) {
    const int32_t type = g.token_types[i];
    if (type != kControl && type != kUserDefined && type != kUnknown) continue;
    if (g.tokens[i].empty()) continue;
    TokenizerParts::AddedToken a;
    a.id = static_cast<int32_t>(i);
    a.content = g.tokens[i];
    a.special = type != kUserDefined;
    p.added_tokens.push_back(std::move(a));
  }
  if (spm) {
    p.merges = MergesFromScores(g);
    p.byte_fallback = true;
    p.fuse_unk = true;
    if (g.unk_id >= 0) p.unk_token = g.tokens[static_cast<size_t>(g.unk_id)];
    json replace_space = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}};
    json decoders =
        json::array({{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
                     {{"type", "ByteFallback"}},
                     {{"type", "Fuse"}}});
    if (g.add_space_prefix) {
      p.normalizer = {
          {"type", "Sequence"},
          {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", "▁"}}, replace_space})}};
      decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
    } else {
      p.normalizer = replace_space;
    }
    p.decoder = {{"type", "Sequence"}, {"decoders", decoders}};
  } else {
    p.merges.reserve(g.merges.size());
    for (size_t i = 0; i < g.merges.size(); ++i) {
      const std::string& m = g.merges[i];
      const size_t space = m.find(' ', 1);
      if (space == std::string::npos) {
        return Error("[gguf] tokenizer.ggml.merges[{}] '{}' is not two tokens joined by a space", i,
                     m);
      }
      p.merges.emplace_back(m.substr(0, space), m.substr(space + 1));
    }
    const PreTokenizerRule* rule = nullptr;
    for (const auto& r : Rules()) {
      if (std::find(r.names.begin(), r.names.end(), g.pre) != r.names.end()) rule = &r;
    }
    if (rule == nullptr) {
      std::string known;
      for (const auto& name : SupportedGgufPreTokenizers())
        known += (known.empty() ? "" : ", ") + name;
      return Error("[gguf] tokenizer.ggml.pre '{}' is not a pre-tokenizer meshlm knows ({})", g.pre,
                   known);
    }
    p.ignore_merges = rule->ignore_merges;
    if (rule->nfc) p.normalizer = {{"type", "NFC"}};
    if (rule->regexes.empty()) {
      p.pre_tokenizer = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
    } else {
      json seq = json::array();
      for (const char* re : rule->regexes) seq.push_back(Split(re));
      seq.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}});
      p.pre_tokenizer = {{"type", "Sequence"}, {"pretokenizers", seq}};
    }
    p.decoder = {{"type", "ByteLevel"}};
  }
  if (g.add_bos || g.add_eos) p.post_processor = SpecialTemplate(g, g.add_bos, g.add_eos);
  if (g.bos_id >= 0) p.bos_token = g.tokens[static_cast<size_t>(g.bos_id)];
  if (g.eos_id >= 0) p.eos_token = g.tokens[static_cast<size_t>(g.eos_id)];
  if (g.eot_id >= 0) p.extra_stop_ids.push_back(static_cast<int32_t>(g.eot_id));
  p.chat_template = g.chat_template;
  return p;
}

Result<std::unique_ptr<Tokenizer>> LoadModelTokenizer(const std::string& path) {
  if (!IsFile(path)) {
    if (!IsFile(path + "/tokenizer.json")) return std::unique_ptr<Tokenizer>();
    return Tokenizer::FromHfDir(path);
  }
  MESHLM_ASSIGN_OR_RETURN(std::unique_ptr<model::GgufFile> file, model::GgufFile::Open(path));
  MESHLM_ASSIGN_OR_RETURN(model::GgufTokenizer g, model::ReadGgufTokenizer(*file));
  if (g.model.empty()) return std::unique_ptr<Tokenizer>();
  auto parts = TokenizerPartsFromGguf(g);
  if (!parts.ok()) return parts.status().With(fmt::format("'{}'", path));
  return Tokenizer::FromParts(std::move(parts).value());
}

}  // namespace meshlm::engine
