// OpenAI request parsing (fields, types, errors) and response shapes, without a model.
#include "server/openai.h"

#include <gtest/gtest.h>

namespace meshlm::server {
namespace {

bool Parse(const std::string& body, bool chat, ApiRequest* out, ApiError* err) {
  PromptContext ctx;  // no tokenizer: prompts are ids
  ctx.defaults.temperature = 0.7f;
  return ParseRequest(body, chat, ctx, out, err);
}

TEST(OpenAiParse, CompletionWithIdsAndParameters) {
  ApiRequest r;
  ApiError e;
  ASSERT_TRUE(Parse(R"({"model":"m","prompt":[1,2,3],"max_tokens":5,"temperature":0,
      "top_p":0.9,"top_k":4,"min_p":0.1,"seed":42,"stop":["a","b"],"stream":true,
      "stream_options":{"include_usage":true},"unknown_field":{"x":1}})",
                    false, &r, &e))
      << e.message;
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.gen.prompt, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(r.gen.max_tokens, 5u);
  EXPECT_EQ(r.gen.sampling.temperature, 0.0f);
  EXPECT_FLOAT_EQ(r.gen.sampling.top_p, 0.9f);
  EXPECT_EQ(r.gen.sampling.top_k, 4);
  EXPECT_EQ(r.gen.sampling.seed, 42u);
  EXPECT_EQ(r.gen.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
}

TEST(OpenAiParse, LogitBiasByTokenId) {
  ApiRequest r;
  ApiError e;
  ASSERT_TRUE(Parse(R"({"prompt":[1],"logit_bias":{"7":-100,"12":2.5,"0":100}})", false, &r, &e))
      << e.message;
  const std::vector<std::pair<int32_t, float>> want = {{7, -100.0f}, {12, 2.5f}, {0, 100.0f}};
  EXPECT_EQ(r.gen.sampling.logit_bias, want);
  ApiRequest none;
  ASSERT_TRUE(Parse(R"({"prompt":[1],"logit_bias":null})", false, &none, &e)) << e.message;
  EXPECT_TRUE(none.gen.sampling.logit_bias.empty());
}

TEST(OpenAiParse, DefaultsComeFromTheModel) {
  ApiRequest r;
  ApiError e;
  ASSERT_TRUE(Parse(R"({"prompt":[[7]],"max_completion_tokens":3})", false, &r, &e));
  EXPECT_FLOAT_EQ(r.gen.sampling.temperature, 0.7f);
  EXPECT_EQ(r.gen.prompt, (std::vector<int32_t>{7}));
  EXPECT_EQ(r.gen.max_tokens, 3u);
}

TEST(OpenAiParse, ErrorsNameTheField) {
  struct Case {
    const char* body;
    const char* field;
  } cases[] = {
      {R"({"prompt":[1],"max_tokens":"5"})", "max_tokens"},
      {R"({"prompt":[1],"max_tokens":0})", "max_tokens"},
      {R"({"prompt":[1],"temperature":3})", "temperature"},
      {R"({"prompt":[1],"n":17})", "n"},
      {R"({"prompt":[1],"stop":[1]})", "stop"},
      {R"({"prompt":[1],"stream":"yes"})", "stream"},
      {R"({"prompt":{"a":1}})", "prompt"},
      {R"({"prompt":"text needs a tokenizer"})", "prompt"},
      {R"({"max_tokens":1})", "prompt"},
      {R"({"prompt":[1],"model":5})", "model"},
      {R"({"prompt":[1],"logit_bias":[1]})", "logit_bias"},
      {R"({"prompt":[1],"logit_bias":{"x7":1}})", "logit_bias"},
      {R"({"prompt":[1],"logit_bias":{"-3":1}})", "logit_bias"},
      {R"({"prompt":[1],"logit_bias":{"99999999999":1}})", "logit_bias"},
      {R"({"prompt":[1],"logit_bias":{"7":101}})", "logit_bias"},
      {R"({"prompt":[1],"logit_bias":{"7":"up"}})", "logit_bias"},
  };
  for (const auto& c : cases) {
    ApiRequest r;
    ApiError e;
    EXPECT_FALSE(Parse(c.body, false, &r, &e)) << c.body;
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.param, c.field) << c.body;
    EXPECT_NE(e.message.find(c.field), std::string::npos) << e.message;
  }
}

TEST(OpenAiParse, InvalidJsonAndMissingMessages) {
  ApiRequest r;
  ApiError e;
  EXPECT_FALSE(Parse("{not json", false, &r, &e));
  EXPECT_EQ(e.code, "invalid_json");
  ApiError e2;
  EXPECT_FALSE(Parse(R"({"model":"m"})", true, &r, &e2));
  EXPECT_EQ(e2.param, "messages");
  ApiError e3;
  EXPECT_FALSE(Parse(R"([1,2])", true, &r, &e3));
}

TEST(OpenAiFormat, ErrorBodyShape) {
  ApiError e;
  e.message = "bad";
  e.code = "x";
  const auto j = nlohmann::json::parse(ErrorBody(e));
  EXPECT_EQ(j["error"]["message"], "bad");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["code"], "x");
  EXPECT_TRUE(j["error"]["param"].is_null());
}

TEST(OpenAiFormat, ChunksAndUsage) {
  ResponseMeta m{"chatcmpl-1", "tiny", 5, true};
  auto first = nlohmann::json::parse(StreamChunk(m, "", true, ""));
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  auto last = nlohmann::json::parse(StreamChunk(m, "", false, "length"));
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(last["choices"][0]["delta"].empty());
  auto usage = nlohmann::json::parse(UsageChunk(m, 3, 4));
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["total_tokens"], 7);
  ResponseMeta c{"cmpl-1", "tiny", 5, false};
  auto full = nlohmann::json::parse(FullResponse(c, "hi", "stop", 2, 1));
  EXPECT_EQ(full["object"], "text_completion");
  EXPECT_EQ(full["choices"][0]["text"], "hi");
  EXPECT_EQ(full["usage"]["completion_tokens"], 1);
}

TEST(OpenAiAuth, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secret2"));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
}

}  // namespace
}  // namespace meshlm::server
