// POST /tokenize and POST /detokenize in llama-server's shapes: text to token ids (with
// their pieces if asked) and back, with the model's own tokenizer.
//
// Goals: what llama-server's clients send is accepted and answered alike; wrong types,
// ids outside the vocabulary and oversized requests are 400s naming the field.
// Non-goals: llama-server's mixed content (strings and ids in one array), per-token
// probabilities.
#pragma once

#include <cstddef>
#include <string>

#include "server/openai.h"
#include "tokenizer/tokenizer.h"

namespace meshlm::server {

/// The most ids one request may give or get back: far past any context this engine
/// serves, so a real prompt always fits, while it bounds an answer (with pieces, some
/// 40 bytes an id).
constexpr size_t kMaxTokenizeIds = size_t{1} << 20;

/// {"content": str, "add_special": bool = false, "with_pieces": bool = false} ->
/// {"tokens": [id, ...]}, or {"tokens": [{"id": n, "piece": str}, ...]} with pieces; a
/// piece that is not UTF-8 on its own (part of a character) is an array of its byte
/// values. The pieces add up to the text /detokenize gives for the ids. `tokenizer` may
/// be null (the model has none): an error then. False with `error` filled.
bool TokenizeAnswer(const std::string& body, const Tokenizer* tokenizer, std::string* answer,
                    ApiError* error);

/// {"tokens": [id, ...]} -> {"content": str}; special tokens are kept as their text.
/// False with `error` filled.
bool DetokenizeAnswer(const std::string& body, const Tokenizer* tokenizer, std::string* answer,
                      ApiError* error);

}  // namespace meshlm::server
