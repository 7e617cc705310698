// OpenAI request parsing and response formatting.
#include "server/openai.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "engine/json_schema.h"

namespace meshlm::server {
namespace {

using ojson = nlohmann::ordered_json;

// Reads an optional number field into *v; null and absence keep the default.
bool Number(const ojson& j, const char* name, double lo, double hi, double* v, ApiError* err) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_number()) {
    *err = BadField(name, fmt::format("expected a number, got {}", it->type_name()));
    return false;
  }
  const double x = it->get<double>();
  if (!(x >= lo && x <= hi)) {
    *err = BadField(name, fmt::format("{} is outside [{}, {}]", x, lo, hi));
    return false;
  }
  *v = x;
  return true;
}

// OpenAI's logit_bias: {"token id": bias in [-100, 100], ...}; null or absent for none.
bool LogitBias(const ojson& j, std::vector<std::pair<int32_t, float>>* out, ApiError* err) {
  constexpr size_t kMaxEntries = 1 << 16;
  auto it = j.find("logit_bias");
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_object()) {
    *err = BadField("logit_bias",
                    fmt::format("expected an object of token id to bias, got {}", it->type_name()));
    return false;
  }
  if (it->size() > kMaxEntries) {
    *err = BadField("logit_bias", fmt::format("{} entries; at most {}", it->size(), kMaxEntries));
    return false;
  }
  for (const auto& [key, value] : it->items()) {
    int64_t id = -1;
    const bool digits =
        !key.empty() && key.size() <= 10 &&
        std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (digits) id = std::stoll(key);
    if (!digits || id > std::numeric_limits<int32_t>::max()) {
      *err = BadField("logit_bias", fmt::format("key '{}' is not a token id", key));
      return false;
    }
    if (!value.is_number() || !(value.get<double>() >= -100 && value.get<double>() <= 100)) {
      *err = BadField("logit_bias",
                      fmt::format("the bias for token {} must be a number in [-100, 100]", key));
      return false;
    }
    out->emplace_back(static_cast<int32_t>(id), value.get<float>());
  }
  return true;
}

bool Integer(const ojson& j, const char* name, int64_t lo, int64_t hi, int64_t* v, ApiError* err) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_number_integer()) {
    *err = BadField(name, fmt::format("expected an integer, got {}", it->type_name()));
    return false;
  }
  const int64_t x = it->is_number_unsigned() && it->get<uint64_t>() > INT64_MAX
                        ? std::numeric_limits<int64_t>::max()
                        : it->get<int64_t>();
  if (x < lo || x > hi) {
    *err = BadField(name, fmt::format("{} is outside [{}, {}]", x, lo, hi));
    return false;
  }
  *v = x;
  return true;
}

// Message content as text: a string, or an array of {"type": "text", "text": ...} parts.
bool ContentText(const ojson& content, size_t i, std::string* out, ApiError* err) {
  const std::string field = fmt::format("messages[{}].content", i);
  if (content.is_null()) return true;
  if (content.is_string()) {
    *out = content.get<std::string>();
    return true;
  }
  if (!content.is_array()) {
    *err = BadField(field, "expected a string or an array of text parts");
    return false;
  }
  for (const auto& part : content) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
        !part["text"].is_string()) {
      *err = BadField(field, "only parts of type 'text' with a string 'text' are supported");
      return false;
    }
    *out += part["text"].get<std::string>();
  }
  return true;
}

// A schema the grammar cannot take: the compiler's message names the path already.
ApiError SchemaError(const std::string& field, const Status& why) {
  ApiError e = BadField(field, why.message());
  e.message = why.message();
  e.code = "unsupported_schema";
  return e;
}

// response_format: {"type": "text" | "json_object" | "json_schema", "json_schema":
// {"name", "schema", "strict"}}. A schema the grammar cannot enforce is a 400 naming the
// keyword: answers must never silently break the schema.
bool ResponseFormat(const ojson& body, std::shared_ptr<const engine::Grammar>* grammar,
                    ApiError* err) {
  const auto it = body.find("response_format");
  if (it == body.end() || it->is_null()) return true;
  const char* kField = "response_format";
  if (!it->is_object() || !it->contains("type") || !(*it)["type"].is_string()) {
    *err = BadField(kField, "expected an object with a string 'type'");
    return false;
  }
  const std::string type = (*it)["type"].get<std::string>();
  if (type == "text") return true;
  if (type == "json_object") {
    *grammar = engine::JsonObjectGrammar();
    return true;
  }
  if (type != "json_schema") {
    *err = BadField("response_format.type",
                    fmt::format("'{}' is not one of text, json_object, json_schema",
                                type.substr(0, 40)));
    return false;
  }
  const auto js = it->find("json_schema");
  if (js == it->end() || !js->is_object()) {
    *err = BadField("response_format.json_schema", "expected an object with a 'schema'");
    return false;
  }
  const auto schema = js->find("schema");
  if (schema == js->end()) {
    // OpenAI's default: any JSON object.
    *grammar = engine::JsonObjectGrammar();
    return true;
  }
  auto g = engine::JsonSchemaGrammar(*schema, "response_format.json_schema.schema");
  if (!g.ok()) {
    *err = SchemaError("response_format.json_schema.schema", g.status());
    return false;
  }
  *grammar = std::move(*g);
  return true;
}

bool ChatPrompt(const ojson& body, const PromptContext& ctx, const ToolRequest& tools,
                std::vector<int32_t>* ids, ApiError* err) {
  auto it = body.find("messages");
  if (it == body.end()) {
    *err = BadField("messages", "missing (required)");
    err->code = "missing_required_parameter";
    return false;
  }
  if (!it->is_array() || it->empty()) {
    *err = BadField("messages", "expected a non-empty array");
    return false;
  }
  ojson messages = ojson::array();
  for (size_t i = 0; i < it->size(); ++i) {
    const ojson& m = (*it)[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      *err = BadField(fmt::format("messages[{}].role", i), "expected a string");
      return false;
    }
    const std::string role = m["role"].get<std::string>();
    if (role != "system" && role != "developer" && role != "user" && role != "assistant" &&
        role != "tool") {
      *err = BadField(fmt::format("messages[{}].role", i),
                      fmt::format("'{}' is not one of system, developer, user, assistant, tool",
                                  role.substr(0, 40)));
      return false;
    }
    ojson copy = m;
    std::string text;
    if (!ContentText(m.contains("content") ? m["content"] : ojson(), i, &text, err)) return false;
    copy["content"] = text;
    // Templates print a call's arguments as JSON: give them the object, not its text.
    if (auto calls = copy.find("tool_calls"); calls != copy.end() && calls->is_array()) {
      for (auto& c : *calls) {
        if (!c.is_object() || !c.contains("function") || !c["function"].is_object()) continue;
        ojson& f = c["function"];
        if (f.contains("arguments") && f["arguments"].is_string()) {
          try {
            f["arguments"] = ojson::parse(f["arguments"].get<std::string>());
          } catch (const std::exception&) {
            // Not JSON: the template gets the text as sent.
          }
        }
      }
    }
    messages.push_back(std::move(copy));
  }
  if (ctx.tokenizer == nullptr || ctx.chat_template == nullptr) {
    err->status = 400;
    err->message = "this model has no chat template (tokenizer_config.json): use /v1/completions";
    err->code = "chat_template_missing";
    return false;
  }
  ChatTemplateOptions opt;
  opt.bos_token = ctx.tokenizer->bos_token();
  opt.eos_token = ctx.tokenizer->eos_token();
  if (tools.active()) opt.tools = tools.tools;
  auto text = ctx.chat_template->Render(messages, opt);
  if (!text.ok()) {
    *err = BadField("messages",
                    fmt::format("the chat template refused them: {}", text.status().message()));
    return false;
  }
  auto encoded = ctx.tokenizer->Encode(*text, false);
  if (!encoded.ok()) {
    *err = BadField("messages", encoded.status().message());
    return false;
  }
  *ids = std::move(*encoded);
  return true;
}

bool CompletionPrompt(const ojson& body, const PromptContext& ctx, std::vector<int32_t>* ids,
                      ApiError* err) {
  auto it = body.find("prompt");
  if (it == body.end()) {
    *err = BadField("prompt", "missing (required)");
    err->code = "missing_required_parameter";
    return false;
  }
  ojson p = *it;
  // A list of one prompt (string or ids) is that prompt; more would need n > 1 choices.
  if (p.is_array() && !p.empty() && (p[0].is_string() || p[0].is_array())) {
    if (p.size() != 1) {
      *err = BadField("prompt", "only one prompt per request is supported");
      return false;
    }
    p = ojson(p[0]);
  }
  if (p.is_string()) {
    if (ctx.tokenizer == nullptr) {
      *err = BadField("prompt", "this model has no tokenizer.json: send token ids");
      return false;
    }
    auto encoded = ctx.tokenizer->Encode(p.get<std::string>(), true);
    if (!encoded.ok()) {
      *err = BadField("prompt", encoded.status().message());
      return false;
    }
    *ids = std::move(*encoded);
    return true;
  }
  if (p.is_array()) {
    for (const auto& t : p) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX) {
        *err = BadField("prompt", "expected a string, or an array of token ids");
        return false;
      }
      ids->push_back(static_cast<int32_t>(t.get<int64_t>()));
    }
    return true;
  }
  *err = BadField("prompt", fmt::format("expected a string or an array, got {}", p.type_name()));
  return false;
}

bool StopStrings(const ojson& body, std::vector<std::string>* out, ApiError* err) {
  auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return true;
  if (it->is_string()) {
    out->push_back(it->get<std::string>());
    return true;
  }
  if (it->is_array() && it->size() <= 16) {
    for (const auto& s : *it) {
      if (!s.is_string()) break;
      out->push_back(s.get<std::string>());
    }
    if (out->size() == it->size()) return true;
  }
  *err = BadField("stop", "expected a string or an array of at most 16 strings");
  return false;
}

}  // namespace

ApiError BadField(const std::string& field, const std::string& message) {
  ApiError e;
  e.message = fmt::format("'{}': {}", field, message);
  e.param = field;
  e.code = "invalid_value";
  return e;
}

bool BoolField(const nlohmann::ordered_json& j, const char* name, bool* v, ApiError* err) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_boolean()) {
    *err = BadField(name, fmt::format("expected a boolean, got {}", it->type_name()));
    return false;
  }
  *v = it->get<bool>();
  return true;
}

bool ParseJsonObject(const std::string& text, nlohmann::ordered_json* body, ApiError* err) {
  try {
    *body = ojson::parse(text);
  } catch (const nlohmann::json::parse_error& ex) {
    // The library's text ends in "last read: '...'", which may hold the bad bytes; the
    // byte position says where they are.
    std::string what = ex.what();
    if (const size_t cut = what.find("; last read"); cut != std::string::npos) what.resize(cut);
    err->message = fmt::format("the body is not valid JSON at byte {}: {}", ex.byte, what);
    err->code = "invalid_json";
    return false;
  } catch (const std::exception& ex) {
    err->message = fmt::format("the body is not valid JSON: {}", ex.what());
    err->code = "invalid_json";
    return false;
  }
  if (!body->is_object()) {
    err->message = "the body must be a JSON object";
    err->code = "invalid_json";
    return false;
  }
  return true;
}

std::string ErrorBody(const ApiError& e) {
  nlohmann::json j = {{"error",
                       {{"message", e.message},
                        {"type", e.type},
                        {"param", e.param.empty() ? nlohmann::json() : nlohmann::json(e.param)},
                        {"code", e.code.empty() ? nlohmann::json() : nlohmann::json(e.code)}}}};
  // A message may quote the client's bytes, which need not be UTF-8.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Chat: logprobs (bool) and top_logprobs (0..20); completions: logprobs (0..5), the
// number of alternatives. -1: none asked.
bool Logprobs(const ojson& body, bool chat, int32_t* out, ApiError* err) {
  int64_t top = 0;
  if (!chat) {
    int64_t n = -1;
    if (!Integer(body, "logprobs", 0, 5, &n, err)) return false;
    *out = static_cast<int32_t>(n);
    return true;
  }
  bool want = false;
  if (!BoolField(body, "logprobs", &want, err) || !Integer(body, "top_logprobs", 0, 20, &top, err)) {
    return false;
  }
  if (!want && body.contains("top_logprobs") && !body["top_logprobs"].is_null()) {
    *err = BadField("top_logprobs", "needs \"logprobs\": true");
    return false;
  }
  *out = want ? static_cast<int32_t>(top) : -1;
  return true;
}

// n past this is refused: every choice is a running sequence of its own.
constexpr int64_t kMaxChoices = 16;

bool ParseRequest(const std::string& text, bool chat, const PromptContext& ctx, ApiRequest* out,
                  ApiError* err) {
  ojson body;
  if (!ParseJsonObject(text, &body, err)) return false;
  out->chat = chat;
  if (auto it = body.find("model"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) {
      *err = BadField("model", "expected a string");
      return false;
    }
    out->model = it->get<std::string>();
  }
  engine::GenRequest& g = out->gen;
  g.sampling.temperature = ctx.defaults.temperature;
  g.sampling.top_k = ctx.defaults.top_k;
  g.sampling.top_p = ctx.defaults.top_p;
  g.sampling.min_p = ctx.defaults.min_p;
  g.sampling.repetition_penalty = ctx.defaults.repetition_penalty;
  double temperature = g.sampling.temperature, top_p = g.sampling.top_p, min_p = g.sampling.min_p,
         rep = g.sampling.repetition_penalty, presence = 0, frequency = 0;
  int64_t max_tokens = 0, top_k = g.sampling.top_k, seed = 0, n = 1;
  const int64_t kMaxInt = std::numeric_limits<int32_t>::max();
  if (!Integer(body, "max_tokens", 1, kMaxInt, &max_tokens, err) ||
      !Integer(body, "max_completion_tokens", 1, kMaxInt, &max_tokens, err) ||
      !Number(body, "temperature", 0, 2, &temperature, err) ||
      !Number(body, "top_p", 0, 1, &top_p, err) ||
      !Integer(body, "top_k", -1, kMaxInt, &top_k, err) ||
      !Number(body, "min_p", 0, 1, &min_p, err) ||
      !Number(body, "repetition_penalty", 0, 10, &rep, err) ||
      !Number(body, "presence_penalty", -2, 2, &presence, err) ||
      !Number(body, "frequency_penalty", -2, 2, &frequency, err) ||
      !Integer(body, "seed", std::numeric_limits<int64_t>::min(),
               std::numeric_limits<int64_t>::max(), &seed, err) ||
      !Integer(body, "n", 1, kMaxChoices, &n, err) || !BoolField(body, "stream", &out->stream, err) ||
      !BoolField(body, "ignore_eos", &g.ignore_eos, err) || !StopStrings(body, &g.stop, err) ||
      !LogitBias(body, &g.sampling.logit_bias, err) || !Logprobs(body, chat, &g.logprobs, err)) {
    return false;
  }
  if (auto it = body.find("stream_options"); it != body.end() && !it->is_null()) {
    if (!it->is_object() || !BoolField(*it, "include_usage", &out->include_usage, err)) {
      if (err->message.empty()) *err = BadField("stream_options", "expected an object");
      return false;
    }
  }
  if (top_p == 0) {
    *err = BadField("top_p", "0 keeps no token; use temperature 0 for greedy decoding");
    return false;
  }
  g.max_tokens = static_cast<size_t>(max_tokens);
  g.sampling.temperature = static_cast<float>(temperature);
  g.sampling.top_p = static_cast<float>(top_p);
  g.sampling.top_k = static_cast<int32_t>(std::max<int64_t>(top_k, 0));
  g.sampling.min_p = static_cast<float>(min_p);
  g.sampling.repetition_penalty = static_cast<float>(rep);
  g.sampling.presence_penalty = static_cast<float>(presence);
  g.sampling.frequency_penalty = static_cast<float>(frequency);
  g.sampling.seed = static_cast<uint64_t>(seed);
  out->n = static_cast<size_t>(n);
  if (!ResponseFormat(body, &g.grammar, err)) return false;
  if (!chat) return CompletionPrompt(body, ctx, &g.prompt, err);
  if (!ParseTools(body, ctx.tool_format, &out->tools, err)) return false;
  const ToolRequest& tools = out->tools;
  if (tools.active() && (tools.choice == ToolRequest::Choice::kRequired ||
                         tools.choice == ToolRequest::Choice::kNamed)) {
    // A forced call: its text is the grammar's, arguments matching the parameters.
    auto grammar = ToolCallGrammar(ctx.tool_format, tools);
    if (!grammar.ok()) {
      *err = SchemaError("tools", grammar.status());
      return false;
    }
    g.grammar = std::move(*grammar);
  } else if (tools.active() && tools.choice == ToolRequest::Choice::kAuto && !g.grammar) {
    // Strict functions: free text until a call starts, then the call's grammar.
    bool strict = false;
    for (const auto& t : tools.tools) {
      strict = strict || (t["function"].contains("strict") && t["function"]["strict"] == true);
    }
    std::string trigger;
    size_t skip = 0;
    if (strict && ToolCallTrigger(ctx.tool_format, &trigger, &skip)) {
      auto grammar = ToolCallGrammar(ctx.tool_format, tools, /*strict_only=*/true);
      if (!grammar.ok()) {
        *err = SchemaError("tools", grammar.status());
        return false;
      }
      g.grammar = std::move(*grammar);
      g.grammar_trigger = trigger;
      g.trigger_skip = skip;
    }
  }
  g.keep_special = tools.active() && ctx.tool_format == ToolFormat::kMistral;
  return ChatPrompt(body, ctx, tools, &g.prompt, err);
}

nlohmann::json Usage(size_t prompt_tokens, size_t completion_tokens, size_t cached_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", cached_tokens}}}};
}

namespace {
nlohmann::json Envelope(const ResponseMeta& m, bool chunk) {
  const char* object =
      m.chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
  return {{"id", m.id}, {"object", object}, {"created", m.created}, {"model", m.model}};
}
}  // namespace

namespace {
nlohmann::json CallsJson(size_t first_index, const std::vector<ToolCall>& calls, bool indexed) {
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    nlohmann::json c = {{"id", calls[i].id},
                        {"type", "function"},
                        {"function", {{"name", calls[i].name}, {"arguments", calls[i].arguments}}}};
    if (indexed) c["index"] = first_index + i;
    out.push_back(std::move(c));
  }
  return out;
}
}  // namespace

nlohmann::json LogprobsJson(bool chat, const std::vector<engine::TokenLogprob>& tokens,
                            size_t text_offset) {
  auto bytes = [](const std::string& s) {
    nlohmann::json b = nlohmann::json::array();
    for (unsigned char c : s) b.push_back(c);
    return b;
  };
  if (chat) {
    nlohmann::json content = nlohmann::json::array();
    for (const auto& t : tokens) {
      nlohmann::json top = nlohmann::json::array();
      for (const auto& a : t.top) {
        top.push_back({{"token", a.bytes}, {"logprob", a.logprob}, {"bytes", bytes(a.bytes)}});
      }
      content.push_back({{"token", t.bytes},
                         {"logprob", t.logprob},
                         {"bytes", bytes(t.bytes)},
                         {"top_logprobs", std::move(top)}});
    }
    return {{"content", std::move(content)}, {"refusal", nullptr}};
  }
  nlohmann::json out = {{"tokens", nlohmann::json::array()},
                        {"token_logprobs", nlohmann::json::array()},
                        {"top_logprobs", nlohmann::json::array()},
                        {"text_offset", nlohmann::json::array()}};
  for (const auto& t : tokens) {
    out["tokens"].push_back(t.bytes);
    out["token_logprobs"].push_back(t.logprob);
    nlohmann::json top = nlohmann::json::object();
    for (const auto& a : t.top) top[a.bytes] = a.logprob;
    out["top_logprobs"].push_back(std::move(top));
    out["text_offset"].push_back(text_offset);
    text_offset += t.bytes.size();
  }
  return out;
}

std::string FullResponseN(const ResponseMeta& m, const std::vector<ChoiceOut>& choices,
                          size_t prompt_tokens, size_t completion_tokens, size_t cached_tokens) {
  nlohmann::json j = Envelope(m, false);
  j["choices"] = nlohmann::json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceOut& c = choices[i];
    nlohmann::json choice = {{"index", i},
                             {"logprobs", c.want_logprobs ? LogprobsJson(m.chat, c.logprobs)
                                                          : nlohmann::json()},
                             {"finish_reason", c.calls.empty() ? c.finish_reason : "tool_calls"}};
    if (m.chat && !c.calls.empty()) {
      choice["message"] = {{"role", "assistant"},
                           {"content", c.text.empty() ? nlohmann::json() : nlohmann::json(c.text)},
                           {"tool_calls", CallsJson(0, c.calls, false)}};
    } else if (m.chat) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
    } else {
      choice["text"] = c.text;
    }
    j["choices"].push_back(std::move(choice));
  }
  j["usage"] = Usage(prompt_tokens, completion_tokens, cached_tokens);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string FullResponse(const ResponseMeta& m, const std::string& text,
                         const std::string& finish_reason, size_t prompt_tokens,
                         size_t completion_tokens, const std::vector<ToolCall>& calls,
                         size_t cached_tokens) {
  return FullResponseN(m, {{text, finish_reason, calls}}, prompt_tokens, completion_tokens,
                       cached_tokens);
}

std::string StreamChunk(const ResponseMeta& m, const std::string& text, bool role,
                        const std::string& finish_reason, size_t index,
                        const nlohmann::json& logprobs) {
  nlohmann::json j = Envelope(m, true);
  nlohmann::json choice = {{"index", index}, {"logprobs", logprobs}};
  choice["finish_reason"] =
      finish_reason.empty() ? nlohmann::json() : nlohmann::json(finish_reason);
  if (m.chat) {
    nlohmann::json delta = nlohmann::json::object();
    if (role) delta["role"] = "assistant";
    if (!text.empty() || role) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  j["choices"] = nlohmann::json::array({choice});
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string ToolCallChunk(const ResponseMeta& m, size_t first_index,
                          const std::vector<ToolCall>& calls, size_t index) {
  nlohmann::json j = Envelope(m, true);
  nlohmann::json choice = {{"index", index}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
  choice["delta"] = {{"tool_calls", CallsJson(first_index, calls, true)}};
  j["choices"] = nlohmann::json::array({choice});
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string UsageChunk(const ResponseMeta& m, size_t prompt_tokens, size_t completion_tokens,
                       size_t cached_tokens) {
  nlohmann::json j = Envelope(m, true);
  j["choices"] = nlohmann::json::array();
  j["usage"] = Usage(prompt_tokens, completion_tokens, cached_tokens);
  return j.dump();
}

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  // Walks the longer length every time; any length or byte difference sets a bit.
  const size_t n = std::max(a.size(), b.size());
  volatile unsigned char diff = static_cast<unsigned char>(a.size() != b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff = diff | static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

}  // namespace meshlm::server
