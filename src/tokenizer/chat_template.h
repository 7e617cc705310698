// Chat templates: renders a model's chat_template (tokenizer_config.json) for a list of
// messages, byte for byte as @huggingface/jinja renders it (transformers' settings:
// trim_blocks and lstrip_blocks on).
//
// Goals: the templates shipped with Qwen2.5/3, Llama 3.x, Mistral, DeepSeek V3 and
// Gemma 3; clear errors for malformed templates and for raise_exception(). Non-goals:
// template inheritance, includes, autoescaping.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "base/status.h"

namespace meshlm {

namespace jinja {
struct Node;
}

struct ChatTemplateOptions {
  bool add_generation_prompt = true;
  std::string bos_token;  // Tokenizer::bos_token()
  std::string eos_token;  // Tokenizer::eos_token()
  /// Tool definitions (OpenAI style array); null leaves `tools` undefined.
  nlohmann::ordered_json tools;
  /// Further variables, e.g. {"enable_thinking": false} or {"date_string": "1 Jan 2025"}.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
  /// The instant strftime_now() formats, in seconds since the epoch; -1: now.
  int64_t now_unix = -1;
};

/// A parsed template; parse once, render many times. Render is thread-safe.
/// Messages and tools are ordered_json so that tojson prints keys in the order the
/// client sent them (parse request bodies with nlohmann::ordered_json::parse).
class ChatTemplate {
 public:
  /// Errors name the line: "[chat_template] near line 3: expected '}}'".
  static Result<std::unique_ptr<ChatTemplate>> Parse(std::string_view source);
  ~ChatTemplate();

  /// `messages` is an array of objects ({"role", "content", "tool_calls", ...}).
  /// A template that calls raise_exception gives
  /// "[chat_template] the template refused the conversation: <its message>".
  Result<std::string> Render(const nlohmann::ordered_json& messages,
                             const ChatTemplateOptions& options) const;

 private:
  ChatTemplate() = default;
  std::vector<std::unique_ptr<jinja::Node>> program_;
};

/// Parse and Render in one call.
Result<std::string> RenderChatTemplate(std::string_view source,
                                       const nlohmann::ordered_json& messages,
                                       const ChatTemplateOptions& options);

}  // namespace meshlm
