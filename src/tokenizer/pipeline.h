// The stages around the BPE model, as tokenizer.json describes them: normalizers,
// pre-tokenizers, post-processors and decoders. Each is built from its JSON object and
// rejects unknown types and malformed fields with an error naming the field.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/status.h"

namespace meshlm::tok {

class BpeModel;

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  /// Rewrites *text (valid UTF-8) in place.
  virtual Status Normalize(std::string* text) const = 0;
};

/// A piece of pre-tokenized text. `at_origin` marks the piece that starts at offset 0 of
/// the original input (Metaspace's "first" prepend scheme needs it).
struct Piece {
  std::string text;
  bool at_origin = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  /// Splits (and may rewrite) every piece; empty pieces are dropped.
  virtual void Split(std::vector<Piece>* pieces) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  /// Transforms the token strings; the final text is their concatenation.
  virtual void DecodeChain(std::vector<std::string>* tokens) const = 0;
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  /// Adds special tokens around the ids of a single sequence.
  virtual void Process(std::vector<int32_t>* ids) const = 0;
};

/// Each factory accepts a JSON null (returns nullptr: the stage is absent).
/// `field` names the JSON path for error messages.
Result<std::unique_ptr<Normalizer>> MakeNormalizer(const nlohmann::json& j,
                                                   const std::string& field);
Result<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const nlohmann::json& j,
                                                       const std::string& field);
Result<std::unique_ptr<Decoder>> MakeDecoder(const nlohmann::json& j, const std::string& field);
/// `token_to_id` resolves token strings named by the processor.
Result<std::unique_ptr<PostProcessor>> MakePostProcessor(const nlohmann::json& j,
                                                         const std::string& field);

/// Reads a string field; error when it is missing or not a string.
Result<std::string> GetString(const nlohmann::json& j, const char* key, const std::string& field);
/// Reads a "pattern" object: {"String": s} (escaped to a literal) or {"Regex": r}.
Result<std::string> GetPattern(const nlohmann::json& j, const std::string& field);

}  // namespace meshlm::tok
