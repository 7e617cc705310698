// Tool calling: request fields, forced-call grammars, and the streaming call parser.
#include "server/tool_calls.h"

#include <fmt/format.h>

#include <random>

#include "engine/json_schema.h"
#include "server/openai.h"

namespace meshlm::server {

using ojson = nlohmann::ordered_json;
using engine::Grammar;

namespace {

constexpr std::string_view kHermesOpen = "<tool_call>";
constexpr std::string_view kHermesClose = "</tool_call>";
constexpr std::string_view kMistralMark = "[TOOL_CALLS]";

bool IsBlank(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

std::string NewCallId() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
  return id;
}

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  }
  return true;
}

// How much of the end of `s` could be the start of `marker`.
size_t PartialSuffix(std::string_view s, std::string_view marker) {
  for (size_t k = std::min(s.size(), marker.size() - 1); k > 0; --k) {
    if (s.substr(s.size() - k) == marker.substr(0, k)) return k;
  }
  return 0;
}

}  // namespace

ToolFormat DetectToolFormat(std::string_view t) {
  if (t.find(kHermesOpen) != std::string_view::npos) return ToolFormat::kHermes;
  if (t.find(kMistralMark) != std::string_view::npos) return ToolFormat::kMistral;
  if (t.find("<|start_header_id|>") != std::string_view::npos &&
      t.find("tools") != std::string_view::npos) {
    return ToolFormat::kLlama3;
  }
  return ToolFormat::kNone;
}

const char* ToolFormatName(ToolFormat f) {
  switch (f) {
    case ToolFormat::kHermes:
      return "hermes (<tool_call>)";
    case ToolFormat::kLlama3:
      return "llama3 (JSON)";
    case ToolFormat::kMistral:
      return "mistral ([TOOL_CALLS])";
    default:
      return "none";
  }
}

bool ParseTools(const ojson& body, ToolFormat format, ToolRequest* out, ApiError* err) {
  if (auto it = body.find("tools"); it != body.end() && !it->is_null()) {
    if (!it->is_array()) {
      *err = BadField("tools", "expected an array of {\"type\": \"function\", \"function\": ...}");
      return false;
    }
    for (size_t i = 0; i < it->size(); ++i) {
      const ojson& t = (*it)[i];
      const std::string field = fmt::format("tools[{}]", i);
      if (!t.is_object() || t.value("type", "") != "function" || !t.contains("function") ||
          !t["function"].is_object()) {
        *err = BadField(field, "expected {\"type\": \"function\", \"function\": {...}}");
        return false;
      }
      const ojson& f = t["function"];
      if (!f.contains("name") || !f["name"].is_string() ||
          !ValidName(f["name"].get<std::string>())) {
        *err = BadField(field + ".function.name", "expected 1 to 64 of a-z, A-Z, 0-9, _ and -");
        return false;
      }
      if (f.contains("parameters") && !f["parameters"].is_object()) {
        *err = BadField(field + ".function.parameters", "expected a JSON Schema object");
        return false;
      }
    }
    if (!it->empty()) out->tools = *it;
  }
  if (!BoolField(body, "parallel_tool_calls", &out->parallel, err)) return false;
  if (auto it = body.find("tool_choice"); it != body.end() && !it->is_null()) {
    if (it->is_string()) {
      const std::string c = it->get<std::string>();
      if (c == "auto") {
        out->choice = ToolRequest::Choice::kAuto;
      } else if (c == "none") {
        out->choice = ToolRequest::Choice::kNone;
      } else if (c == "required") {
        out->choice = ToolRequest::Choice::kRequired;
      } else {
        *err = BadField("tool_choice", fmt::format("'{}' is not one of auto, none, required, or "
                                                   "{{\"type\": \"function\", ...}}",
                                                   c.substr(0, 40)));
        return false;
      }
    } else if (it->is_object() && it->value("type", "") == "function" && it->contains("function") &&
               (*it)["function"].is_object() && (*it)["function"].contains("name") &&
               (*it)["function"]["name"].is_string()) {
      out->choice = ToolRequest::Choice::kNamed;
      out->named = (*it)["function"]["name"].get<std::string>();
      bool found = false;
      for (const auto& t : out->tools.is_null() ? ojson::array() : out->tools) {
        found = found || t["function"]["name"] == out->named;
      }
      if (!found) {
        *err = BadField("tool_choice.function.name",
                        fmt::format("'{}' is not one of the tools", out->named.substr(0, 64)));
        return false;
      }
    } else {
      *err = BadField("tool_choice",
                      "expected auto, none, required, or {\"type\": \"function\", \"function\": "
                      "{\"name\": ...}}");
      return false;
    }
    if (out->tools.is_null() && out->choice != ToolRequest::Choice::kNone &&
        out->choice != ToolRequest::Choice::kAuto) {
      *err = BadField("tool_choice", "needs tools");
      return false;
    }
  }
  if (out->active() && format == ToolFormat::kNone) {
    err->status = 400;
    err->param = "tools";
    err->code = "tools_unsupported";
    err->message =
        "this model's chat template has no tool-call format meshlm knows (Qwen/Hermes "
        "<tool_call>, Llama 3 JSON, Mistral [TOOL_CALLS]): serve it with --chat-template-file "
        "naming a template that renders tools";
    return false;
  }
  return true;
}

bool ToolCallTrigger(ToolFormat format, std::string* trigger, size_t* skip) {
  if (format == ToolFormat::kHermes) {
    *trigger = std::string(kHermesOpen);
    *skip = 0;  // the call grammar begins with the marker
    return true;
  }
  if (format == ToolFormat::kMistral) {
    *trigger = std::string(kMistralMark);
    *skip = kMistralMark.size();  // a special token; the grammar begins after it
    return true;
  }
  return false;
}

Result<std::shared_ptr<const Grammar>> ToolCallGrammar(ToolFormat format, const ToolRequest& req,
                                                      bool strict_only) {
  auto g = std::make_shared<Grammar>();
  const char* args_key = format == ToolFormat::kLlama3 ? "parameters" : "arguments";
  const Grammar::RuleId choice = g->AddRule("tool call");
  for (size_t i = 0; i < req.tools.size(); ++i) {
    const ojson& f = req.tools[i]["function"];
    const std::string name = f["name"].get<std::string>();
    if (req.choice == ToolRequest::Choice::kNamed && name != req.named) continue;
    const bool held = !strict_only || (f.contains("strict") && f["strict"] == true);
    const ojson params =
        held && f.contains("parameters") ? f["parameters"] : ojson{{"type", "object"}};
    engine::JsonGrammarBuilder b(g.get(), params, /*compact=*/true);
    MESHLM_ASSIGN_OR_RETURN(Grammar::RuleId args,
                            b.Value(params, fmt::format("tools[{}].function.parameters", i)));
    std::vector<Grammar::Item> items =
        g->Literal(fmt::format("{{\"name\": {}, \"{}\": ", ojson(name).dump(), args_key));
    items.push_back(Grammar::Ref(args));
    items.push_back(g->Byte('}'));
    g->AddAlternative(choice, items);
  }
  const Grammar::RuleId root = g->AddRule("root");
  const Grammar::RuleId more = g->AddRule("more calls");
  g->AddAlternative(more, {});
  if (format == ToolFormat::kHermes) {
    const Grammar::RuleId call = g->AddRule("hermes call");
    std::vector<Grammar::Item> items = g->Literal("<tool_call>\n");
    items.push_back(Grammar::Ref(choice));
    for (Grammar::Item it : g->Literal("\n</tool_call>")) items.push_back(it);
    g->AddAlternative(call, items);
    if (req.parallel) g->AddAlternative(more, {g->Byte('\n'), Grammar::Ref(call), Grammar::Ref(more)});
    g->AddAlternative(root, {Grammar::Ref(call), Grammar::Ref(more)});
  } else if (format == ToolFormat::kMistral) {
    if (req.parallel) {
      g->AddAlternative(more,
                        {g->Byte(','), g->Byte(' '), Grammar::Ref(choice), Grammar::Ref(more)});
    }
    g->AddAlternative(root, {g->Byte('['), Grammar::Ref(choice), Grammar::Ref(more), g->Byte(']')});
  } else {
    g->AddAlternative(root, {Grammar::Ref(choice)});
  }
  g->set_root(root);
  MESHLM_RETURN_IF_ERROR(g->Finalize());
  return std::shared_ptr<const Grammar>(std::move(g));
}

bool ToolCallParser::ParseCalls(std::string_view text, std::vector<ToolCall>* calls) {
  ojson j;
  try {
    j = ojson::parse(text);
  } catch (const std::exception&) {
    return false;
  }
  const ojson list = j.is_array() ? j : ojson::array({j});
  std::vector<ToolCall> found;
  for (const ojson& c : list) {
    if (!c.is_object() || !c.contains("name") || !c["name"].is_string()) return false;
    ToolCall call;
    call.id = NewCallId();
    call.name = c["name"].get<std::string>();
    const ojson* args = c.contains("arguments")    ? &c["arguments"]
                        : c.contains("parameters") ? &c["parameters"]
                                                   : nullptr;
    call.arguments = !args ? "{}" : args->is_string() ? args->get<std::string>() : args->dump();
    found.push_back(std::move(call));
  }
  if (found.empty()) return false;
  num_calls_ += found.size();
  for (auto& c : found) calls->push_back(std::move(c));
  return true;
}

void ToolCallParser::Push(std::string_view text, std::string* content,
                          std::vector<ToolCall>* calls) {
  held_ += text;
  if (format_ == ToolFormat::kHermes) {
    for (;;) {
      if (num_calls_ > 0 && !inside_) {
        // The blank lines between and after calls are not content.
        size_t blank = 0;
        while (blank < held_.size() && IsBlank(held_[blank])) ++blank;
        held_.erase(0, blank);
      }
      if (!inside_) {
        const size_t open = held_.find(kHermesOpen);
        if (open == std::string::npos) {
          const size_t keep = PartialSuffix(held_, kHermesOpen);
          *content += held_.substr(0, held_.size() - keep);
          held_.erase(0, held_.size() - keep);
          return;
        }
        *content += held_.substr(0, open);
        held_.erase(0, open + kHermesOpen.size());
        inside_ = true;
      }
      const size_t close = held_.find(kHermesClose);
      if (close == std::string::npos) return;
      const std::string block = held_.substr(0, close);
      held_.erase(0, close + kHermesClose.size());
      inside_ = false;
      if (!ParseCalls(block, calls)) {
        *content += std::string(kHermesOpen) + block + std::string(kHermesClose);
      }
    }
  }
  // Llama 3 and Mistral: a call is the whole answer; decide on its first bytes.
  if (inside_) return;
  if (started_) {
    *content += held_;
    held_.clear();
    return;
  }
  size_t first = 0;
  while (first < held_.size() && IsBlank(held_[first])) ++first;
  const std::string_view rest = std::string_view(held_).substr(first);
  if (rest.empty()) return;
  if (format_ == ToolFormat::kMistral && rest.size() < kMistralMark.size() &&
      kMistralMark.starts_with(rest)) {
    return;  // maybe the marker, still arriving
  }
  started_ = true;
  const bool call = format_ == ToolFormat::kLlama3
                        ? rest.front() == '{'
                        : rest.starts_with(kMistralMark) || rest.front() == '[';
  if (call) {
    inside_ = true;
    return;
  }
  *content += held_;
  held_.clear();
}

void ToolCallParser::Finish(std::string* content, std::vector<ToolCall>* calls) {
  if (format_ == ToolFormat::kHermes) {
    if (inside_) *content += std::string(kHermesOpen);
    *content += held_;
  } else if (inside_) {
    std::string_view body = held_;
    while (!body.empty() && IsBlank(body.front())) body.remove_prefix(1);
    if (body.starts_with(kMistralMark)) body.remove_prefix(kMistralMark.size());
    if (!ParseCalls(body, calls)) *content += held_;
  } else {
    *content += held_;
  }
  held_.clear();
  inside_ = false;
}

}  // namespace meshlm::server
