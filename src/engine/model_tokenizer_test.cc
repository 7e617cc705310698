// GGUF tokenizers against Hugging Face's ids. Each real vocabulary (tokenizer.json from
// npm) is turned into the tokenizer.ggml.* metadata a GGUF converter writes: the token list,
// token types, "a b" merges (byte-level kind) or SentencePiece scores (llama kind), the
// special ids, and the pre-tokenizer's GGUF name. Only that metadata reaches meshlm, which
// must rebuild the pipeline and give the ids of tests/data/tokenizer/*.json (made by
// Hugging Face's library).
#include "engine/model_tokenizer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <regex>

#include "base/mapped_file.h"

namespace meshlm::engine {
namespace {

using nlohmann::json;

std::string VocabDir(const std::string& name) {
  const char* v = std::getenv("MESHLM_TOKENIZER_VOCABS");
  return (v && *v ? std::string(v) : std::string(MESHLM_TEST_BUILD_DIR) + "/tokenizer-vocabs") +
         "/" + name;
}

json ReadJson(const std::string& path) {
  auto text = ReadFileToString(path);
  EXPECT_TRUE(text.ok()) << text.status().message()
                         << " (run through ctest: the tokenizer_fetch_vocabs test fetches it)";
  return text.ok() ? json::parse(*text) : json();
}

std::string TokenContent(const json& t) {
  return t.is_string() ? t.get<std::string>() : t.is_object() ? t.value("content", "") : "";
}

// What a GGUF converter stores for the Hugging Face tokenizer in `dir`.
model::GgufTokenizer GgufMetadataOf(const std::string& dir, const std::string& pre) {
  const json tj = ReadJson(dir + "/tokenizer.json");
  const json cfg = ReadJson(dir + "/tokenizer_config.json");
  const json& m = tj["model"];
  model::GgufTokenizer g;
  const bool spm = m.value("byte_fallback", false);
  g.model = spm ? "llama" : "gpt2";
  g.pre = spm ? "default" : pre;
  size_t n = m["vocab"].size();
  for (const json& a : tj["added_tokens"]) n = std::max<size_t>(n, a["id"].get<size_t>() + 1);
  g.tokens.assign(n, "");
  g.token_types.assign(n, 1);
  for (const auto& [tok, id] : m["vocab"].items()) g.tokens[id.get<size_t>()] = tok;
  const std::regex byte_token("<0x[0-9A-F]{2}>");
  if (spm) {
    for (size_t i = 0; i < n; ++i) {
      if (std::regex_match(g.tokens[i], byte_token)) g.token_types[i] = 6;
    }
  }
  for (const json& a : tj["added_tokens"]) {
    const size_t id = a["id"];
    g.tokens[id] = a["content"];
    g.token_types[id] = a.value("special", false) ? 3 : 4;
  }
  // Merges as "left right" strings; for SentencePiece, scores that order the joined
  // pieces as the merge list does (earlier merge, higher score).
  std::vector<std::string> merges;
  for (const json& mg : m["merges"]) {
    merges.push_back(mg.is_string() ? mg.get<std::string>()
                                    : mg[0].get<std::string>() + " " + mg[1].get<std::string>());
  }
  if (spm) {
    std::map<std::string, size_t> ids;
    for (size_t i = 0; i < n; ++i) ids.emplace(g.tokens[i], i);
    g.scores.assign(n, -1e9f);
    for (size_t r = merges.size(); r-- > 0;) {
      const size_t sp = merges[r].find(' ', 1);
      auto it = ids.find(merges[r].substr(0, sp) + merges[r].substr(sp + 1));
      if (it != ids.end()) g.scores[it->second] = -static_cast<float>(r);
    }
    const std::string unk = m.value("unk_token", "");
    for (size_t i = 0; i < n; ++i) {
      if (!unk.empty() && g.tokens[i] == unk) {
        g.unk_id = static_cast<int64_t>(i);
        g.token_types[i] = 2;
      }
    }
    g.add_space_prefix = tj["normalizer"].dump().find("Prepend") != std::string::npos;
  } else {
    g.merges = merges;
  }
  auto id_of = [&](const std::string& t) -> int64_t {
    for (size_t i = 0; i < n; ++i) {
      if (g.tokens[i] == t) return static_cast<int64_t>(i);
    }
    return -1;
  };
  if (cfg.contains("bos_token")) g.bos_id = id_of(TokenContent(cfg["bos_token"]));
  if (cfg.contains("eos_token")) g.eos_id = id_of(TokenContent(cfg["eos_token"]));
  // Hugging Face adds BOS when its post-processor template starts with a special token.
  json pp = tj["post_processor"];
  if (pp.is_object() && pp.value("type", "") == "Sequence") {
    json found;
    for (const json& q : pp["processors"]) {
      if (q.value("type", "") == "TemplateProcessing") found = q;
    }
    pp = found;
  }
  g.add_bos = pp.is_object() && pp.value("type", "") == "TemplateProcessing" &&
              pp["single"][0].contains("SpecialToken");
  if (g.add_bos) {
    g.bos_id = id_of(pp["single"][0]["SpecialToken"]["id"].get<std::string>());
  }
  g.chat_template = cfg.value("chat_template", "");
  return g;
}

struct Case {
  const char* vocab;
  const char* pre;  // the GGUF pre-tokenizer name of this family
};

class GgufTokenizerTest : public testing::TestWithParam<Case> {};

TEST_P(GgufTokenizerTest, IdsEqualHuggingFace) {
  const Case c = GetParam();
  const model::GgufTokenizer g = GgufMetadataOf(VocabDir(c.vocab), c.pre);
  ASSERT_FALSE(g.tokens.empty());
  auto parts = TokenizerPartsFromGguf(g);
  ASSERT_TRUE(parts.ok()) << parts.status().message();
  auto tok = Tokenizer::FromParts(std::move(parts).value());
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  const json golden =
      ReadJson(std::string(MESHLM_TEST_SOURCE_DIR) + "/tests/data/tokenizer/" + c.vocab + ".json");
  ASSERT_GT(golden["cases"].size(), 10u);
  for (const json& k : golden["cases"]) {
    const std::string text = k["text"];
    auto plain = (*tok)->Encode(text, false);
    ASSERT_TRUE(plain.ok()) << plain.status().message();
    EXPECT_EQ(*plain, k["ids"].get<std::vector<int32_t>>()) << c.vocab << ": " << json(text);
    auto special = (*tok)->Encode(text, true);
    ASSERT_TRUE(special.ok()) << special.status().message();
    EXPECT_EQ(*special, k["ids_special"].get<std::vector<int32_t>>())
        << c.vocab << ": " << json(text);
    EXPECT_EQ((*tok)->Decode(k["ids"].get<std::vector<int32_t>>()), k["decoded"].get<std::string>())
        << c.vocab;
    EXPECT_EQ((*tok)->Decode(k["ids_special"].get<std::vector<int32_t>>(), true),
              k["decoded_skip"].get<std::string>())
        << c.vocab;
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, GgufTokenizerTest,
                         testing::Values(Case{"qwen3", "qwen2"}, Case{"qwen2_5", "qwen2"},
                                         Case{"llama3", "llama-bpe"}, Case{"llama3_2", "llama-bpe"},
                                         Case{"mistral_nemo", "tekken"}, Case{"gpt2", "gpt-2"},
                                         Case{"deepseek_v3", "deepseek-v3"}, Case{"llama2", ""},
                                         Case{"gemma3", ""}),
                         [](const testing::TestParamInfo<Case>& i) {
                           return std::string(i.param.vocab);
                         });

model::GgufTokenizer Tiny(const std::string& kind, const std::string& pre) {
  model::GgufTokenizer g;
  g.model = kind;
  g.pre = pre;
  g.tokens = {"a", "b", "ab"};
  g.merges = {"a b"};
  return g;
}

TEST(GgufTokenizer, UnknownKindAndPreTokenizerAreNamed) {
  auto kind = TokenizerPartsFromGguf(Tiny("bert", "default"));
  ASSERT_FALSE(kind.ok());
  EXPECT_NE(kind.status().message().find("tokenizer.ggml.model 'bert'"), std::string::npos)
      << kind.status().message();
  auto pre = TokenizerPartsFromGguf(Tiny("gpt2", "mystery-pre"));
  ASSERT_FALSE(pre.ok());
  EXPECT_NE(pre.status().message().find("tokenizer.ggml.pre 'mystery-pre'"), std::string::npos)
      << pre.status().message();
  EXPECT_NE(pre.status().message().find("llama-bpe"), std::string::npos);
}

TEST(GgufTokenizer, BadMergesAndMissingBosAreErrors) {
  model::GgufTokenizer g = Tiny("gpt2", "default");
  g.merges = {"ab"};
  auto merges = TokenizerPartsFromGguf(g);
  ASSERT_FALSE(merges.ok());
  EXPECT_NE(merges.status().message().find("merges[0]"), std::string::npos);
  g = Tiny("gpt2", "default");
  g.add_bos = true;
  EXPECT_FALSE(TokenizerPartsFromGguf(g).ok());
  g = Tiny("gpt2", "default");
  g.token_types = {1};
  EXPECT_FALSE(TokenizerPartsFromGguf(g).ok());
}

}  // namespace
}  // namespace meshlm::engine
