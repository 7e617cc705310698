// The /tokenize and /detokenize bodies and answers.
#include "server/tokenize_api.h"

#include <fmt/format.h>

#include "tokenizer/unicode.h"

namespace meshlm::server {
namespace {

using ojson = nlohmann::ordered_json;

ApiError NoTokenizer() {
  ApiError e;
  e.message =
      "this model has no tokenizer (tokenizer.json or GGUF metadata): it takes and gives token "
      "ids only";
  e.code = "tokenizer_missing";
  return e;
}

ApiError Missing(const char* field) {
  ApiError e = BadField(field, "missing (required)");
  e.code = "missing_required_parameter";
  return e;
}

ApiError TooMany(const char* field, size_t n) {
  return BadField(
      field, fmt::format("{} token ids, over the limit of {} per request", n, kMaxTokenizeIds));
}

}  // namespace

bool TokenizeAnswer(const std::string& text, const Tokenizer* tokenizer, std::string* answer,
                    ApiError* err) {
  ojson body;
  if (!ParseJsonObject(text, &body, err)) return false;
  bool add_special = false, with_pieces = false;
  if (!BoolField(body, "add_special", &add_special, err) ||
      !BoolField(body, "with_pieces", &with_pieces, err)) {
    return false;
  }
  const auto content = body.find("content");
  if (content == body.end()) {
    *err = Missing("content");
    return false;
  }
  if (!content->is_string()) {
    *err = BadField("content", fmt::format("expected a string, got {}", content->type_name()));
    return false;
  }
  if (tokenizer == nullptr) {
    *err = NoTokenizer();
    return false;
  }
  auto ids = tokenizer->Encode(content->get_ref<const std::string&>(), add_special);
  if (!ids.ok()) {
    *err = BadField("content", ids.status().message());
    return false;
  }
  if (ids->size() > kMaxTokenizeIds) {
    *err = TooMany("content", ids->size());
    return false;
  }
  nlohmann::json tokens = nlohmann::json::array();
  if (with_pieces) {
    const std::vector<std::string> pieces = tokenizer->Pieces(*ids);
    for (size_t i = 0; i < ids->size(); ++i) {
      nlohmann::json piece;
      if (tok::FindInvalidUtf8(pieces[i]) == std::string::npos) {
        piece = pieces[i];
      } else {
        // Part of a character: JSON text cannot hold it, its bytes can (as llama-server).
        piece = nlohmann::json::array();
        for (const char c : pieces[i]) piece.push_back(static_cast<unsigned char>(c));
      }
      tokens.push_back({{"id", (*ids)[i]}, {"piece", std::move(piece)}});
    }
  } else {
    tokens = *ids;
  }
  *answer = nlohmann::json{{"tokens", std::move(tokens)}}.dump();
  return true;
}

bool DetokenizeAnswer(const std::string& text, const Tokenizer* tokenizer, std::string* answer,
                      ApiError* err) {
  ojson body;
  if (!ParseJsonObject(text, &body, err)) return false;
  const auto tokens = body.find("tokens");
  if (tokens == body.end()) {
    *err = Missing("tokens");
    return false;
  }
  if (!tokens->is_array()) {
    *err = BadField("tokens",
                    fmt::format("expected an array of token ids, got {}", tokens->type_name()));
    return false;
  }
  if (tokens->size() > kMaxTokenizeIds) {
    *err = TooMany("tokens", tokens->size());
    return false;
  }
  if (tokenizer == nullptr) {
    *err = NoTokenizer();
    return false;
  }
  const size_t vocab = tokenizer->vocab_size();
  std::vector<int32_t> ids;
  ids.reserve(tokens->size());
  for (size_t i = 0; i < tokens->size(); ++i) {
    const ojson& t = (*tokens)[i];
    const std::string field = fmt::format("tokens[{}]", i);
    if (!t.is_number_integer()) {
      *err = BadField(field, fmt::format("expected a token id (an integer), got {}",
                                         t.is_number() ? t.dump() : t.type_name()));
      return false;
    }
    const bool in_range =
        t.is_number_unsigned()
            ? t.get<uint64_t>() < vocab
            : t.get<int64_t>() >= 0 && static_cast<uint64_t>(t.get<int64_t>()) < vocab;
    if (!in_range) {
      *err = BadField(
          field, fmt::format("{} is not a token id of this model (0..{})", t.dump(), vocab - 1));
      return false;
    }
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  // Decode makes invalid UTF-8 (ids that end inside a character) U+FFFD, so the content
  // is always JSON text.
  *answer = nlohmann::json{{"content", tokenizer->Decode(ids)}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
  return true;
}

}  // namespace meshlm::server
