// The OpenAI wire format: request bodies of /v1/completions and /v1/chat/completions
// turned into engine requests, and responses, stream chunks and errors in OpenAI's shape.
//
// Goals: what the official SDKs send is accepted; unknown fields are ignored; wrong
// types and values name the field; response_format and forced tool calls are enforced
// while sampling (engine/grammar.h). Non-goals: logprobs, running tools.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "engine/request.h"
#include "engine/sampler.h"
#include "server/tool_calls.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace meshlm::server {

/// An error answer: HTTP status and OpenAI's {"error": {message, type, param, code}}.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string code;   // "" -> null
  std::string param;  // "" -> null
};
std::string ErrorBody(const ApiError& e);

/// Helpers of every JSON endpoint. ParseJsonObject: false, with `error` saying where,
/// when `text` is not JSON or not an object. BadField: a 400 naming the field
/// ("'field': message", param = field). BoolField: an optional boolean field (null and
/// absence keep *v).
bool ParseJsonObject(const std::string& text, nlohmann::ordered_json* body, ApiError* error);
ApiError BadField(const std::string& field, const std::string& message);
bool BoolField(const nlohmann::ordered_json& j, const char* name, bool* v, ApiError* error);

/// A parsed completion request.
struct ApiRequest {
  bool chat = false;
  std::string model;  // "" when absent
  bool stream = false;
  bool include_usage = false;
  size_t n = 1;       // choices
  ToolRequest tools;  // chat only
  engine::GenRequest gen;
};

/// What parsing needs from the model: its tokenizer (may be null: prompts must then be
/// token ids) and chat template (may be null), and the sampling a request gets for the
/// fields it leaves out (see engine::DefaultSampling).
struct PromptContext {
  const Tokenizer* tokenizer = nullptr;
  const ChatTemplate* chat_template = nullptr;
  ToolFormat tool_format = ToolFormat::kNone;  // what the template teaches
  engine::SamplingParams defaults;
};

/// Parses and tokenizes a request body. False with `error` filled for bad input.
bool ParseRequest(const std::string& body, bool chat, const PromptContext& ctx, ApiRequest* out,
                  ApiError* error);

/// Response bodies and SSE payloads (the JSON after "data: ").
struct ResponseMeta {
  std::string id;  // "chatcmpl-..." / "cmpl-..."
  std::string model;
  int64_t created = 0;
  bool chat = false;
};
/// OpenAI's usage; prompt_tokens_details.cached_tokens counts prompt tokens the prefix
/// cache supplied.
nlohmann::json Usage(size_t prompt_tokens, size_t completion_tokens, size_t cached_tokens = 0);
/// With `calls` (chat), the message carries tool_calls, its content is null when empty,
/// and the finish reason is "tool_calls".
std::string FullResponse(const ResponseMeta& m, const std::string& text,
                         const std::string& finish_reason, size_t prompt_tokens,
                         size_t completion_tokens, const std::vector<ToolCall>& calls = {},
                         size_t cached_tokens = 0);
/// One choice of a full response.
struct ChoiceOut {
  std::string text;
  std::string finish_reason;
  std::vector<ToolCall> calls;
  bool want_logprobs = false;
  std::vector<engine::TokenLogprob> logprobs;
};
/// OpenAI's logprobs object: chat {"content": [{token, logprob, bytes, top_logprobs}]};
/// completions {tokens, token_logprobs, top_logprobs, text_offset}, offsets from
/// `text_offset` (the bytes of the text before these tokens).
nlohmann::json LogprobsJson(bool chat, const std::vector<engine::TokenLogprob>& tokens,
                            size_t text_offset = 0);
/// Several choices (n > 1); usage counts the prompt once and every choice's tokens.
std::string FullResponseN(const ResponseMeta& m, const std::vector<ChoiceOut>& choices,
                          size_t prompt_tokens, size_t completion_tokens, size_t cached_tokens);
/// A chunk whose delta carries `calls`, numbered from `first_index`, each whole; `choice`
/// is the choice's index.
std::string ToolCallChunk(const ResponseMeta& m, size_t first_index,
                          const std::vector<ToolCall>& calls, size_t choice = 0);
/// A chunk carrying `text` (chat: the first chunk, with `role`, has role "assistant"),
/// or the finish reason when `finish_reason` is not empty.
std::string StreamChunk(const ResponseMeta& m, const std::string& text, bool role,
                        const std::string& finish_reason, size_t choice = 0,
                        const nlohmann::json& logprobs = nullptr);
/// The final usage chunk (stream_options.include_usage): empty choices.
std::string UsageChunk(const ResponseMeta& m, size_t prompt_tokens, size_t completion_tokens,
                       size_t cached_tokens = 0);

/// Compares without an early exit, so the time taken does not reveal the matching prefix.
bool ConstantTimeEquals(const std::string& a, const std::string& b);

}  // namespace meshlm::server
