// Tool calls: request fields, the streaming parser (any split of the text gives the same
// calls and content), and forced-call grammars whose every sentence the parser reads back.
#include "server/tool_calls.h"

#include <gtest/gtest.h>

#include <random>

#include "server/openai.h"

namespace meshlm::server {
namespace {

using ojson = nlohmann::ordered_json;

const ojson kTools = ojson::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
      "unit": {"enum": ["c", "f"]}}, "required": ["city", "unit"], "additionalProperties": false}}},
  {"type": "function", "function": {"name": "add", "strict": true,
    "parameters": {"type": "object", "properties": {"a": {"type": "integer"},
      "b": {"type": "integer"}}, "required": ["a", "b"]}}}])");

// Feeds `text` in random pieces; returns content and calls.
std::pair<std::string, std::vector<ToolCall>> Parse(ToolFormat f, const std::string& text,
                                                    std::mt19937& rng) {
  ToolCallParser p(f);
  std::string content;
  std::vector<ToolCall> calls;
  for (size_t at = 0; at < text.size();) {
    const size_t n = 1 + rng() % 7;
    p.Push(text.substr(at, n), &content, &calls);
    at += n;
  }
  p.Finish(&content, &calls);
  return {content, calls};
}

TEST(ToolCalls, FormatsComeFromTheTemplate) {
  EXPECT_EQ(DetectToolFormat("{% for tool in tools %}<tools>{{ tool | tojson }}</tools>{% endfor "
                             "%}<tool_call>"),
            ToolFormat::kHermes);
  EXPECT_EQ(DetectToolFormat("[AVAILABLE_TOOLS]{{ tools }}[/AVAILABLE_TOOLS][TOOL_CALLS]"),
            ToolFormat::kMistral);
  EXPECT_EQ(DetectToolFormat("<|start_header_id|>ipython{% if tools %}{% endif %}"),
            ToolFormat::kLlama3);
  EXPECT_EQ(DetectToolFormat("<|im_start|>{{ message.content }}"), ToolFormat::kNone);
}

TEST(ToolCalls, HermesCallsSurviveAnySplit) {
  std::mt19937 rng(std::random_device{}());
  const std::string text =
      "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
      "\"Paris\", \"unit\": \"c\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"add\", "
      "\"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>";
  for (int i = 0; i < 50; ++i) {
    auto [content, calls] = Parse(ToolFormat::kHermes, text, rng);
    EXPECT_EQ(content, "Let me check.\n");
    ASSERT_EQ(calls.size(), 2u);
    EXPECT_EQ(calls[0].name, "get_weather");
    EXPECT_EQ(ojson::parse(calls[0].arguments), ojson::parse(R"({"city": "Paris", "unit": "c"})"));
    EXPECT_EQ(calls[1].name, "add");
    EXPECT_EQ(ojson::parse(calls[1].arguments), ojson::parse(R"({"a": 1, "b": 2})"));
    EXPECT_TRUE(calls[0].id.starts_with("call_") && calls[0].id != calls[1].id);
  }
  // Not a call: stays content, whole.
  for (const std::string bad : {"a <tool_call>{not json}</tool_call> b", "x <tool_call> {\"name\"",
                                "<tool_cal", "1 < 2 and <tool_ is fine"}) {
    auto [content, calls] = Parse(ToolFormat::kHermes, bad, rng);
    EXPECT_TRUE(calls.empty()) << bad;
    EXPECT_EQ(content, bad);
  }
}

TEST(ToolCalls, Llama3AndMistralCallsAreTheWholeAnswer) {
  std::mt19937 rng(std::random_device{}());
  auto [c1, l1] = Parse(ToolFormat::kLlama3,
                        " {\"name\": \"add\", \"parameters\": {\"a\": 3, \"b\": 4}}", rng);
  ASSERT_EQ(l1.size(), 1u);
  EXPECT_EQ(l1[0].name, "add");
  EXPECT_EQ(ojson::parse(l1[0].arguments)["b"], 4);
  EXPECT_EQ(c1, "");
  auto [c2, l2] = Parse(ToolFormat::kLlama3, "The answer is {x}.", rng);
  EXPECT_TRUE(l2.empty());
  EXPECT_EQ(c2, "The answer is {x}.");
  auto [c3, l3] = Parse(ToolFormat::kMistral,
                        "[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}, "
                        "{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Oslo\\\"}\"}]",
                        rng);
  ASSERT_EQ(l3.size(), 2u);
  EXPECT_EQ(l3[1].name, "get_weather");
  EXPECT_EQ(l3[1].arguments, "{\"city\": \"Oslo\"}");
  auto [c4, l4] = Parse(ToolFormat::kMistral, "[broken", rng);
  EXPECT_TRUE(l4.empty());
  EXPECT_EQ(c4, "[broken");
}

TEST(ToolCalls, RequestFieldsAreChecked) {
  ApiError err;
  ToolRequest r;
  ojson body = {{"tools", kTools}, {"tool_choice", "required"}};
  ASSERT_TRUE(ParseTools(body, ToolFormat::kHermes, &r, &err)) << err.message;
  EXPECT_EQ(r.choice, ToolRequest::Choice::kRequired);
  EXPECT_TRUE(r.active());
  for (const auto& [field, value, want] : std::vector<std::tuple<const char*, ojson, const char*>>{
           {"tool_choice", "sometimes", "tool_choice"},
           {"tool_choice", {{"type", "function"}, {"function", {{"name", "nope"}}}}, "not one"},
           {"tools", {{{"type", "function"}, {"function", {{"name", "bad name!"}}}}}, "name"},
           {"tools", "get_weather", "tools"}}) {
    ojson b = {{"tools", kTools}};
    b[field] = value;
    ToolRequest out;
    ApiError e;
    EXPECT_FALSE(ParseTools(b, ToolFormat::kHermes, &out, &e)) << value.dump();
    EXPECT_NE(e.message.find(want), std::string::npos) << e.message;
  }
  ToolRequest none;
  ApiError e;
  EXPECT_FALSE(ParseTools({{"tools", kTools}}, ToolFormat::kNone, &none, &e));
  EXPECT_NE(e.message.find("--chat-template-file"), std::string::npos) << e.message;
  ToolRequest off;
  EXPECT_TRUE(ParseTools({{"tools", kTools}, {"tool_choice", "none"}}, ToolFormat::kNone, &off, &e));
  EXPECT_FALSE(off.active());
}

TEST(ToolCalls, ForcedCallGrammarsReadBackAsCalls) {
  std::mt19937 rng(std::random_device{}());
  struct Case {
    ToolFormat f;
    ToolRequest::Choice choice;
    std::string text;
    bool ok;
  };
  const std::vector<Case> cases = {
      {ToolFormat::kHermes, ToolRequest::Choice::kRequired,
       "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": -2}}\n</tool_call>", true},
      {ToolFormat::kHermes, ToolRequest::Choice::kRequired,
       "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1}}\n</tool_call>", false},
      {ToolFormat::kHermes, ToolRequest::Choice::kRequired,
       "<tool_call>\n{\"name\": \"sub\", \"arguments\": {}}\n</tool_call>", false},
      {ToolFormat::kHermes, ToolRequest::Choice::kNamed,
       "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>", false},
      {ToolFormat::kHermes, ToolRequest::Choice::kNamed,
       "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\", \"unit\": "
       "\"f\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
       "\"Bern\", \"unit\": \"c\"}}\n</tool_call>",
       true},
      {ToolFormat::kLlama3, ToolRequest::Choice::kRequired,
       "{\"name\": \"add\", \"parameters\": {\"a\": 5, \"b\": 6}}", true},
      {ToolFormat::kMistral, ToolRequest::Choice::kRequired,
       "[{\"name\": \"add\", \"arguments\": {\"a\": 5, \"b\": 6}}, {\"name\": \"get_weather\", "
       "\"arguments\": {\"city\": \"x\", \"unit\": \"c\"}}]",
       true},
  };
  for (const Case& c : cases) {
    ToolRequest r;
    r.tools = kTools;
    r.choice = c.choice;
    r.named = "get_weather";
    auto g = ToolCallGrammar(c.f, r);
    ASSERT_TRUE(g.ok()) << g.status().message();
    engine::GrammarMatcher m(*g);
    const bool ok = m.Accept(c.text) && m.complete();
    EXPECT_EQ(ok, c.ok) << c.text;
    if (!ok) continue;
    auto [content, calls] = Parse(c.f, c.text, rng);
    EXPECT_FALSE(calls.empty()) << c.text;
    for (const ToolCall& call : calls) {
      EXPECT_TRUE(ojson::accept(call.arguments)) << call.arguments;
      if (c.choice == ToolRequest::Choice::kNamed) {
        EXPECT_EQ(call.name, "get_weather");
      }
    }
  }
  // One call only when parallel calls are off.
  ToolRequest single;
  single.tools = kTools;
  single.choice = ToolRequest::Choice::kRequired;
  single.parallel = false;
  auto g = ToolCallGrammar(ToolFormat::kHermes, single);
  ASSERT_TRUE(g.ok());
  engine::GrammarMatcher m(*g);
  EXPECT_TRUE(m.Accept(cases[0].text));
  EXPECT_TRUE(m.finished());
}

}  // namespace
}  // namespace meshlm::server
