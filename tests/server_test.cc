// The OpenAI-compatible server end to end over loopback HTTP: 1 rank and 2 ranks (tp=2),
// streaming and not, errors, API key, stop strings, concurrent clients, disconnects, idle
// workers and a worker killed mid-stream.
#include <dirent.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <future>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <regex>
#include <sstream>

#include "base/clock.h"
#include "server_process.h"

namespace meshlm::testing {
namespace {

using nlohmann::json;
constexpr const char* kKey = "test-key-0123";

httplib::Headers Auth() { return {{"Authorization", std::string("Bearer ") + kKey}}; }

// The name the server gives its model: the model folder's own name.
std::string ServerTestModelName() {
  char resolved[PATH_MAX];
  std::string d = ::realpath(ServerTestModel().c_str(), resolved) ? resolved : ServerTestModel();
  return d.substr(d.rfind('/') + 1);
}

struct Sse {
  std::vector<json> events;  // parsed data payloads, [DONE] excluded
  bool done = false;         // "data: [DONE]" seen
  int status = 0;
  std::string raw;
  std::string Text(bool chat) const {
    std::string t;
    for (const auto& e : events) {
      if (!e.contains("choices") || e["choices"].empty()) continue;
      const auto& c = e["choices"][0];
      if (chat && c["delta"].contains("content")) t += c["delta"]["content"].get<std::string>();
      if (!chat && c.contains("text")) t += c["text"].get<std::string>();
    }
    return t;
  }
};

void ParseSse(const std::string& raw, Sse* out) {
  std::istringstream in(raw);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("data: ", 0) != 0) continue;
    const std::string data = line.substr(6);
    if (data == "[DONE]") {
      out->done = true;
    } else {
      out->events.push_back(json::parse(data));
    }
  }
}

class ServerTest : public ::testing::TestWithParam<int> {
 protected:
  static void SetUpTestSuite() {}
  void SetUp() override {
    std::vector<std::string> extra = {"--api-key", kKey, "--max-concurrent", "8"};
    std::vector<std::string> env;
    if (GetParam() == 2) {
      extra.insert(extra.end(), {"-n", "2", "--tp", "2"});
      env.push_back("MESHLM_OP_TIMEOUT=2");  // idle workers must outlive this
    }
    server_ = std::make_unique<ServerProcess>(extra, env);
    ASSERT_TRUE(server_->WaitReady()) << "server did not become ready";
  }
  void TearDown() override { server_.reset(); }

  httplib::Client Client() {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(30, 0);
    return c;
  }
  httplib::Result Post(const std::string& path, const json& body) {
    auto c = Client();
    return c.Post(path.c_str(), Auth(), body.dump(), "application/json");
  }
  Sse Stream(const std::string& path, const json& body) {
    Sse s;
    auto c = Client();
    auto r = c.Post(path.c_str(), Auth(), body.dump(), "application/json");
    if (!r) return s;
    s.status = r->status;
    s.raw = r->body;
    if (r->status == 200) ParseSse(r->body, &s);
    return s;
  }

  std::unique_ptr<ServerProcess> server_;
};

json Chat(const std::string& user, int max_tokens) {
  return {{"messages", {{{"role", "user"}, {"content", user}}}},
          {"max_tokens", max_tokens},
          {"temperature", 0}};
}

TEST_P(ServerTest, HealthIsOpenAndModelsNeedTheKey) {
  auto c = Client();
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto hj = json::parse(h->body);
  EXPECT_EQ(hj["ranks"], GetParam());
  EXPECT_EQ(hj["ready"], true);
  auto no_key = c.Get("/v1/models");
  ASSERT_TRUE(no_key);
  EXPECT_EQ(no_key->status, 401);
  EXPECT_EQ(json::parse(no_key->body)["error"]["code"], "invalid_api_key");
  auto bad_key = c.Get("/v1/models", {{"Authorization", "Bearer test-key-0124"}});
  ASSERT_TRUE(bad_key);
  EXPECT_EQ(bad_key->status, 401);
  auto ok = c.Get("/v1/models", Auth());
  ASSERT_TRUE(ok);
  ASSERT_EQ(ok->status, 200);
  auto j = json::parse(ok->body);
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["object"], "model");
  auto m = c.Get("/metrics", Auth());
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("meshlm_requests_total"), std::string::npos);
  EXPECT_NE(m->body.find("meshlm_time_to_first_token_seconds_bucket"), std::string::npos);
}

// What clients probe: one model by id, and a wrong method on a known path.
TEST_P(ServerTest, ModelByIdAndWrongMethods) {
  auto c = Client();
  auto list = c.Get("/v1/models", Auth());
  ASSERT_TRUE(list);
  const std::string id = json::parse(list->body)["data"][0]["id"];
  auto one = c.Get("/v1/models/" + id, Auth());
  ASSERT_TRUE(one);
  ASSERT_EQ(one->status, 200) << one->body;
  EXPECT_EQ(json::parse(one->body)["id"], id);
  EXPECT_EQ(json::parse(one->body)["object"], "model");
  auto other = c.Get("/v1/models/not-" + id, Auth());
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
  EXPECT_EQ(json::parse(other->body)["error"]["code"], "model_not_found");
  EXPECT_EQ(c.Get("/v1/models/" + id)->status, 401);  // still needs the key
  auto get_chat = c.Get("/v1/chat/completions", Auth());
  ASSERT_TRUE(get_chat);
  EXPECT_EQ(get_chat->status, 405);
  EXPECT_EQ(get_chat->get_header_value("Allow"), "POST");
  EXPECT_EQ(json::parse(get_chat->body)["error"]["code"], "method_not_allowed");
  auto post_models = c.Post("/v1/models", Auth(), "{}", "application/json");
  ASSERT_TRUE(post_models);
  EXPECT_EQ(post_models->status, 405);
  EXPECT_EQ(post_models->get_header_value("Allow"), "GET");
  auto unknown = c.Get("/v1/nothing-here", Auth());
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  EXPECT_EQ(json::parse(unknown->body)["error"]["code"], "not_found");
}

TEST_P(ServerTest, ChatStreamingMatchesNonStreaming) {
  auto r = Post("/v1/chat/completions", Chat("Tell me a story.", 20));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  auto full = json::parse(r->body);
  EXPECT_EQ(full["object"], "chat.completion");
  EXPECT_EQ(full["choices"][0]["message"]["role"], "assistant");
  const std::string text = full["choices"][0]["message"]["content"];
  const auto& usage = full["usage"];
  EXPECT_GT(usage["prompt_tokens"].get<int>(), 3);
  EXPECT_GE(usage["completion_tokens"].get<int>(), 1);
  EXPECT_LE(usage["completion_tokens"].get<int>(), 20);
  EXPECT_EQ(usage["total_tokens"].get<int>(),
            usage["prompt_tokens"].get<int>() + usage["completion_tokens"].get<int>());
  const std::string reason = full["choices"][0]["finish_reason"];
  if (reason == "length") EXPECT_EQ(usage["completion_tokens"], 20);

  json body = Chat("Tell me a story.", 20);
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  Sse s = Stream("/v1/chat/completions", body);
  ASSERT_EQ(s.status, 200) << s.raw;
  ASSERT_TRUE(s.done) << s.raw;
  ASSERT_GE(s.events.size(), 3u);
  EXPECT_EQ(s.events[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(s.events[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(s.Text(true), text);
  const json& last_choice = s.events[s.events.size() - 2]["choices"][0];
  EXPECT_EQ(last_choice["finish_reason"], reason);
  EXPECT_EQ(s.events.back()["choices"].size(), 0u);
  // The same prompt again: the prefix cache supplies all of it but the last token.
  json streamed_usage = s.events.back()["usage"];
  EXPECT_EQ(streamed_usage["prompt_tokens_details"]["cached_tokens"],
            usage["prompt_tokens"].get<int>() - 1);
  streamed_usage.erase("prompt_tokens_details");
  json whole_usage = usage;
  whole_usage.erase("prompt_tokens_details");
  EXPECT_EQ(streamed_usage, whole_usage);
}

TEST_P(ServerTest, CompletionsBothWaysAndStopStrings) {
  json body = {
      {"prompt", "Once upon a time"}, {"max_tokens", 24}, {"temperature", 0}, {"ignore_eos", true}};
  auto r = Post("/v1/completions", body);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  auto full = json::parse(r->body);
  EXPECT_EQ(full["object"], "text_completion");
  EXPECT_EQ(full["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(full["usage"]["completion_tokens"], 24);
  const std::string text = full["choices"][0]["text"];
  ASSERT_GT(text.size(), 8u);
  body["stream"] = true;
  Sse s = Stream("/v1/completions", body);
  ASSERT_TRUE(s.done) << s.raw;
  EXPECT_EQ(s.Text(false), text);
  EXPECT_EQ(s.events.back()["choices"][0]["finish_reason"], "length");

  // A stop string from the middle of the text: output ends just before it.
  const size_t at = text.size() / 2;
  const std::string stop = text.substr(at, 3);
  const size_t first = text.find(stop);
  json with_stop = {{"prompt", "Once upon a time"},
                    {"max_tokens", 24},
                    {"temperature", 0},
                    {"ignore_eos", true},
                    {"stop", {stop}}};
  auto r2 = Post("/v1/completions", with_stop);
  ASSERT_TRUE(r2);
  auto j2 = json::parse(r2->body);
  EXPECT_EQ(j2["choices"][0]["text"], text.substr(0, first)) << "stop=" << stop;
  EXPECT_EQ(j2["choices"][0]["finish_reason"], "stop");
  with_stop["stream"] = true;
  Sse s2 = Stream("/v1/completions", with_stop);
  EXPECT_EQ(s2.Text(false), text.substr(0, first));
}

// logit_bias +100 forces a token: greedy output is that token's text at every step; an
// id past the vocabulary is a 400 naming it.
TEST_P(ServerTest, LogitBiasForcesAToken) {
  auto ids = Post("/tokenize", {{"content", " sea"}});
  ASSERT_TRUE(ids);
  ASSERT_EQ(ids->status, 200) << ids->body;
  const int forced = json::parse(ids->body)["tokens"].back();
  auto piece = Post("/detokenize", {{"tokens", {forced, forced, forced}}});
  ASSERT_TRUE(piece);
  json body = {{"prompt", "Once upon a time"},
               {"max_tokens", 3},
               {"temperature", 0},
               {"ignore_eos", true},
               {"logit_bias", {{std::to_string(forced), 100}}}};
  auto r = Post("/v1/completions", body);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["choices"][0]["text"], json::parse(piece->body)["content"]);
  body["logit_bias"] = {{"99999999", 1}};
  auto bad = Post("/v1/completions", body);
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400) << bad->body;
  EXPECT_NE(bad->body.find("logit_bias token id 99999999"), std::string::npos) << bad->body;
}

TEST_P(ServerTest, JsonSchemaOutputFollowsTheSchema) {
  // Bounded values only (enums, booleans, short numbers), so every answer is complete
  // well before max_tokens, whatever the weights.
  const json schema = json::parse(R"({"type": "object", "properties": {
      "color": {"enum": ["red", "green", "blue"]},
      "count": {"type": "integer"},
      "ok": {"type": "boolean"},
      "pets": {"type": "array", "items": {"enum": ["cat", "dog"]}, "maxItems": 2},
      "extra": {"type": ["boolean", "null"]}},
    "required": ["color", "count", "ok", "pets"], "additionalProperties": false})");
  for (int seed = 1; seed <= 3; ++seed) {
    json body = Chat("Describe a pet as JSON.", 400);
    body["temperature"] = 1.0;
    body["seed"] = seed;
    body["response_format"] = {{"type", "json_schema"},
                               {"json_schema", {{"name", "pet"}, {"strict", true},
                                                {"schema", schema}}}};
    auto r = Post("/v1/chat/completions", body);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    const json full = json::parse(r->body);
    ASSERT_EQ(full["choices"][0]["finish_reason"], "stop") << r->body;
    const std::string text = full["choices"][0]["message"]["content"];
    ASSERT_TRUE(json::accept(text)) << text;
    const json out = json::parse(text);
    ASSERT_TRUE(out.is_object()) << text;
    EXPECT_TRUE(out["color"] == "red" || out["color"] == "green" || out["color"] == "blue")
        << text;
    EXPECT_TRUE(out["count"].is_number_integer()) << text;
    EXPECT_TRUE(out["ok"].is_boolean()) << text;
    ASSERT_TRUE(out["pets"].is_array()) << text;
    EXPECT_LE(out["pets"].size(), 2u) << text;
    for (const json& p : out["pets"]) EXPECT_TRUE(p == "cat" || p == "dog") << text;
    for (const auto& [k, v] : out.items()) EXPECT_TRUE(schema["properties"].contains(k)) << k;
    // The same seed streamed gives the same text.
    body["stream"] = true;
    Sse s = Stream("/v1/chat/completions", body);
    ASSERT_EQ(s.status, 200) << s.raw;
    EXPECT_EQ(s.Text(true), text);
  }
  // json_object: any object; a free string may run to max_tokens, so only a finished
  // answer must parse.
  json body = Chat("Say something as JSON.", 200);
  body["response_format"] = {{"type", "json_object"}};
  auto r = Post("/v1/chat/completions", body);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json full = json::parse(r->body);
  const std::string text = full["choices"][0]["message"]["content"];
  EXPECT_EQ(text.substr(0, 1), "{") << text;
  if (full["choices"][0]["finish_reason"] == "stop") {
    EXPECT_TRUE(json::accept(text) && json::parse(text).is_object()) << text;
  }
  // A keyword the grammar cannot enforce is refused by name.
  body["response_format"] = {
      {"type", "json_schema"},
      {"json_schema",
       {{"name", "x"},
        {"schema", {{"type", "object"},
                    {"properties", {{"n", {{"type", "integer"}, {"minimum", 0}}}}}}}}}};
  auto bad = Post("/v1/chat/completions", body);
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400) << bad->body;
  EXPECT_NE(bad->body.find("properties.n.minimum"), std::string::npos) << bad->body;
  body["response_format"] = {{"type", "xml"}};
  bad = Post("/v1/chat/completions", body);
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400) << bad->body;
}

TEST_P(ServerTest, PrefixCacheReusesEarlierPrompts) {
  // A chat resent with one more turn each time (as clients do), and a repeated request.
  json turn1 = Chat("Tell me about the sea and the ships on it.", 12);
  auto a = Post("/v1/chat/completions", turn1);
  ASSERT_TRUE(a);
  ASSERT_EQ(a->status, 200) << a->body;
  const json ja = json::parse(a->body);
  EXPECT_EQ(ja["usage"]["prompt_tokens_details"]["cached_tokens"], 0) << a->body;
  json turn2 = turn1;
  turn2["messages"].push_back(
      {{"role", "assistant"}, {"content", ja["choices"][0]["message"]["content"]}});
  turn2["messages"].push_back({{"role", "user"}, {"content", "And the fish?"}});
  auto b = Post("/v1/chat/completions", turn2);
  ASSERT_TRUE(b);
  ASSERT_EQ(b->status, 200) << b->body;
  const json jb = json::parse(b->body);
  const int cached = jb["usage"]["prompt_tokens_details"]["cached_tokens"];
  EXPECT_GT(cached, ja["usage"]["prompt_tokens"].get<int>() / 2) << b->body;
  EXPECT_LT(cached, jb["usage"]["prompt_tokens"].get<int>()) << b->body;
  // The same request again: all but the last prompt token come from the cache, and the
  // greedy answer is the same.
  auto c = Post("/v1/chat/completions", turn2);
  ASSERT_TRUE(c);
  const json jc = json::parse(c->body);
  EXPECT_EQ(jc["usage"]["prompt_tokens_details"]["cached_tokens"],
            jb["usage"]["prompt_tokens"].get<int>() - 1);
  EXPECT_EQ(jc["choices"][0]["message"]["content"], jb["choices"][0]["message"]["content"]);
  // What a server without the cache answers.
  ServerProcess plain({"--cache-mb", "0"});
  ASSERT_TRUE(plain.WaitReady());
  httplib::Client pc("127.0.0.1", plain.port());
  pc.set_read_timeout(30, 0);
  auto d = pc.Post("/v1/chat/completions", turn2.dump(), "application/json");
  ASSERT_TRUE(d);
  const json jd = json::parse(d->body);
  EXPECT_EQ(jd["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  EXPECT_EQ(jd["choices"][0]["message"]["content"], jb["choices"][0]["message"]["content"]);
  auto m = Client().Get("/metrics", Auth());
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("meshlm_prompt_tokens_cached_total"), std::string::npos);
}

TEST_P(ServerTest, SeveralChoicesShareThePrompt) {
  json body = Chat("Tell me a story about a fox.", 16);
  body["temperature"] = 1.0;
  body["seed"] = 5;
  body["n"] = 3;
  body["ignore_eos"] = true;
  auto r = Post("/v1/chat/completions", body);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json full = json::parse(r->body);
  ASSERT_EQ(full["choices"].size(), 3u) << r->body;
  std::set<std::string> texts;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(full["choices"][i]["index"], i);
    texts.insert(full["choices"][i]["message"]["content"].get<std::string>());
  }
  EXPECT_GE(texts.size(), 2u) << "each choice samples with its own seed";
  EXPECT_EQ(full["usage"]["completion_tokens"], 48) << r->body;
  // Choice i is what one request with seed + i gives.
  for (int i = 0; i < 3; ++i) {
    json one = body;
    one["n"] = 1;
    one["seed"] = 5 + i;
    auto s = Post("/v1/chat/completions", one);
    ASSERT_TRUE(s);
    EXPECT_EQ(json::parse(s->body)["choices"][0]["message"]["content"],
              full["choices"][i]["message"]["content"])
        << i;
  }
  // Streamed, each chunk names its choice.
  body["n"] = 2;
  body["stream"] = true;
  Sse sse = Stream("/v1/chat/completions", body);
  ASSERT_EQ(sse.status, 200) << sse.raw;
  ASSERT_TRUE(sse.done);
  std::string streamed[2];
  int finished = 0;
  for (const json& e : sse.events) {
    for (const json& c : e["choices"]) {
      const int i = c["index"];
      ASSERT_TRUE(i == 0 || i == 1);
      streamed[i] += c["delta"].value("content", "");
      finished += !c["finish_reason"].is_null();
    }
  }
  EXPECT_EQ(finished, 2);
  EXPECT_EQ(streamed[0], full["choices"][0]["message"]["content"]);
  EXPECT_EQ(streamed[1], full["choices"][1]["message"]["content"]);
}

TEST_P(ServerTest, LogprobsDescribeTheSampledTokens) {
  json body = Chat("Tell me about the sea.", 8);
  body["ignore_eos"] = true;
  body["logprobs"] = true;
  body["top_logprobs"] = 3;
  auto r = Post("/v1/chat/completions", body);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json choice = json::parse(r->body)["choices"][0];
  const json& content = choice["logprobs"]["content"];
  ASSERT_EQ(content.size(), 8u) << r->body;
  std::string joined;
  for (const json& t : content) {
    const float lp = t["logprob"];
    EXPECT_LE(lp, 0.0f);
    ASSERT_EQ(t["top_logprobs"].size(), 3u);
    // Greedy: the sampled token is the most likely one; alternatives come in order and
    // their probabilities sum to at most 1.
    EXPECT_EQ(t["top_logprobs"][0]["token"], t["token"]);
    EXPECT_FLOAT_EQ(t["top_logprobs"][0]["logprob"].get<float>(), lp);
    double p = 0;
    for (size_t k = 0; k < 3; ++k) {
      if (k) EXPECT_GE(t["top_logprobs"][k - 1]["logprob"], t["top_logprobs"][k]["logprob"]);
      p += std::exp(t["top_logprobs"][k]["logprob"].get<double>());
    }
    EXPECT_LE(p, 1.0 + 1e-5);
    std::string bytes;
    for (int b : t["bytes"]) bytes.push_back(static_cast<char>(b));
    joined += bytes;
  }
  EXPECT_EQ(joined, choice["message"]["content"]);
  // Streamed: the same tokens and values, spread over the chunks.
  body["stream"] = true;
  Sse s = Stream("/v1/chat/completions", body);
  ASSERT_EQ(s.status, 200) << s.raw;
  json streamed = json::array();
  for (const json& e : s.events) {
    for (const json& c : e["choices"]) {
      if (!c["logprobs"].is_null()) {
        for (const json& t : c["logprobs"]["content"]) streamed.push_back(t);
      }
    }
  }
  // (The second request starts from the prefix cache; its logits may differ in the last
  // bits, as prefill over fewer tokens sums in another order.)
  ASSERT_EQ(streamed.size(), content.size());
  for (size_t i = 0; i < content.size(); ++i) {
    EXPECT_EQ(streamed[i]["token"], content[i]["token"]) << i;
    EXPECT_NEAR(streamed[i]["logprob"].get<double>(), content[i]["logprob"].get<double>(), 1e-4);
    EXPECT_EQ(streamed[i]["top_logprobs"].size(), 3u);
  }
  // Completions: OpenAI's older shape.
  json comp = {{"prompt", "The sea is"}, {"max_tokens", 5}, {"temperature", 0},
               {"ignore_eos", true}, {"logprobs", 2}};
  auto c = Post("/v1/completions", comp);
  ASSERT_TRUE(c);
  ASSERT_EQ(c->status, 200) << c->body;
  const json lp = json::parse(c->body)["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 5u) << c->body;
  ASSERT_EQ(lp["token_logprobs"].size(), 5u);
  ASSERT_EQ(lp["top_logprobs"].size(), 5u);
  EXPECT_EQ(lp["top_logprobs"][0].size(), 2u);
  EXPECT_EQ(lp["text_offset"][0], 0);
  EXPECT_EQ(lp["text_offset"][1], lp["tokens"][0].get<std::string>().size());
  // top_logprobs alone is a mistake the client should hear about.
  json bad = Chat("hi", 2);
  bad["top_logprobs"] = 2;
  auto b = Post("/v1/chat/completions", bad);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->status, 400) << b->body;
  EXPECT_EQ(json::parse(b->body)["error"]["param"], "top_logprobs");
}

TEST_P(ServerTest, FrequencyPenaltyChangesRepetitiveGreedyText) {
  json body = {{"prompt", "The the the the the"},
               {"max_tokens", 24},
               {"temperature", 0},
               {"ignore_eos", true}};
  auto plain = Post("/v1/completions", body);
  body["frequency_penalty"] = 2.0;
  body["presence_penalty"] = 2.0;
  auto penalized = Post("/v1/completions", body);
  ASSERT_TRUE(plain && penalized);
  ASSERT_EQ(penalized->status, 200) << penalized->body;
  EXPECT_NE(json::parse(plain->body)["choices"][0]["text"],
            json::parse(penalized->body)["choices"][0]["text"]);
  body["frequency_penalty"] = 3.0;
  auto bad = Post("/v1/completions", body);
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
}

// With --strict-model a request naming another model is refused; /v1/models gives the
// model files' time as `created`.
TEST(ServerStrictModel, OtherModelIs404AndCreatedIsTheFilesTime) {
  const std::string log = BuildDir() + "/server-strict-model.log";
  ServerProcess server({"--strict-model"}, {}, "", log);
  ASSERT_TRUE(server.WaitReady()) << "server did not become ready";
  {  // the load time is logged apart
    std::ifstream f(log);
    std::stringstream text;
    text << f.rdbuf();
    EXPECT_NE(text.str().find("[serve] model loaded in "), std::string::npos) << text.str();
  }
  httplib::Client c("127.0.0.1", server.port());
  c.set_read_timeout(30, 0);
  json body = Chat("hi", 2);
  body["model"] = "gpt-17";
  auto r = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404) << r->body;
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "model_not_found");
  body["model"] = ServerTestModelName();
  auto ok = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  EXPECT_FALSE(ok->has_header("X-Meshlm-Model"));
  struct stat sb {};
  ASSERT_EQ(::stat((ServerTestModel() + "/config.json").c_str(), &sb), 0);
  auto models = c.Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(json::parse(models->body)["data"][0]["created"],
            static_cast<int64_t>(sb.st_mtim.tv_sec))
      << models->body;
}

TEST_P(ServerTest, ErrorsHaveOpenAiShape) {
  auto c = Client();
  auto expect = [&](const httplib::Result& r, int status, const std::string& code) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status) << r->body;
    auto j = json::parse(r->body);
    ASSERT_TRUE(j.contains("error")) << r->body;
    EXPECT_TRUE(j["error"]["message"].is_string());
    EXPECT_TRUE(j["error"]["type"].is_string());
    if (!code.empty()) EXPECT_EQ(j["error"]["code"], code) << r->body;
  };
  expect(c.Post("/v1/chat/completions", Auth(), "{oops", "application/json"), 400, "invalid_json");
  expect(Post("/v1/chat/completions", {{"model", "any"}}), 400, "missing_required_parameter");
  expect(Post("/v1/chat/completions", {{"messages", "hi"}}), 400, "invalid_value");
  expect(Post("/v1/completions", {{"prompt", "x"}, {"max_tokens", "ten"}}), 400, "invalid_value");
  json strange = Chat("hi", 4);
  strange["model"] = "gpt-17\r\nX-Evil: 1";  // served by the loaded model; no header injection
  auto served = Post("/v1/chat/completions", strange);
  ASSERT_TRUE(served);
  EXPECT_EQ(served->status, 200) << served->body;
  EXPECT_EQ(served->get_header_value("X-Meshlm-Model"),
            ServerTestModelName() + " (asked for gpt-17??X-Evil: 1)");
  EXPECT_FALSE(served->has_header("X-Evil"));
  EXPECT_EQ(json::parse(served->body)["model"], ServerTestModelName());
  expect(c.Get("/v1/nothing", Auth()), 404, "not_found");
  // A prompt longer than the context: 400 naming both counts, never run.
  std::string longtext;
  for (int i = 0; i < 600; ++i) longtext += "word ";
  auto r = Post("/v1/completions", {{"prompt", longtext}, {"max_tokens", 4}});
  expect(r, 400, "context_length_exceeded");
  const std::string msg = json::parse(r->body)["error"]["message"];
  EXPECT_TRUE(std::regex_search(msg, std::regex("[0-9]+ tokens.* [0-9]+ tokens"))) << msg;
  // The server still works afterwards.
  auto ok = Post("/v1/chat/completions", Chat("hi", 2));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST_P(ServerTest, ConcurrentGreedyClientsGetTheirSoloTokens) {
  const int kClients = 8;
  auto body = [](int i) {
    return json{{"prompt", "Story " + std::to_string(i) + ": the little"},
                {"max_tokens", 24},
                {"temperature", 0},
                {"ignore_eos", true},
                {"stream", true}};
  };
  std::vector<std::string> solo(kClients);
  for (int i = 0; i < kClients; ++i) {
    Sse s = Stream("/v1/completions", body(i));
    ASSERT_TRUE(s.done);
    solo[i] = s.Text(false);
  }
  std::vector<std::future<Sse>> futures;
  for (int i = 0; i < kClients; ++i) {
    futures.push_back(
        std::async(std::launch::async, [&, i] { return Stream("/v1/completions", body(i)); }));
  }
  for (int i = 0; i < kClients; ++i) {
    Sse s = futures[i].get();
    ASSERT_TRUE(s.done) << s.raw;
    EXPECT_EQ(s.Text(false), solo[i]) << "client " << i;
  }
  // They shared steps: fewer steps than 8 clients x 24 tokens run one at a time.
  auto c = Client();
  auto m = c.Get("/metrics", Auth());
  ASSERT_TRUE(m);
  const std::string key = "\nmeshlm_steps_total ";
  const size_t at = m->body.find(key);
  ASSERT_NE(at, std::string::npos);
  const long steps = std::stol(m->body.substr(at + key.size()));
  EXPECT_LT(steps, 2 * kClients * 25) << "no batching happened";
}

TEST_P(ServerTest, DisconnectedClientIsDropped) {
  httplib::Client c("127.0.0.1", server_->port());
  json body = {{"prompt", "The"},
               {"max_tokens", 200},
               {"temperature", 0},
               {"ignore_eos", true},
               {"stream", true}};
  int chunks = 0;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.headers = Auth();
  req.set_header("Content-Type", "application/json");
  req.body = body.dump();
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 2; };
  auto r = c.send(req);
  EXPECT_FALSE(r);  // we cancelled
  // Within a few steps nothing runs any more.
  std::string metrics;
  for (int i = 0; i < 50; ++i) {
    auto m = Client().Get("/metrics", Auth());
    ASSERT_TRUE(m);
    metrics = m->body;
    if (metrics.find("\nmeshlm_running_sequences 0\n") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(metrics.find("\nmeshlm_running_sequences 0\n"), std::string::npos) << metrics;
  // Dropped early: far fewer than the 200 tokens asked for were generated.
  const std::string key = "\nmeshlm_completion_tokens_total ";
  const size_t at = metrics.find(key);
  ASSERT_NE(at, std::string::npos);
  EXPECT_LT(std::stol(metrics.substr(at + key.size())), 100) << metrics;
}

// Every rank's compute and communication time is in /metrics once a request has run: the
// workers report theirs when the running requests drain.
TEST_P(ServerTest, MetricsShowEveryRanksTime) {
  auto r = Post("/v1/completions", json{{"prompt", "Once"}, {"max_tokens", 6}, {"temperature", 0}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  auto value = [](const std::string& text, const std::string& key) {
    const size_t at = text.find("\n" + key + " ");
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + key.size() + 2));
  };
  std::string metrics;
  for (int i = 0; i < 50; ++i) {
    auto m = Client().Get("/metrics", Auth());
    ASSERT_TRUE(m);
    metrics = m->body;
    if (value(metrics, fmt::format("meshlm_compute_seconds_total{{rank=\"{}\"}}", GetParam() - 1)) >
        0) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (int rank = 0; rank < GetParam(); ++rank) {
    EXPECT_GT(value(metrics, fmt::format("meshlm_compute_seconds_total{{rank=\"{}\"}}", rank)), 0)
        << metrics;
    const double comm =
        value(metrics, fmt::format("meshlm_comm_seconds_total{{rank=\"{}\"}}", rank));
    // One rank has nothing to communicate; with two, every rank all-sums each layer.
    if (GetParam() == 1) {
      EXPECT_EQ(comm, 0) << metrics;
    } else {
      EXPECT_GT(comm, 0) << metrics;
    }
  }
  EXPECT_EQ(value(metrics, fmt::format("meshlm_comm_seconds_total{{rank=\"{}\"}}", GetParam())), -1)
      << "a rank that does not exist\n"
      << metrics;
}

TEST_P(ServerTest, IdleServerKeepsWorking) {
  // With 2 ranks the op timeout is 2 s: idle workers wait without a deadline.
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));
  auto r = Post("/v1/chat/completions", Chat("Hello again", 4));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

INSTANTIATE_TEST_SUITE_P(Ranks, ServerTest, ::testing::Values(1, 2),
                         [](const auto& info) { return "ranks" + std::to_string(info.param); });

// A non-streaming client that goes away is noticed while its answer is being generated,
// and its sequence stops within a step or two.
TEST(ServerDisconnect, NonStreamingClientThatLeavesIsDropped) {
  ServerProcess server({}, {"MESHLM_STEP_DELAY_MS=20"});
  ASSERT_TRUE(server.WaitReady());
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(server.port()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  // 200 tokens at >= 20 ms a step: at least 4 s unless the request is dropped.
  const std::string body =
      json{{"prompt", "The"}, {"max_tokens", 200}, {"temperature", 0}, {"ignore_eos", true}}.dump();
  const std::string request = fmt::format(
      "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
      "{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
      kKey, body.size(), body);
  ASSERT_EQ(::send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  httplib::Client c("127.0.0.1", server.port());
  auto value = [&](const std::string& key) {
    auto m = c.Get("/metrics", {{"Authorization", std::string("Bearer ") + kKey}});
    if (!m) return -1.0;
    const size_t at = m->body.find("\n" + key + " ");
    return at == std::string::npos ? -1.0 : std::stod(m->body.substr(at + key.size() + 2));
  };
  for (int i = 0; i < 100 && value("meshlm_running_sequences") != 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(value("meshlm_running_sequences"), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ::close(fd);
  const double t0 = meshlm::NowSeconds();
  while (value("meshlm_running_sequences") != 0 && meshlm::NowSeconds() - t0 < 3) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const double took = meshlm::NowSeconds() - t0;
  std::printf("the request stopped %.0f ms after its client left\n", took * 1e3);
  EXPECT_EQ(value("meshlm_running_sequences"), 0);
  EXPECT_LT(took, 1.0);
  EXPECT_EQ(value("meshlm_requests_cancelled_total"), 1);
  EXPECT_LT(value("meshlm_steps_total"), 150) << "the request ran to its end";
}

TEST(ServerLimits, FullQueueAnswers429) {
  // Steps stretched to 5 ms: the first request runs for about a second, so the others
  // arrive while it runs (and not, on a loaded machine, before the scheduler took it).
  ServerProcess server({"--max-concurrent", "1", "--max-queue", "1"}, {"MESHLM_STEP_DELAY_MS=5"});
  ASSERT_TRUE(server.WaitReady());
  auto post = [&](int i) {
    httplib::Client c("127.0.0.1", server.port());
    c.set_read_timeout(30, 0);
    json body = {{"prompt", "Count " + std::to_string(i)},
                 {"max_tokens", 200},
                 {"temperature", 0},
                 {"ignore_eos", true}};
    auto r = c.Post("/v1/completions", body.dump(), "application/json");
    if (!r) return -1;
    if (r->status == 429) {
      EXPECT_EQ(json::parse(r->body)["error"]["code"], "rate_limit_exceeded");
      EXPECT_EQ(r->get_header_value("Retry-After"), "1");
    }
    return r->status;
  };
  std::vector<std::future<int>> replies;
  replies.push_back(std::async(std::launch::async, post, 0));
  httplib::Client c("127.0.0.1", server.port());
  bool running = false;
  for (int i = 0; i < 500 && !running; ++i) {
    auto m = c.Get("/metrics");
    running = m && m->body.find("\nmeshlm_running_sequences 1\n") != std::string::npos;
    if (!running) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(running) << "the first request never started";
  for (int i = 1; i < 8; ++i) replies.push_back(std::async(std::launch::async, post, i));
  int ok = 0, limited = 0;
  for (auto& f : replies) {
    const int status = f.get();
    ok += status == 200;
    limited += status == 429;
  }
  EXPECT_GE(ok, 2);  // the running one, and one queued at least
  EXPECT_GE(limited, 1);
  EXPECT_EQ(ok + limited, 8);
}

TEST(ServerDetach, StopLeavesNoProcessBehind) {
  char dir_template[] = "/tmp/meshlm-serve-test-XXXXXX";
  const std::string dir = ::mkdtemp(dir_template);
  const int port = FreePort();
  const std::string meshlm = BuildDir() + "/src/cli/meshlm";
  const std::string env = "XDG_RUNTIME_DIR=" + dir + " ";
  const std::string serve = env + meshlm + " serve --model " + ServerTestModel() +
                            " -n 2 --threads 1 --detach --ready-timeout 60 --port " +
                            std::to_string(port);
  ASSERT_EQ(std::system(serve.c_str()), 0);
  httplib::Client c("127.0.0.1", port);
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto pids = [&] {
    // "[ ]" keeps the pattern from matching the shell that runs pgrep.
    const std::string cmd = "pgrep -f -- 'serve.*--port[ ]" + std::to_string(port) + "'";
    std::string out;
    if (FILE* p = ::popen(cmd.c_str(), "r")) {
      char buf[256];
      while (std::fgets(buf, sizeof(buf), p)) out += buf;
      ::pclose(p);
    }
    return out;
  };
  EXPECT_FALSE(pids().empty());
  ASSERT_EQ(std::system((env + meshlm + " stop --port " + std::to_string(port)).c_str()), 0);
  EXPECT_EQ(pids(), "");
  EXPECT_FALSE(c.Get("/health"));
  std::system(("rm -rf " + dir).c_str());
}

// Children of `parent` whose environment says MESHLM_RANK=`rank`.
// A process's state letter and parent from /proc/PID/stat; false when it is gone.
bool StatOf(pid_t pid, char* state, pid_t* ppid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return false;
  std::istringstream rest(line.substr(close + 2));
  return static_cast<bool>(rest >> *state >> *ppid);
}

pid_t FindRank(pid_t parent, int rank) {
  DIR* d = ::opendir("/proc");
  pid_t found = -1;
  while (dirent* e = d ? ::readdir(d) : nullptr) {
    const pid_t pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    char state;
    pid_t ppid;
    if (!StatOf(pid, &state, &ppid) || ppid != parent) continue;
    std::ifstream env("/proc/" + std::string(e->d_name) + "/environ");
    std::string all((std::istreambuf_iterator<char>(env)), std::istreambuf_iterator<char>());
    if (all.find("MESHLM_RANK=" + std::to_string(rank) + '\0') != std::string::npos) found = pid;
  }
  if (d) ::closedir(d);
  return found;
}

// `meshlm serve -n 2` whose launcher is killed with SIGKILL: both ranks stop within 2 s
// and nothing answers on the port any more.
TEST(ServerFailure, KilledLauncherTakesItsRanksAlong) {
  ServerProcess server({"-n", "2", "--tp", "2"});
  ASSERT_TRUE(server.WaitReady());
  const pid_t ranks[2] = {FindRank(server.pid(), 0), FindRank(server.pid(), 1)};
  ASSERT_GT(ranks[0], 0);
  ASSERT_GT(ranks[1], 0);
  auto alive = [](pid_t pid) {
    char state;
    pid_t ppid;
    return StatOf(pid, &state, &ppid) && state != 'Z';
  };
  ::kill(server.pid(), SIGKILL);
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  while ((alive(ranks[0]) || alive(ranks[1])) && Clock::now() - t0 < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const double took = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("both ranks gone %.3f s after the launcher was killed\n", took);
  EXPECT_FALSE(alive(ranks[0]));
  EXPECT_FALSE(alive(ranks[1]));
  EXPECT_LT(took, 2.0);
  httplib::Client c("127.0.0.1", server.port());
  c.set_connection_timeout(1, 0);
  EXPECT_FALSE(c.Get("/health")) << "something still answers on the port";
  for (pid_t pid : ranks) ::kill(pid, SIGKILL);  // in case the checks above failed
}

TEST(ServerFailure, KilledWorkerEndsTheStreamWithAnErrorWithin5s) {
  ServerProcess server({"-n", "2", "--tp", "2"});
  ASSERT_TRUE(server.WaitReady());
  const pid_t worker = FindRank(server.pid(), 1);
  ASSERT_GT(worker, 0);
  // Eight streams at once.
  const int kClients = 8;
  using Clock = std::chrono::steady_clock;
  std::vector<Clock::time_point> first_chunk(kClients), error_at(kClients), ended(kClients);
  std::vector<std::string> bodies(kClients);
  std::vector<std::thread> clients;
  std::atomic<int> streaming{0};
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      httplib::Client c("127.0.0.1", server.port());
      c.set_read_timeout(30, 0);
      httplib::Request req;
      req.method = "POST";
      req.path = "/v1/completions";
      req.set_header("Content-Type", "application/json");
      req.body = json{
          {"prompt", "Tale " + std::to_string(i)},
          {"max_tokens", 230},
          {"temperature", 0},
          {"ignore_eos", true},
          {"stream",
           true}}.dump();
      bool counted = false;
      req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
        if (!counted) {
          counted = true;
          first_chunk[i] = Clock::now();
          ++streaming;
        }
        bodies[i].append(data, n);
        if (error_at[i] == Clock::time_point{} &&
            bodies[i].find("\"error\"") != std::string::npos) {
          error_at[i] = Clock::now();
        }
        return true;
      };
      // An error status (a request that arrives once the cluster failed) has its body here.
      auto r = c.send(req);
      ended[i] = Clock::now();
      if (r && r->status != 200) bodies[i] += r->body;
      if (!r) bodies[i] += "[" + httplib::to_string(r.error()) + "]";
      if (error_at[i] == Clock::time_point{}) error_at[i] = ended[i];  // cut off
      if (!counted) ++streaming;
    });
  }
  // Freeze the worker once the first stream runs, so that no stream can finish; then
  // kill it: running and queued requests alike must end with an error.
  while (streaming < 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ::kill(worker, SIGSTOP);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto kill_time = Clock::now();
  ::kill(worker, SIGKILL);
  for (auto& t : clients) t.join();
  // Every client sees an error within 5 s: an SSE error event (the running streams), an
  // error status, or a refused connection (the ones that came too late).
  int events = 0;
  for (int i = 0; i < kClients; ++i) {
    EXPECT_EQ(bodies[i].find("data: [DONE]"), std::string::npos) << "client " << i << " finished";
    const bool event = bodies[i].find("data: {\"error\"") != std::string::npos;
    events += event;
    EXPECT_TRUE(event || bodies[i].find("\"error\"") != std::string::npos ||
                bodies[i].find("[") == 0)
        << "client " << i << ": no error; "
        << std::chrono::duration<double>(ended[i] - kill_time).count() << " s after the kill: '"
        << bodies[i].substr(0, 300) << "'";
    EXPECT_LT(std::chrono::duration<double>(error_at[i] - kill_time).count(), 5.0) << i;
  }
  EXPECT_GE(events, 1) << "the running stream got no error event";
}

// A worker that stops answering while the server is idle shows in /health within a few
// seconds (the idle probe), new requests are refused with 503 and Retry-After instead of
// hanging, and the state returns to ok when the worker answers again.
TEST(ServerFailure, StalledIdleWorkerShowsInHealthAndRecovers) {
  ServerProcess server({"-n", "2", "--tp", "2"}, {"MESHLM_OP_TIMEOUT=8"});
  ASSERT_TRUE(server.WaitReady());
  const pid_t worker = FindRank(server.pid(), 1);
  ASSERT_GT(worker, 0);
  httplib::Client c("127.0.0.1", server.port());
  c.set_read_timeout(5, 0);
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200) << health->body;
  ::kill(worker, SIGSTOP);
  using Clock = std::chrono::steady_clock;
  const auto stopped = Clock::now();
  std::string degraded;
  double seen_after = -1;
  while (Clock::now() - stopped < std::chrono::seconds(6)) {
    auto h = c.Get("/health");
    if (h && h->status == 503) {
      degraded = h->body;
      seen_after = std::chrono::duration<double>(Clock::now() - stopped).count();
      EXPECT_EQ(h->get_header_value("Retry-After"), "5");
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GE(seen_after, 0) << "the stalled worker never showed in /health";
  std::printf("stalled idle worker seen in /health after %.2f s\n", seen_after);
  EXPECT_LT(seen_after, 4.0);
  const json body = json::parse(degraded);
  EXPECT_EQ(body.value("status", ""), "degraded") << degraded;
  EXPECT_GT(body.value("waiting_on_ranks_s", 0.0), 1.0) << degraded;
  // The stalled rank is the one named.
  EXPECT_EQ(body.value("waiting_on", json::array()), json::array({1})) << degraded;
  EXPECT_NE(body.value("error", "").find("rank 1 has not answered"), std::string::npos)
      << degraded;
  // A request now is refused at once rather than queued behind the stalled collective.
  const auto t0 = Clock::now();
  auto r = c.Post("/v1/chat/completions", {{"Authorization", std::string("Bearer ") + kKey}},
                  Chat("Hello", 4).dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 1.0);
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_FALSE(r->get_header_value("Retry-After").empty());
  EXPECT_NE(r->body.find("degraded"), std::string::npos) << r->body;
  // Resumed before the collectives' deadline: the job carries on.
  ::kill(worker, SIGCONT);
  bool ok_again = false;
  for (int i = 0; i < 100 && !ok_again; ++i) {
    auto h = c.Get("/health");
    ok_again = h && h->status == 200;
    if (!ok_again) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(ok_again);
  r = c.Post("/v1/chat/completions", {{"Authorization", std::string("Bearer ") + kKey}},
             Chat("Hello", 4).dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

}  // namespace
}  // namespace meshlm::testing
