// Chat templates of real models rendered against @huggingface/jinja's output
// (tools/golden_chat_templates.js), plus error cases and a mutation fuzz of the parser.
#include "tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>

#include "base/mapped_file.h"

namespace meshlm {
namespace {

using json = nlohmann::ordered_json;

std::string Env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

std::string VocabDir(const std::string& name) {
  return Env("MESHLM_TOKENIZER_VOCABS", MESHLM_DEFAULT_TOKENIZER_VOCABS) + "/" + name;
}

json ReadJson(const std::string& path) {
  auto text = ReadFileToString(path);
  EXPECT_TRUE(text.ok()) << text.status().message()
                         << "\n(fetch the vocabularies with tools/tokenizer_fetch_vocabs.sh)";
  return text.ok() ? json::parse(*text) : json();
}

std::string ConfigToken(const json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end()) return "";
  if (it->is_string()) return *it;
  if (it->is_object() && it->contains("content")) return (*it)["content"];
  return "";
}

class TemplateGoldenTest : public testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    // strftime_now() formats local time; the golden file was made in UTC.
    setenv("TZ", "UTC", 1);
    tzset();
  }
};

TEST_P(TemplateGoldenTest, MatchesHuggingFaceJinja) {
  const json golden = ReadJson(Env("MESHLM_SOURCE_DIR", MESHLM_DEFAULT_SOURCE_DIR) +
                               "/tests/data/tokenizer/chat_templates.json");
  const json config = ReadJson(VocabDir(GetParam()) + "/tokenizer_config.json");
  ASSERT_TRUE(config.contains("chat_template"));
  auto tmpl = ChatTemplate::Parse(config["chat_template"].get<std::string>());
  ASSERT_TRUE(tmpl.ok()) << tmpl.status().message();
  const json& results = golden["models"][GetParam()];
  ASSERT_FALSE(results.empty());
  int checked = 0;
  for (const auto& [key, expected] : results.items()) {
    const std::string conv_name = key.substr(0, key.find('/'));
    const json conv = golden["conversations"][conv_name];
    ChatTemplateOptions o;
    o.add_generation_prompt = key.ends_with("/gen");
    o.bos_token = ConfigToken(config, "bos_token");
    o.eos_token = ConfigToken(config, "eos_token");
    o.now_unix = golden["now_unix"].get<int64_t>();
    if (conv.contains("tools")) o.tools = conv["tools"];
    for (const auto& [k, v] : conv.items()) {
      if (k != "messages" && k != "tools") o.extra[k] = v;
    }
    auto out = (*tmpl)->Render(conv["messages"], o);
    if (expected.contains("error")) {
      EXPECT_FALSE(out.ok()) << key << " should fail like the reference: " << expected["error"];
      if (!out.ok() && out.status().message().find("refused") != std::string::npos) {
        EXPECT_NE(out.status().message().find(expected["error"].get<std::string>()),
                  std::string::npos)
            << key << ": " << out.status().message();
      }
    } else {
      ASSERT_TRUE(out.ok()) << key << ": " << out.status().message();
      EXPECT_EQ(json(*out).dump(), json(expected["output"]).dump()) << key;
    }
    ++checked;
  }
  EXPECT_GE(checked, 10);
}

INSTANTIATE_TEST_SUITE_P(Models, TemplateGoldenTest,
                         testing::Values("qwen3", "qwen2_5", "llama3", "llama3_1", "llama3_2",
                                         "mistral_nemo", "deepseek_v3", "gemma3"),
                         [](const testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// One feature per snippet, against the reference (tools/golden_chat_templates.js).
TEST(ChatTemplateTest, SnippetsMatchHuggingFaceJinja) {
  setenv("TZ", "UTC", 1);
  tzset();
  const json golden = ReadJson(Env("MESHLM_SOURCE_DIR", MESHLM_DEFAULT_SOURCE_DIR) +
                               "/tests/data/tokenizer/chat_templates.json");
  const json& context = golden["snippet_context"];
  ASSERT_GT(golden["snippets"].size(), 30u);
  for (const json& snippet : golden["snippets"]) {
    const std::string source = snippet["source"];
    ChatTemplateOptions o;
    o.now_unix = golden["now_unix"].get<int64_t>();
    o.tools = context["tools"];
    for (const auto& [k, v] : context.items()) {
      if (k != "messages" && k != "tools") o.extra[k] = v;
    }
    auto out = RenderChatTemplate(source, context["messages"], o);
    if (snippet.contains("error")) {
      EXPECT_FALSE(out.ok()) << source << "\nshould fail: " << snippet["error"]
                             << "\ngave: " << (out.ok() ? *out : std::string());
    } else {
      ASSERT_TRUE(out.ok()) << source << "\n" << out.status().message();
      EXPECT_EQ(json(*out).dump(), json(snippet["output"]).dump()) << source;
    }
  }
}

std::string Render(const std::string& src, const json& messages = json::array(),
                   json extra = json::object()) {
  ChatTemplateOptions o;
  o.extra = std::move(extra);
  o.add_generation_prompt = false;
  auto r = RenderChatTemplate(src, messages, o);
  return r.ok() ? *r : "ERROR: " + r.status().message();
}

TEST(ChatTemplateTest, Basics) {
  EXPECT_EQ(Render("{{ 'a' ~ 1 ~ true }}"), "a1true");
  EXPECT_EQ(
      Render(
          "{% for x in [1,2,3] %}{{ loop.index }}{% if not loop.last %},{% endif %}{% endfor %}"),
      "1,2,3");
  EXPECT_EQ(Render("{{ [1,2,3,4][::-1] }} {{ 'héllo'[1:3] }} {{ [1,2][-1] }}"),
            "[4, 3, 2, 1] él 2");
  EXPECT_EQ(Render("{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}"
                   "{% endfor %}{{ ns.n }}"),
            "3");
  EXPECT_EQ(
      Render("{% macro f(a, b='x') %}[{{ a }}{{ b }}]{% endmacro %}{{ f(1) }}{{ f(2, b='y') }}"),
      "[1x][2y]");
  EXPECT_EQ(Render("{{ {'b': 1, 'a': [1.5, none]} | tojson }}"), R"({"b": 1, "a": [1.5, null]})");
  EXPECT_EQ(Render("{{ x | default('d') }} {{ 'a,b'.split(',') | join('+') }}"), "d a+b");
  EXPECT_EQ(Render("{{ '  x \n' | trim }}|{{ 'xax'.strip('x') }}"), "x|xax");
  EXPECT_EQ(Render("{%- if true -%}\n  a  \n{%- endif -%}  b"), "ab");
  EXPECT_EQ(Render("{# comment #}{{ 2 ** 3 }} {{ 7 // 2 }} {{ 7 / 2 }} {{ 1.0 }}"), "8 3 3.5 1.0");
}

TEST(ChatTemplateTest, RaiseExceptionCarriesTheMessage) {
  const std::string r = Render("{{ raise_exception('roles must alternate') }}");
  EXPECT_NE(r.find("refused the conversation: roles must alternate"), std::string::npos) << r;
}

TEST(ChatTemplateTest, MalformedTemplatesAreErrors) {
  for (const char* src : {"{% if x %}", "{{ 'unterminated }}", "{% for %}{% endfor %}", "{{ (1 }}",
                          "{% endif %}", "{{ a. }}", "{% set %}", "{{ 1 + }}", "{% unknown %}",
                          "{# open comment", "{{ x[] }}", "{% macro %}{% endmacro %}"}) {
    auto r = ChatTemplate::Parse(src);
    EXPECT_FALSE(r.ok()) << src;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("[chat_template]"), std::string::npos);
    }
  }
  auto deep =
      ChatTemplate::Parse("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}");
  EXPECT_FALSE(deep.ok());
}

TEST(ChatTemplateTest, RuntimeErrorsAreErrors) {
  EXPECT_NE(Render("{{ none + 1 }}").find("null"), std::string::npos);
  EXPECT_NE(Render("{{ x.y.z + 1 }}").find("undefined"), std::string::npos);
  EXPECT_NE(Render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").find("too deeply"),
            std::string::npos);
  EXPECT_NE(Render("{% for i in range(100000000) %}{% endfor %}").find("range"), std::string::npos);
  EXPECT_NE(Render("a{% break %}b").find("outside a loop"), std::string::npos);
  EXPECT_NE(Render("{% macro f() %}{% continue %}{% endmacro %}{{ f() }}").find("outside a loop"),
            std::string::npos);
}

// Random mutations of real templates must give an error or an output, never a crash or
// a hang.
TEST(ChatTemplateFuzzTest, MutatedTemplatesNeverCrash) {
  std::vector<std::string> seeds;
  for (const char* name : {"qwen3", "llama3_2", "mistral_nemo", "deepseek_v3", "gemma3"}) {
    const json config = ReadJson(VocabDir(name) + "/tokenizer_config.json");
    if (config.contains("chat_template")) seeds.push_back(config["chat_template"]);
  }
  ASSERT_FALSE(seeds.empty());
  const json messages =
      json::parse(R"([{"role":"system","content":"s"},{"role":"user","content":"u"},
      {"role":"assistant","content":"a"},{"role":"user","content":"v"}])");
  static const char* kPieces[] = {"{%",
                                  "%}",
                                  "{{",
                                  "}}",
                                  "{#",
                                  "#}",
                                  "(",
                                  ")",
                                  "[",
                                  "]",
                                  "'",
                                  "\"",
                                  "|",
                                  ".",
                                  ",",
                                  "-",
                                  "if",
                                  "for",
                                  "endfor",
                                  "endif",
                                  "set",
                                  "~",
                                  "\\",
                                  "not",
                                  "in",
                                  "is",
                                  ":",
                                  "=",
                                  "**",
                                  "0",
                                  "\xC3\xA9",
                                  "{% break %}",
                                  "{% continue %}",
                                  "{% macro m(a) %}",
                                  "{% endmacro %}",
                                  "m(1)",
                                  "namespace(",
                                  "loop.",
                                  "|tojson",
                                  "[::-1]",
                                  "{% generation %}"};
  std::mt19937 rng(1234);
  int rendered = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s = seeds[iter % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const size_t pos = rng() % s.size();
      switch (rng() % 3) {
        case 0:
          s.erase(pos, 1 + rng() % 8);
          break;
        case 1:
          s.insert(pos, kPieces[rng() % std::size(kPieces)]);
          break;
        default: {
          const size_t len = 1 + rng() % 40, src = rng() % s.size();
          s.insert(pos, s.substr(src, len));
        }
      }
    }
    auto t = ChatTemplate::Parse(s);
    if (!t.ok()) continue;
    ChatTemplateOptions o;
    auto r = (*t)->Render(messages, o);
    rendered += r.ok();
  }
  EXPECT_GT(rendered, 0);
}

}  // namespace
}  // namespace meshlm
