// Builds a Tokenizer from a Hugging Face folder: tokenizer.json, tokenizer_config.json
// and generation_config.json.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/log.h"
#include "base/mapped_file.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace meshlm {

using nlohmann::json;

namespace {

// Token ids beyond this are surely a corrupt file (the largest real vocabularies hold
// about 260k entries); refusing them bounds the id tables we allocate.
constexpr int64_t kMaxTokenId = 1 << 24;

Result<json> ParseJson(std::string_view text, const std::string& source) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error("[tokenizer] {}: not valid JSON", source);
  if (!j.is_object()) return Error("[tokenizer] {}: expected a JSON object at the top", source);
  return j;
}

Result<std::unique_ptr<tok::BpeModel>> LoadBpe(const json& m) {
  const std::string type = m.value("type", "BPE");
  if (type != "BPE") {
    return Error("[tokenizer] model.type '{}' is not supported (only BPE)", type);
  }
  const auto vocab_it = m.find("vocab");
  if (vocab_it == m.end() || !vocab_it->is_object()) {
    return Error("[tokenizer] model.vocab: expected an object of token -> id");
  }
  std::vector<std::string> vocab;
  for (const auto& [token, id_json] : vocab_it->items()) {
    if (!id_json.is_number_integer()) {
      return Error("[tokenizer] model.vocab['{}']: id must be an integer", token);
    }
    const int64_t id = id_json.get<int64_t>();
    if (id < 0 || id > kMaxTokenId) {
      return Error("[tokenizer] model.vocab['{}']: id {} out of range", token, id);
    }
    if (token.empty()) return Error("[tokenizer] model.vocab: empty token for id {}", id);
    if (static_cast<size_t>(id) >= vocab.size()) vocab.resize(id + 1);
    if (!vocab[id].empty()) {
      return Error("[tokenizer] model.vocab: id {} given to both '{}' and '{}'", id, vocab[id],
                   token);
    }
    vocab[id] = token;
  }
  std::vector<std::pair<std::string, std::string>> merges;
  const auto merges_it = m.find("merges");
  if (merges_it != m.end() && !merges_it->is_null()) {
    if (!merges_it->is_array()) return Error("[tokenizer] model.merges: expected an array");
    merges.reserve(merges_it->size());
    for (size_t i = 0; i < merges_it->size(); ++i) {
      const json& e = (*merges_it)[i];
      if (e.is_string()) {
        // "a b": exactly one space separates the two parts.
        const std::string& s = e.get_ref<const std::string&>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
          return Error("[tokenizer] model.merges[{}]: '{}' is not two tokens separated by a space",
                       i, s);
        }
        merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
      } else {
        return Error("[tokenizer] model.merges[{}]: expected \"a b\" or [\"a\", \"b\"]", i);
      }
    }
  }
  tok::BpeOptions o;
  auto opt_string = [&](const char* key) {
    const auto it = m.find(key);
    return it != m.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto opt_bool = [&](const char* key) {
    const auto it = m.find(key);
    return it != m.end() && it->is_boolean() && it->get<bool>();
  };
  o.byte_fallback = opt_bool("byte_fallback");
  o.ignore_merges = opt_bool("ignore_merges");
  o.fuse_unk = opt_bool("fuse_unk");
  o.unk_token = opt_string("unk_token");
  o.continuing_subword_prefix = opt_string("continuing_subword_prefix");
  o.end_of_word_suffix = opt_string("end_of_word_suffix");
  return tok::BpeModel::Create(std::move(vocab), merges, std::move(o));
}

Result<std::vector<tok::AddedToken>> LoadAddedTokens(const json& j) {
  std::vector<tok::AddedToken> out;
  const auto it = j.find("added_tokens");
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_array()) return Error("[tokenizer] added_tokens: expected an array");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& a = (*it)[i];
    const std::string where = fmt::format("added_tokens[{}]", i);
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer()) {
      return Error("[tokenizer] {}: expected an object with an integer id", where);
    }
    tok::AddedToken t;
    const int64_t id = a["id"].get<int64_t>();
    if (id < 0 || id > kMaxTokenId) return Error("[tokenizer] {}: id {} out of range", where, id);
    t.id = static_cast<int32_t>(id);
    MESHLM_ASSIGN_OR_RETURN(t.content, tok::GetString(a, "content", where));
    if (t.content.empty()) return Error("[tokenizer] {}: empty content", where);
    if (tok::FindInvalidUtf8(t.content) != std::string::npos) {
      return Error("[tokenizer] {}: content is not valid UTF-8", where);
    }
    auto flag = [&](const char* key) {
      const auto f = a.find(key);
      return f != a.end() && f->is_boolean() && f->get<bool>();
    };
    t.special = flag("special");
    t.lstrip = flag("lstrip");
    t.rstrip = flag("rstrip");
    t.single_word = flag("single_word");
    t.normalized = a.contains("normalized") ? flag("normalized") : !t.special;
    out.push_back(std::move(t));
  }
  return out;
}

// A token field of tokenizer_config.json: "text", {"content": "text"} or null.
std::string ConfigToken(const json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return "";
}

}  // namespace

class TokenizerLoader {
 public:
  static Result<std::unique_ptr<Tokenizer>> Load(const json& j, const json& config,
                                                 const json& generation);
};

Result<std::unique_ptr<Tokenizer>> TokenizerLoader::Load(const json& j, const json& config,
                                                         const json& generation) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  const auto model_it = j.find("model");
  if (model_it == j.end() || !model_it->is_object()) {
    return Error("[tokenizer] 'model': missing or not an object");
  }
  MESHLM_ASSIGN_OR_RETURN(t->model_, LoadBpe(*model_it));
  auto field = [&](const char* key) { return j.contains(key) ? j[key] : json(); };
  MESHLM_ASSIGN_OR_RETURN(t->normalizer_, tok::MakeNormalizer(field("normalizer"), "normalizer"));
  MESHLM_ASSIGN_OR_RETURN(t->pre_tokenizer_,
                          tok::MakePreTokenizer(field("pre_tokenizer"), "pre_tokenizer"));
  MESHLM_ASSIGN_OR_RETURN(t->post_processor_,
                          tok::MakePostProcessor(field("post_processor"), "post_processor"));
  MESHLM_ASSIGN_OR_RETURN(t->decoder_, tok::MakeDecoder(field("decoder"), "decoder"));
  MESHLM_ASSIGN_OR_RETURN(t->added_, LoadAddedTokens(j));
  // Ids of added tokens are assigned as Hugging Face's library re-adds them on load: the
  // model's id when the content is in its vocabulary, else the next free id. The ids in
  // the file normally agree; when they do not, the library's choice is what a model was
  // trained with, so it wins (with a warning, as there).
  {
    std::vector<tok::AddedToken> unique;
    int64_t max_added = -1;
    for (tok::AddedToken& a : t->added_) {
      bool seen = false;
      for (const tok::AddedToken& u : unique) seen = seen || u.content == a.content;
      if (seen) continue;
      const int32_t model_id = t->model_->TokenToId(a.content);
      const int64_t vocab = static_cast<int64_t>(t->model_->vocab_size());
      const int32_t id =
          model_id >= 0 ? model_id : static_cast<int32_t>(std::max(vocab, max_added + 1));
      if (id != a.id) {
        MESHLM_LOG_WARN(
            "[tokenizer] added token '{}' has id {} in the file but {} by the "
            "loading rules; using {}",
            a.content, a.id, id, id);
      }
      a.id = id;
      max_added = std::max<int64_t>(max_added, id);
      unique.push_back(std::move(a));
    }
    t->added_ = std::move(unique);
  }

  t->vocab_size_ = t->model_->vocab_size();
  for (const tok::AddedToken& a : t->added_) {
    t->vocab_size_ = std::max(t->vocab_size_, static_cast<size_t>(a.id) + 1);
  }
  t->added_index_.assign(t->vocab_size_, -1);
  t->raw_matcher_ = std::make_unique<tok::AddedTokenMatcher>();
  t->normalized_matcher_ = std::make_unique<tok::AddedTokenMatcher>();
  for (size_t i = 0; i < t->added_.size(); ++i) {
    const tok::AddedToken& a = t->added_[i];
    if (t->added_index_[a.id] < 0) t->added_index_[a.id] = static_cast<int32_t>(i);
    if (!a.normalized) {
      t->raw_matcher_->Add(a.content, static_cast<int>(i));
      continue;
    }
    // Normalized tokens are looked for in normalized text, so normalize them too.
    std::string content = a.content;
    if (t->normalizer_) {
      MESHLM_RETURN_IF_ERROR(
          t->normalizer_->Normalize(&content).With(fmt::format("[tokenizer] added_tokens[{}]", i)));
    }
    t->normalized_matcher_->Add(content, static_cast<int>(i));
  }

  // tokenizer_config.json: special tokens and the chat template.
  t->bos_token_ = ConfigToken(config, "bos_token");
  t->eos_token_ = ConfigToken(config, "eos_token");
  if (!t->bos_token_.empty()) t->bos_id_ = t->TokenToId(t->bos_token_);
  if (!t->eos_token_.empty()) t->eos_id_ = t->TokenToId(t->eos_token_);
  if (t->eos_id_ >= 0) t->stop_ids_.push_back(t->eos_id_);
  if (const auto g = generation.find("eos_token_id"); g != generation.end()) {
    const json list = g->is_array() ? *g : json::array({*g});
    for (const json& id : list) {
      if (!id.is_number_integer()) continue;
      const auto v = id.get<int32_t>();
      if (v >= 0 && std::find(t->stop_ids_.begin(), t->stop_ids_.end(), v) == t->stop_ids_.end()) {
        t->stop_ids_.push_back(v);
      }
    }
  }
  if (const auto ct = config.find("chat_template"); ct != config.end()) {
    if (ct->is_string()) {
      t->chat_template_ = ct->get<std::string>();
    } else if (ct->is_array()) {
      for (const json& e : *ct) {
        if (!e.is_object() || !e.contains("name") || !e.contains("template") ||
            !e["name"].is_string() || !e["template"].is_string()) {
          return Error(
              "[tokenizer] tokenizer_config.json chat_template: list entries need "
              "string 'name' and 'template'");
        }
        t->named_templates_.emplace_back(e["name"].get<std::string>(),
                                         e["template"].get<std::string>());
        if (e["name"] == "default") t->chat_template_ = e["template"].get<std::string>();
      }
    }
  }
  return t;
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromHfJson(std::string_view tokenizer_json,
                                                         std::string_view config_json,
                                                         std::string_view generation_json,
                                                         const std::string& source) {
  MESHLM_ASSIGN_OR_RETURN(const json j, ParseJson(tokenizer_json, source + "/tokenizer.json"));
  json config = json::object(), generation = json::object();
  if (!config_json.empty()) {
    MESHLM_ASSIGN_OR_RETURN(config, ParseJson(config_json, source + "/tokenizer_config.json"));
  }
  if (!generation_json.empty()) {
    MESHLM_ASSIGN_OR_RETURN(generation,
                            ParseJson(generation_json, source + "/generation_config.json"));
  }
  try {
    auto t = TokenizerLoader::Load(j, config, generation);
    if (!t.ok()) return t.status().With(source);
    return t;
  } catch (const json::exception& e) {
    // A field of the wrong JSON type reached through value().
    return Error("[tokenizer] {}: malformed field: {}", source, e.what());
  }
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromHfDir(const std::string& dir) {
  const std::string path = dir + "/tokenizer.json";
  if (!FileExists(path)) {
    return Error("[tokenizer] {}: not found (a Hugging Face model folder holds tokenizer.json)",
                 path);
  }
  MESHLM_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(path));
  std::string config, generation;
  if (FileExists(dir + "/tokenizer_config.json")) {
    MESHLM_ASSIGN_OR_RETURN(config, ReadFileToString(dir + "/tokenizer_config.json"));
  }
  if (FileExists(dir + "/generation_config.json")) {
    MESHLM_ASSIGN_OR_RETURN(generation, ReadFileToString(dir + "/generation_config.json"));
  }
  return FromHfJson(text, config, generation, dir);
}

}  // namespace meshlm
