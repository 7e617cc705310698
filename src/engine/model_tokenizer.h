// The tokenizer of a model, wherever the model keeps it: a Hugging Face folder's
// tokenizer.json, or a GGUF file's tokenizer.ggml.* metadata.
//
// GGUF stores the vocabulary, merges (or SentencePiece scores), token types and a
// pre-tokenizer *name*; the pipeline stages that tokenizer.json spells out are implied by
// the name. We rebuild those stages so that ids equal Hugging Face's for the same model.
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "model/gguf_model.h"
#include "tokenizer/tokenizer.h"

namespace meshlm::engine {

/// GGUF pre-tokenizer names we know the splitting rules of ("llama-bpe", "qwen2", ...).
const std::vector<std::string>& SupportedGgufPreTokenizers();

/// Tokenizer parts from GGUF metadata: the "gpt2" kind (byte-level BPE with merges) and
/// the "llama" kind (SentencePiece BPE with scores and byte fallback). Errors name the
/// metadata key at fault (an unknown kind or pre-tokenizer name, a bad special id).
Result<TokenizerParts> TokenizerPartsFromGguf(const model::GgufTokenizer& gguf);

/// The tokenizer of a model path: DIR/tokenizer.json (with its config files), or the
/// metadata of a .gguf file. Null, without error, when the model carries no tokenizer.
Result<std::unique_ptr<Tokenizer>> LoadModelTokenizer(const std::string& path);

}  // namespace meshlm::engine
