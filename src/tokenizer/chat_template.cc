// ChatTemplate: the public face of the chat-template interpreter.
#include "tokenizer/chat_template.h"

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/interp.h"

namespace meshlm {

ChatTemplate::~ChatTemplate() = default;

Result<std::unique_ptr<ChatTemplate>> ChatTemplate::Parse(std::string_view source) {
  MESHLM_ASSIGN_OR_RETURN(auto program, jinja::Parse(source));
  std::unique_ptr<ChatTemplate> t(new ChatTemplate());
  t->program_ = std::move(program);
  return t;
}

Result<std::string> ChatTemplate::Render(const nlohmann::ordered_json& messages,
                                         const ChatTemplateOptions& options) const {
  if (!messages.is_array()) return Error("[chat_template] messages must be a JSON array");
  if (!options.extra.is_object() && !options.extra.is_null()) {
    return Error("[chat_template] extra variables must be a JSON object");
  }
  jinja::Interpreter interp(options.now_unix);
  jinja::Env globals;
  interp.AddGlobals(globals);
  if (options.extra.is_object()) {
    for (const auto& [k, v] : options.extra.items()) globals.Set(k, jinja::FromJson(v));
  }
  globals.Set("messages", jinja::FromJson(messages));
  globals.Set("add_generation_prompt", jinja::Value::Bool(options.add_generation_prompt));
  globals.Set("bos_token", jinja::Value::Str(options.bos_token));
  globals.Set("eos_token", jinja::Value::Str(options.eos_token));
  if (!options.tools.is_null()) globals.Set("tools", jinja::FromJson(options.tools));
  try {
    return interp.Render(program_, globals);
  } catch (const std::exception& e) {
    // Not expected (the interpreter reports its errors as TemplateError); keep it an error.
    return Error("[chat_template] rendering failed: {}", e.what());
  } catch (const jinja::TemplateError& e) {
    if (e.raised) {
      return Error("[chat_template] the template refused the conversation: {}", e.message);
    }
    return Error("[chat_template] {}", e.message);
  }
}

Result<std::string> RenderChatTemplate(std::string_view source,
                                       const nlohmann::ordered_json& messages,
                                       const ChatTemplateOptions& options) {
  MESHLM_ASSIGN_OR_RETURN(auto t, ChatTemplate::Parse(source));
  return t->Render(messages, options);
}

}  // namespace meshlm
