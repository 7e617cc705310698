// Reads a Hugging Face folder (tokenizer.json, tokenizer_config.json,
// generation_config.json) into TokenizerParts.
#include <nlohmann/json.hpp>

#include "base/mapped_file.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/tokenizer.h"

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

Status ReadModel(const json& m, TokenizerParts* p) {
  const std::string type = m.value("type", "BPE");
  if (type != "BPE") return Error("[tokenizer] model.type '{}' is not supported (only BPE)", type);
  const auto vocab_it = m.find("vocab");
  if (vocab_it == m.end() || !vocab_it->is_object()) {
    return Error("[tokenizer] model.vocab: expected an object of token -> id");
  }
  for (const auto& [token, id_json] : vocab_it->items()) {
    if (!id_json.is_number_integer()) {
      return Error("[tokenizer] model.vocab['{}']: id must be an integer", token);
    }
    const int64_t id = id_json.get<int64_t>();
    if (id < 0 || id > kMaxTokenId) {
      return Error("[tokenizer] model.vocab['{}']: id {} out of range", token, id);
    }
    if (token.empty()) return Error("[tokenizer] model.vocab: empty token for id {}", id);
    if (static_cast<size_t>(id) >= p->vocab.size()) p->vocab.resize(id + 1);
    if (!p->vocab[id].empty()) {
      return Error("[tokenizer] model.vocab: id {} given to both '{}' and '{}'", id, p->vocab[id],
                   token);
    }
    p->vocab[id] = token;
  }
  const auto merges_it = m.find("merges");
  if (merges_it != m.end() && !merges_it->is_null()) {
    if (!merges_it->is_array()) return Error("[tokenizer] model.merges: expected an array");
    p->merges.reserve(merges_it->size());
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
        p->merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        p->merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
      } else {
        return Error("[tokenizer] model.merges[{}]: expected \"a b\" or [\"a\", \"b\"]", i);
      }
    }
  }
  auto opt_string = [&](const char* key) {
    const auto it = m.find(key);
    return it != m.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto opt_bool = [&](const char* key) {
    const auto it = m.find(key);
    return it != m.end() && it->is_boolean() && it->get<bool>();
  };
  p->byte_fallback = opt_bool("byte_fallback");
  p->ignore_merges = opt_bool("ignore_merges");
  p->fuse_unk = opt_bool("fuse_unk");
  p->unk_token = opt_string("unk_token");
  p->continuing_subword_prefix = opt_string("continuing_subword_prefix");
  p->end_of_word_suffix = opt_string("end_of_word_suffix");
  return OkStatus();
}

Status ReadAddedTokens(const json& j, TokenizerParts* p) {
  const auto it = j.find("added_tokens");
  if (it == j.end() || it->is_null()) return OkStatus();
  if (!it->is_array()) return Error("[tokenizer] added_tokens: expected an array");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& a = (*it)[i];
    const std::string where = fmt::format("added_tokens[{}]", i);
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer()) {
      return Error("[tokenizer] {}: expected an object with an integer id", where);
    }
    TokenizerParts::AddedToken t;
    const int64_t id = a["id"].get<int64_t>();
    if (id < 0 || id > kMaxTokenId) return Error("[tokenizer] {}: id {} out of range", where, id);
    t.id = static_cast<int32_t>(id);
    MESHLM_ASSIGN_OR_RETURN(t.content, tok::GetString(a, "content", where));
    auto flag = [&](const char* key) {
      const auto f = a.find(key);
      return f != a.end() && f->is_boolean() && f->get<bool>();
    };
    t.special = flag("special");
    t.lstrip = flag("lstrip");
    t.rstrip = flag("rstrip");
    t.single_word = flag("single_word");
    t.normalized = a.contains("normalized") ? flag("normalized") : !t.special;
    p->added_tokens.push_back(std::move(t));
  }
  return OkStatus();
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

Status ReadConfigs(const json& config, const json& generation, TokenizerParts* p) {
  p->bos_token = ConfigToken(config, "bos_token");
  p->eos_token = ConfigToken(config, "eos_token");
  if (const auto g = generation.find("eos_token_id"); g != generation.end()) {
    const json list = g->is_array() ? *g : json::array({*g});
    for (const json& id : list) {
      if (id.is_number_integer()) p->extra_stop_ids.push_back(id.get<int32_t>());
    }
  }
  const auto ct = config.find("chat_template");
  if (ct == config.end()) return OkStatus();
  if (ct->is_string()) {
    p->chat_template = ct->get<std::string>();
  } else if (ct->is_array()) {
    for (const json& e : *ct) {
      if (!e.is_object() || !e.contains("name") || !e.contains("template") ||
          !e["name"].is_string() || !e["template"].is_string()) {
        return Error(
            "[tokenizer] tokenizer_config.json chat_template: list entries need string 'name' "
            "and 'template'");
      }
      p->named_chat_templates.emplace_back(e["name"].get<std::string>(),
                                           e["template"].get<std::string>());
      if (e["name"] == "default") p->chat_template = e["template"].get<std::string>();
    }
  }
  return OkStatus();
}

Result<TokenizerParts> ReadParts(const json& j, const json& config, const json& generation) {
  TokenizerParts p;
  const auto model_it = j.find("model");
  if (model_it == j.end() || !model_it->is_object()) {
    return Error("[tokenizer] 'model': missing or not an object");
  }
  MESHLM_RETURN_IF_ERROR(ReadModel(*model_it, &p));
  MESHLM_RETURN_IF_ERROR(ReadAddedTokens(j, &p));
  auto field = [&](const char* key) { return j.contains(key) ? j[key] : json(); };
  p.normalizer = field("normalizer");
  p.pre_tokenizer = field("pre_tokenizer");
  p.post_processor = field("post_processor");
  p.decoder = field("decoder");
  MESHLM_RETURN_IF_ERROR(ReadConfigs(config, generation, &p));
  return p;
}

}  // namespace

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
    auto parts = ReadParts(j, config, generation);
    if (!parts.ok()) return parts.status().With(source);
    auto t = FromParts(std::move(parts).value());
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
