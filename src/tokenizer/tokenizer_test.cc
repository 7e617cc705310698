// Golden tests: ids from Hugging Face's tokenizers library (tools/golden_tokenizer.js)
// for real vocabularies fetched from npm (tools/tokenizer_fetch_vocabs.sh).
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "base/mapped_file.h"
#include "tokenizer/unicode.h"

namespace meshlm {
namespace {

using nlohmann::json;

std::string Env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

std::string VocabDir(const std::string& name) {
  return Env("MESHLM_TOKENIZER_VOCABS", MESHLM_DEFAULT_TOKENIZER_VOCABS) + "/" + name;
}

std::string SourceDir() { return Env("MESHLM_SOURCE_DIR", MESHLM_DEFAULT_SOURCE_DIR); }

// Loading a vocabulary takes up to a second or two: share them across tests.
const Tokenizer* Load(const std::string& name) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[name];
  if (!slot) {
    auto t = Tokenizer::FromHfDir(VocabDir(name));
    EXPECT_TRUE(t.ok()) << t.status().message()
                        << "\n(fetch the vocabularies with tools/tokenizer_fetch_vocabs.sh "
                           "$MESHLM_BUILD_DIR/tokenizer-vocabs, or run through ctest)";
    if (!t.ok()) return nullptr;
    slot = std::move(t).value();
  }
  return slot.get();
}

json LoadGolden(const std::string& name) {
  auto text = ReadFileToString(SourceDir() + "/tests/data/tokenizer/" + name + ".json");
  EXPECT_TRUE(text.ok()) << text.status().message();
  return text.ok() ? json::parse(*text) : json();
}

std::string Show(const std::string& s) { return json(s).dump(); }

class GoldenTest : public testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, EncodeMatchesHuggingFace) {
  const Tokenizer* t = Load(GetParam());
  ASSERT_NE(t, nullptr);
  const json golden = LoadGolden(GetParam());
  ASSERT_TRUE(golden.contains("cases"));
  for (const json& c : golden["cases"]) {
    const std::string text = c["text"];
    auto plain = t->Encode(text, false);
    ASSERT_TRUE(plain.ok()) << plain.status().message();
    EXPECT_EQ(*plain, c["ids"].get<std::vector<int32_t>>()) << "text " << Show(text);
    auto special = t->Encode(text, true);
    ASSERT_TRUE(special.ok()) << special.status().message();
    EXPECT_EQ(*special, c["ids_special"].get<std::vector<int32_t>>()) << "text " << Show(text);
  }
}

TEST_P(GoldenTest, DecodeMatchesHuggingFace) {
  const Tokenizer* t = Load(GetParam());
  ASSERT_NE(t, nullptr);
  const json golden = LoadGolden(GetParam());
  for (const json& c : golden["cases"]) {
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(Show(t->Decode(ids)), Show(c["decoded"])) << "text " << Show(c["text"]);
    const auto ids_special = c["ids_special"].get<std::vector<int32_t>>();
    EXPECT_EQ(Show(t->Decode(ids_special, true)), Show(c["decoded_skip"]))
        << "text " << Show(c["text"]);
  }
}

TEST_P(GoldenTest, StreamingEqualsWholeDecode) {
  const Tokenizer* t = Load(GetParam());
  ASSERT_NE(t, nullptr);
  const json golden = LoadGolden(GetParam());
  for (const json& c : golden["cases"]) {
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    StreamDecoder stream(*t);
    std::string streamed;
    for (const int32_t id : ids) {
      const std::string piece = stream.Push(id);
      // Every released piece is complete UTF-8 on its own.
      EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos) << "text " << Show(c["text"]);
      streamed += piece;
    }
    streamed += stream.Flush();
    EXPECT_EQ(Show(streamed), Show(t->Decode(ids))) << "text " << Show(c["text"]);
  }
}

TEST_P(GoldenTest, PiecesAddUpToWholeDecode) {
  const Tokenizer* t = Load(GetParam());
  ASSERT_NE(t, nullptr);
  const json golden = LoadGolden(GetParam());
  for (const json& c : golden["cases"]) {
    for (const char* key : {"ids", "ids_special"}) {
      const auto ids = c[key].get<std::vector<int32_t>>();
      const std::vector<std::string> pieces = t->Pieces(ids);
      ASSERT_EQ(pieces.size(), ids.size());
      std::string joined;
      for (const std::string& p : pieces) joined += p;
      std::string lossy;
      tok::AppendUtf8Lossy(joined, &lossy);
      EXPECT_EQ(Show(lossy), Show(t->Decode(ids))) << key << " of text " << Show(c["text"]);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, GoldenTest,
                         testing::Values("qwen3", "qwen2_5", "llama3", "llama3_1", "llama3_2",
                                         "mistral_nemo", "llama2", "gemma3", "gpt2", "deepseek_v3"),
                         [](const testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST(TokenizerTest, SpecialTokensAndConfig) {
  const Tokenizer* t = Load("qwen3");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->TokenToId("<|im_end|>"), 151645);
  EXPECT_EQ(t->eos_token(), "<|im_end|>");
  EXPECT_EQ(t->eos_id(), 151645);
  EXPECT_EQ(t->bos_id(), -1);
  EXPECT_TRUE(t->IsSpecial(151645));
  EXPECT_FALSE(t->IsSpecial(100));
  EXPECT_NE(t->chat_template().find("<|im_start|>"), std::string::npos);
  const Tokenizer* l = Load("llama3_2");
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->bos_id(), 128000);
  EXPECT_EQ(l->eos_id(), 128009);
}

TEST(TokenizerTest, InvalidUtf8InputIsAnError) {
  const Tokenizer* t = Load("gpt2");
  ASSERT_NE(t, nullptr);
  auto r = t->Encode("ab\xC3(", false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("byte 2"), std::string::npos) << r.status().message();
}

TEST(TokenizerTest, StreamHoldsBackSplitCharacters) {
  const Tokenizer* t = Load("gpt2");
  ASSERT_NE(t, nullptr);
  // "🦙" has no single GPT-2 token: its four bytes arrive over several tokens.
  auto ids = t->Encode("a🦙b", false);
  ASSERT_TRUE(ids.ok());
  ASSERT_GT(ids->size(), 3u);
  StreamDecoder stream(*t);
  std::vector<std::string> pieces;
  for (const int32_t id : *ids) pieces.push_back(stream.Push(id));
  EXPECT_EQ(pieces.front(), "a");
  std::string all;
  for (const auto& p : pieces) all += p;
  EXPECT_EQ(all, "a🦙b");
  // Before the last byte of the emoji arrived, nothing of it was released.
  EXPECT_EQ(pieces[pieces.size() - 2], "🦙");
}

TEST(TokenizerTest, PiecesOfASplitCharacterAreItsBytes) {
  // "🦙" (F0 9F A6 99) has no single token in either vocabulary: GPT-2 spells it in
  // byte-alphabet tokens, Llama 2 in byte-fallback tokens (<0xF0>...).
  for (const char* name : {"gpt2", "llama2"}) {
    const Tokenizer* t = Load(name);
    ASSERT_NE(t, nullptr);
    auto ids = t->Encode("a🦙b c", false);
    ASSERT_TRUE(ids.ok());
    const std::vector<std::string> pieces = t->Pieces(*ids);
    std::string joined;
    size_t split = 0;
    for (const std::string& p : pieces) {
      joined += p;
      if (tok::FindInvalidUtf8(p) != std::string::npos) {
        ++split;
        EXPECT_LT(p.size(), 4u) << name;
      }
    }
    EXPECT_EQ(joined, "a🦙b c") << name;
    EXPECT_GE(split, 2u) << name;
    EXPECT_EQ(pieces.back(), " c") << name;
    // Ids that stop inside the character still give its bytes so far.
    auto cut = t->Encode("🦙", false);
    ASSERT_TRUE(cut.ok());
    ASSERT_GT(cut->size(), 1u) << name;
    cut->pop_back();
    joined.clear();
    for (const std::string& p : t->Pieces(*cut)) joined += p;
    EXPECT_TRUE(std::string("🦙").starts_with(joined) && !joined.empty()) << name;
  }
}

TEST(TokenizerTest, LongRunsOfByteLevelTextRoundTrip) {
  const Tokenizer* t = Load("qwen3");
  ASSERT_NE(t, nullptr);
  for (const std::string& text :
       {std::string(300000, ' ') + "x", std::string(300000, '7'), std::string(300000, 'a'),
        std::string(100000, '!') + std::string(100000, '\n') + " y"}) {
    auto ids = t->Encode(text, false);
    ASSERT_TRUE(ids.ok());
    EXPECT_EQ(t->Decode(*ids), text);
  }
}

TEST(TokenizerTest, LongRunsAreNotQuadratic) {
  const Tokenizer* t = Load("gemma3");  // no pre-tokenizer split: one long word
  ASSERT_NE(t, nullptr);
  const std::string text(200000, ' ');
  auto ids = t->Encode(text + "x" + std::string(200000, '7'), false);
  ASSERT_TRUE(ids.ok());
  EXPECT_GT(ids->size(), 10u);
}

}  // namespace
}  // namespace meshlm

namespace meshlm {
namespace {

// Real vocabularies with stages replaced (tools/golden_tokenizer_variants.js): the
// stages that no shipped model uses, checked against the reference all the same.
TEST(VariantTest, PatchedPipelinesMatchHuggingFace) {
  auto golden_text = ReadFileToString(SourceDir() + "/tests/data/tokenizer/variants.json");
  ASSERT_TRUE(golden_text.ok()) << golden_text.status().message();
  const json golden = json::parse(*golden_text);
  std::map<std::string, json> bases;
  int checked = 0;
  for (const json& v : golden["variants"]) {
    const std::string base_name = v["base"];
    if (!bases.count(base_name)) {
      auto text = ReadFileToString(VocabDir(base_name) + "/tokenizer.json");
      ASSERT_TRUE(text.ok()) << text.status().message();
      bases[base_name] = json::parse(*text);
    }
    json patched = bases[base_name];
    for (const auto& [k, val] : v["patch"].items()) patched[k] = val;
    for (const json& a : v["added"]) patched["added_tokens"].push_back(a);
    auto t = Tokenizer::FromHfJson(patched.dump(), "", "", v["name"]);
    ASSERT_TRUE(t.ok()) << t.status().message();
    for (const json& c : v["cases"]) {
      auto ids = (*t)->Encode(c["text"].get<std::string>(), false);
      ASSERT_TRUE(ids.ok()) << ids.status().message();
      EXPECT_EQ(*ids, c["ids"].get<std::vector<int32_t>>())
          << v["name"] << " text " << Show(c["text"]);
      EXPECT_EQ(Show((*t)->Decode(c["ids"].get<std::vector<int32_t>>())), Show(c["decoded"]))
          << v["name"] << " text " << Show(c["text"]);
      ++checked;
    }
  }
  EXPECT_GT(checked, 50);
}

}  // namespace
}  // namespace meshlm
