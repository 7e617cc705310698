// /tokenize and /detokenize bodies and answers on the bundled demo model's tokenizer.
#include "server/tokenize_api.h"

#include <gtest/gtest.h>

namespace meshlm::server {
namespace {

using nlohmann::json;

const Tokenizer& Demo() {
  static const auto* t = [] {
    auto loaded =
        Tokenizer::FromHfDir(std::string(MESHLM_TEST_SOURCE_DIR) + "/models/meshlm-demo-6m");
    EXPECT_TRUE(loaded.ok()) << loaded.status().message();
    return loaded.ok() ? std::move(loaded).value().release() : nullptr;
  }();
  return *t;
}

json Tokenize(const json& body) {
  std::string answer;
  ApiError e;
  EXPECT_TRUE(TokenizeAnswer(body.dump(), &Demo(), &answer, &e)) << e.message;
  return json::parse(answer);
}

ApiError TokenizeError(const std::string& body) {
  std::string answer;
  ApiError e;
  EXPECT_FALSE(TokenizeAnswer(body, &Demo(), &answer, &e)) << body;
  return e;
}

ApiError DetokenizeError(const std::string& body) {
  std::string answer;
  ApiError e;
  EXPECT_FALSE(DetokenizeAnswer(body, &Demo(), &answer, &e)) << body;
  return e;
}

TEST(TokenizeApi, IdsAndPiecesAreTheTokenizers) {
  const std::string text = "Once upon a time, 🦙 <|im_end|>";
  const json plain = Tokenize({{"content", text}});
  EXPECT_EQ(plain["tokens"].get<std::vector<int32_t>>(), Demo().Encode(text, false).value());
  const json pieces = Tokenize({{"content", text}, {"with_pieces", true}});
  std::string joined;
  int byte_pieces = 0;
  for (const json& t : pieces["tokens"]) {
    ASSERT_TRUE(t["id"].is_number_integer()) << t;
    if (t["piece"].is_string()) {
      joined += t["piece"].get<std::string>();
    } else {
      ++byte_pieces;
      for (const json& b : t["piece"]) joined += static_cast<char>(b.get<int>());
    }
  }
  EXPECT_EQ(joined, text);
  // The demo vocabulary spells the llama in several byte tokens.
  EXPECT_GE(byte_pieces, 2) << pieces;
}

TEST(TokenizeApi, DetokenizeRoundTrips) {
  const std::vector<int32_t> ids = Demo().Encode("Hello <|im_start|> world", false).value();
  std::string answer;
  ApiError e;
  ASSERT_TRUE(DetokenizeAnswer(json{{"tokens", ids}}.dump(), &Demo(), &answer, &e)) << e.message;
  EXPECT_EQ(json::parse(answer)["content"], "Hello <|im_start|> world");
  ASSERT_TRUE(DetokenizeAnswer(R"({"tokens": []})", &Demo(), &answer, &e));
  EXPECT_EQ(json::parse(answer)["content"], "");
}

TEST(TokenizeApi, BadBodiesNameTheField) {
  EXPECT_EQ(TokenizeError("not json").code, "invalid_json");
  EXPECT_EQ(TokenizeError("[1]").code, "invalid_json");
  EXPECT_EQ(TokenizeError("{}").param, "content");
  EXPECT_EQ(TokenizeError(R"({"content": 5})").param, "content");
  EXPECT_EQ(TokenizeError(R"({"content": "a", "add_special": "yes"})").param, "add_special");
  EXPECT_EQ(TokenizeError(R"({"content": "a", "with_pieces": 1})").param, "with_pieces");
  EXPECT_EQ(DetokenizeError("{}").param, "tokens");
  EXPECT_EQ(DetokenizeError(R"({"tokens": "1,2"})").param, "tokens");
  EXPECT_EQ(DetokenizeError(R"({"tokens": [1, "2"]})").param, "tokens[1]");
  EXPECT_EQ(DetokenizeError(R"({"tokens": [1, 2.5]})").param, "tokens[1]");
  const size_t vocab = Demo().vocab_size();
  for (const std::string& bad :
       {std::to_string(vocab), std::string("-1"), std::string("18446744073709551615")}) {
    const ApiError e = DetokenizeError(R"({"tokens": [0, )" + bad + "]}");
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, "tokens[1]") << e.message;
    EXPECT_NE(e.message.find(fmt::format("0..{}", vocab - 1)), std::string::npos) << e.message;
  }
  std::string many = "{\"tokens\": [0";
  for (size_t i = 0; i < kMaxTokenizeIds; ++i) many += ",0";
  EXPECT_NE(DetokenizeError(many + "]}").message.find("over the limit"), std::string::npos);
}

TEST(TokenizeApi, AModelWithoutATokenizerSaysSo) {
  std::string answer;
  ApiError e;
  EXPECT_FALSE(TokenizeAnswer(R"({"content": "a"})", nullptr, &answer, &e));
  EXPECT_EQ(e.code, "tokenizer_missing");
  EXPECT_FALSE(DetokenizeAnswer(R"({"tokens": [1]})", nullptr, &answer, &e));
  EXPECT_EQ(e.code, "tokenizer_missing");
}

}  // namespace
}  // namespace meshlm::server
