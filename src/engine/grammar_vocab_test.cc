// Token masks on real vocabularies (tokenizer.json from npm): each token's bytes as the
// decoder gives them, and masks equal to feeding every token, at states along a document.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "engine/grammar.h"
#include "engine/json_schema.h"
#include "tokenizer/tokenizer.h"

namespace meshlm::engine {
namespace {

using ojson = nlohmann::ordered_json;

std::string VocabDir(const std::string& name) {
  const char* v = std::getenv("MESHLM_TOKENIZER_VOCABS");
  return (v && *v ? std::string(v) : std::string(MESHLM_TEST_BUILD_DIR) + "/tokenizer-vocabs") +
         "/" + name;
}

class GrammarVocab : public ::testing::TestWithParam<std::string> {};

TEST_P(GrammarVocab, TokenBytesSpellTheText) {
  auto tok = Tokenizer::FromHfDir(VocabDir(GetParam()));
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  const auto table = (*tok)->TokenByteTable();
  ASSERT_EQ(table.size(), (*tok)->vocab_size());
  for (const char* text : {"{\"name\": \"Zoë\", \"n\": [1, 2.5e3]}", "日本語のテキスト 😀 ok",
                           "  indented\n\tline \"quoted\" \\ back"}) {
    auto ids = (*tok)->Encode(text, false);
    ASSERT_TRUE(ids.ok());
    std::string joined;
    for (int32_t id : *ids) joined += table[id];
    // A SentencePiece tokenizer adds a space before the text, which the decoder strips.
    if (joined.size() == std::string(text).size() + 1 && joined[0] == ' ') joined.erase(0, 1);
    EXPECT_EQ(joined, text);
  }
}

TEST_P(GrammarVocab, MaskMatchesTokenByTokenCheck) {
  auto tok = Tokenizer::FromHfDir(VocabDir(GetParam()));
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  const TokenIndex index((*tok)->TokenByteTable(), (*tok)->stop_ids());
  auto g = JsonSchemaGrammar(ojson::parse(R"({"type": "object", "properties": {
      "city": {"type": "string"}, "days": {"type": "integer"},
      "units": {"enum": ["celsius", "fahrenheit"]},
      "notes": {"type": "array", "items": {"type": "string"}}},
      "required": ["city", "units"], "additionalProperties": false})"),
                             "schema");
  ASSERT_TRUE(g.ok());
  const std::string doc =
      R"({"city": "Zürich \"old\" 東京", "days": 12, "units": "celsius", "notes": ["a\nb", ""]})";
  std::mt19937 rng(std::random_device{}());
  std::vector<size_t> cuts = {0, 1, 9, 12, 20, 30, doc.size()};
  for (int i = 0; i < 3; ++i) cuts.push_back(rng() % doc.size());
  for (size_t cut : cuts) {
    GrammarMatcher m(*g);
    ASSERT_TRUE(m.Accept(doc.substr(0, cut)) || cut == 0);
    GrammarMatcher fast = m;
    std::vector<uint64_t> mask;
    fast.FillMask(index, &mask);
    size_t allowed = 0;
    for (size_t id = 0; id < index.vocab_size(); ++id) {
      GrammarMatcher slow = m;
      const bool want = slow.AcceptToken(index, static_cast<int32_t>(id));
      const bool got = (mask[id / 64] >> (id % 64)) & 1;
      allowed += got;
      ASSERT_EQ(got, want) << "token " << id << " '" << index.bytes(static_cast<int32_t>(id))
                           << "' after '" << doc.substr(0, cut) << "'";
    }
    EXPECT_GT(allowed, 0u) << "after '" << doc.substr(0, cut) << "'";
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabs, GrammarVocab,
                         ::testing::Values("qwen3", "llama2", "mistral_nemo", "gemma3"));

}  // namespace
}  // namespace meshlm::engine
