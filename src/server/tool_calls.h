// Tool calling in OpenAI's shape: the request's tools and tool_choice, the grammar that
// forces a call (tool_choice "required" or a named function), and the parser that turns
// the model's tool-call text into choices[].message.tool_calls, streaming or not.
//
// Goals: the formats the chat templates of Qwen2.5/Qwen3 (Hermes-style <tool_call> JSON),
// Llama 3.1/3.2 (a bare JSON object with "parameters") and Mistral ([TOOL_CALLS] and a
// JSON array) teach their models, chosen from the template; a clear 400 when tools are
// sent to a template that has none of them. Text that only looks like a call but does not
// parse stays content. Non-goals: running tools (the client does), Llama's built-in
// python/brave tools.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "engine/grammar.h"

namespace meshlm::server {

struct ApiError;

enum class ToolFormat { kNone, kHermes, kLlama3, kMistral };
/// The format a chat template's source teaches, or kNone.
ToolFormat DetectToolFormat(std::string_view chat_template);
const char* ToolFormatName(ToolFormat f);

/// The tool fields of a chat request.
struct ToolRequest {
  nlohmann::ordered_json tools;  // OpenAI's array, as the template renders it; null: none
  enum class Choice { kAuto, kNone, kRequired, kNamed } choice = Choice::kAuto;
  std::string named;      // kNamed: the function
  bool parallel = true;   // parallel_tool_calls
  /// Tools are offered and the answer is parsed for calls.
  bool active() const { return !tools.is_null() && choice != Choice::kNone; }
};
/// Reads tools, tool_choice and parallel_tool_calls; errors name the field.
bool ParseTools(const nlohmann::ordered_json& body, ToolFormat format, ToolRequest* out,
                ApiError* error);
/// For a forced call (kRequired, kNamed): a grammar for exactly the format's call text,
/// arguments matching each function's parameters schema. `strict_only`: only functions
/// marked "strict": true are held to their schema; others take any object.
Result<std::shared_ptr<const engine::Grammar>> ToolCallGrammar(ToolFormat format,
                                                              const ToolRequest& request,
                                                              bool strict_only = false);
/// tool_choice auto with strict functions: the text that starts a call (the grammar then
/// applies from there), and how many of its bytes the grammar skips. False for a format
/// without a marker (Llama 3).
bool ToolCallTrigger(ToolFormat format, std::string* trigger, size_t* skip);

struct ToolCall {
  std::string id;         // "call_..."
  std::string name;
  std::string arguments;  // JSON text
};

/// Splits the model's text into content and calls as it streams. Push gives back the
/// text that is surely content (text that may begin a call is held until it is clear).
class ToolCallParser {
 public:
  explicit ToolCallParser(ToolFormat format) : format_(format) {}
  void Push(std::string_view text, std::string* content, std::vector<ToolCall>* calls);
  /// The end of the output: what is held comes out, as calls when it parses.
  void Finish(std::string* content, std::vector<ToolCall>* calls);
  size_t num_calls() const { return num_calls_; }

 private:
  // A call's JSON (or a JSON array of them) to calls; false when it is not one.
  bool ParseCalls(std::string_view json, std::vector<ToolCall>* calls);
  ToolFormat format_;
  std::string held_;
  bool inside_ = false;   // Hermes: after <tool_call>; Llama 3/Mistral: holding a call
  bool started_ = false;  // Llama 3/Mistral: the first non-blank byte was seen
  size_t num_calls_ = 0;
};

}  // namespace meshlm::server
