// Unit tests of the UTF-8 helpers, the regex wrapper and malformed tokenizer files.
#include "tokenizer/unicode.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "tokenizer/regex.h"
#include "tokenizer/tokenizer.h"

namespace meshlm::tok {
namespace {

TEST(Utf8Test, LossyReplacesMaximalSubparts) {
  std::string out;
  // Rust's from_utf8_lossy: "\xF0\x9F\x98" (truncated 4-byte) is one U+FFFD; "\xFF" one.
  AppendUtf8Lossy(
      "a\xF0\x9F\x98"
      "b\xFF"
      "c\xED\xA0\x80",
      &out);
  EXPECT_EQ(out,
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD"
            "c\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(Utf8Test, FindsInvalidAndIncomplete) {
  EXPECT_EQ(FindInvalidUtf8("héllo"), std::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("h\xC3"), 1u);
  EXPECT_EQ(FindInvalidUtf8("\xC0\x80"), 0u);  // overlong
  EXPECT_EQ(IncompleteUtf8Tail("ab\xF0\x9F"), 2u);
  EXPECT_EQ(IncompleteUtf8Tail("ab\xF0\x9F\xA6\x99"), 0u);
  EXPECT_EQ(IncompleteUtf8Tail("ab"), 0u);
}

TEST(Utf8Test, ByteLevelAlphabetRoundTrips) {
  for (int b = 0; b < 256; ++b) EXPECT_EQ(UnicodeToByte(ByteToUnicode(b)), b);
  EXPECT_EQ(ByteToUnicode(' '), U'Ġ');
  EXPECT_EQ(ByteToUnicode('\n'), U'Ċ');
  EXPECT_EQ(ByteToUnicode('A'), U'A');
}

TEST(Utf8Test, NormalizationUsesIcu) {
  auto nfc = Normalize("e\xCC\x81", NormalForm::kNfc);
  ASSERT_TRUE(nfc.ok());
  EXPECT_EQ(*nfc, "é");
  auto nfkc = Normalize("ＡＢ①ﬁ", NormalForm::kNfkc);
  ASSERT_TRUE(nfkc.ok());
  EXPECT_EQ(*nfkc, "AB1fi");
}

TEST(RegexTest, UnicodeClassesAndLookahead) {
  auto re = Regex::Compile(R"((?i:'s|'t)|\p{L}+|\p{N}{1,3}|\s+(?!\S)|\s+)");
  ASSERT_TRUE(re.ok()) << re.status().message();
  std::vector<std::pair<size_t, size_t>> m;
  const std::string text = "IT'S héllo 12345   x";
  (*re)->FindAll(text, &m);
  std::vector<std::string> parts;
  for (auto [b, e] : m) parts.push_back(text.substr(b, e - b));
  EXPECT_EQ(parts,
            (std::vector<std::string>{"IT", "'S", " ", "héllo", " ", "123", "45", "  ", " ", "x"}));
}

TEST(RegexTest, NextLineIsWhitespaceAsInOniguruma) {
  auto re = Regex::Compile(R"(\s+|[^\s]+)");
  ASSERT_TRUE(re.ok());
  std::vector<std::pair<size_t, size_t>> m;
  (*re)->FindAll(
      "a\xC2\x85"
      "b",
      &m);
  EXPECT_EQ(m.size(), 3u);
}

TEST(RegexTest, BadPatternIsAnError) {
  auto re = Regex::Compile("(unclosed");
  ASSERT_FALSE(re.ok());
  EXPECT_NE(re.status().message().find("(unclosed"), std::string::npos);
}

Status LoadError(const std::string& tokenizer_json) {
  auto t = Tokenizer::FromHfJson(tokenizer_json, "", "", "test");
  return t.ok() ? OkStatus() : t.status();
}

TEST(MalformedTest, ClearErrors) {
  struct Case {
    std::string json, expect;
  };
  const std::vector<Case> cases = {
      {"", "not valid JSON"},
      {"[1]", "JSON object"},
      {"{}", "'model'"},
      {R"({"model":{"type":"Unigram","vocab":[]}})", "Unigram"},
      {R"({"model":{"type":"BPE","vocab":{"a":"x"}}})", "vocab['a']"},
      {R"({"model":{"type":"BPE","vocab":{"a":0,"b":0}}})", "id 0 given to both"},
      {R"({"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":["a b c"]}})", "merges[0]"},
      {R"({"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":["a b"]}})", "'ab' is not in"},
      {R"({"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":[["a","z"]]}})", "'z'"},
      {R"({"model":{"type":"BPE","vocab":{"a":0}},"normalizer":{"type":"Magic"}})", "Magic"},
      {R"({"model":{"type":"BPE","vocab":{"a":0}},"pre_tokenizer":{"type":"Split",
          "pattern":{"Regex":"(["},"behavior":"Isolated"}})",
       "does not compile"},
      {R"({"model":{"type":"BPE","vocab":{"a":0}},"pre_tokenizer":{"type":"Split",
          "pattern":{"Regex":"a"},"behavior":"Sideways"}})",
       "Sideways"},
      {R"({"model":{"type":"BPE","vocab":{"a":0}},"decoder":{"type":"Sequence"}})", "decoders"},
      {R"({"model":{"type":"BPE","vocab":{"a":0}},"added_tokens":[{"content":"x"}]})",
       "added_tokens[0]"},
      {R"({"model":{"type":"BPE","vocab":{"a":0}},"pre_tokenizer":{"type":"ByteLevel",
          "use_regex":"yes"}})",
       "malformed field"},
      {R"({"model":{"type":"BPE","vocab":{"a":0},"unk_token":"<unk>"}})", "unk_token"},
  };
  for (const Case& c : cases) {
    const Status s = LoadError(c.json);
    ASSERT_FALSE(s.ok()) << c.json;
    EXPECT_NE(s.message().find(c.expect), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("[tokenizer]"), std::string::npos) << s.message();
  }
}

TEST(MalformedTest, MinimalTokenizerWorks) {
  auto t = Tokenizer::FromHfJson(
      R"({"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":[["a","b"]]}})", "", "",
      "test");
  ASSERT_TRUE(t.ok()) << t.status().message();
  auto ids = (*t)->Encode("abab", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<int32_t>{2, 2}));
}

}  // namespace
}  // namespace meshlm::tok

namespace meshlm {
namespace {

// A tokenizer from parts, as a GGUF loader would build one (no tokenizer.json).
TEST(PartsTest, ByteLevelTokenizerFromParts) {
  TokenizerParts p;
  // Byte-level alphabet for "hello world": Ġ is the space.
  p.vocab = {"h",  "e",    "l",     "o",  "Ġ",  "w",    "r",      "d",  "he",
             "ll", "hell", "hello", "Ġw", "or", "Ġwor", "Ġworld", "ld", "<|end|>"};
  p.merges = {{"h", "e"}, {"l", "l"},   {"he", "ll"}, {"hell", "o"}, {"Ġ", "w"},
              {"o", "r"}, {"Ġw", "or"}, {"l", "d"},   {"Ġwor", "ld"}};
  p.added_tokens.push_back({17, "<|end|>", true, false, false, false, false});
  p.pre_tokenizer = nlohmann::json::parse(
      R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": true})");
  p.decoder = nlohmann::json::parse(R"({"type": "ByteLevel"})");
  p.eos_token = "<|end|>";
  auto t = Tokenizer::FromParts(std::move(p));
  ASSERT_TRUE(t.ok()) << t.status().message();
  auto ids = (*t)->Encode("hello world<|end|>", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<int32_t>{11, 15, 17}));
  EXPECT_EQ((*t)->Decode(*ids), "hello world<|end|>");
  EXPECT_EQ((*t)->Decode(*ids, /*skip_special=*/true), "hello world");
  EXPECT_EQ((*t)->eos_id(), 17);
  EXPECT_EQ((*t)->stop_ids(), (std::vector<int32_t>{17}));
}

}  // namespace
}  // namespace meshlm

namespace meshlm {
namespace {

// A small tokenizer.json that uses every supported stage, as the seed of the fuzz test.
constexpr const char* kFuzzSeed = R"json({
  "added_tokens": [{"id": 9, "content": "<x>", "special": true, "lstrip": true, "rstrip": false,
                    "single_word": false, "normalized": false}],
  "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Prepend",
      "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
      {"type": "Strip", "strip_left": false, "strip_right": true}]},
  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Digits",
      "individual_digits": true}, {"type": "Split", "pattern": {"Regex": "\\p{L}+|\\s+(?!\\S)"},
      "behavior": "Isolated", "invert": false}, {"type": "Metaspace", "replacement": "▁",
      "prepend_scheme": "first", "split": true}]},
  "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<x>"}},
      {"Sequence": {"id": "A"}}], "special_tokens": {"<x>": {"id": "<x>", "ids": [9]}}},
  "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"},
      "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip",
      "content": " ", "start": 1, "stop": 0}]},
  "model": {"type": "BPE", "byte_fallback": true, "fuse_unk": true, "unk_token": "<unk>",
      "vocab": {"<unk>": 0, "a": 1, "b": 2, "ab": 3, "▁": 4, "▁ab": 5, "<0x41>": 6, "1": 7,
                "c": 8, "<x>": 9},
      "merges": ["a b", ["▁", "ab"]]}
})json";

TEST(LoaderFuzzTest, MutatedFilesNeverCrash) {
  auto seed = Tokenizer::FromHfJson(kFuzzSeed, "", "", "seed");
  ASSERT_TRUE(seed.ok()) << seed.status().message();
  auto ids = (*seed)->Encode("ab <x>  A1 ab", true);
  ASSERT_TRUE(ids.ok()) << ids.status().message();
  EXPECT_EQ(ids->front(), 9);
  std::mt19937 rng(99);
  const std::string base = kFuzzSeed;
  int loaded = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    std::string s = base;
    for (int e = 0; e < 1 + static_cast<int>(rng() % 3); ++e) {
      const size_t pos = rng() % s.size();
      switch (rng() % 3) {
        case 0:
          s.erase(pos, 1 + rng() % 6);
          break;
        case 1:
          s.insert(pos, 1, "{}[]\",:0-9aé\\"[rng() % 15]);
          break;
        default:
          s[pos] = static_cast<char>(rng() % 256);
      }
    }
    auto t = Tokenizer::FromHfJson(s, "", "", "fuzz");
    if (!t.ok()) continue;
    ++loaded;
    auto r = (*t)->Encode("ab <x>  A1 ab c\xC3\xA9", true);
    if (r.ok()) (*t)->Decode(*r);
  }
  EXPECT_GT(loaded, 0);
}

TEST(TokenizerThreadsTest, ConcurrentEncodeGivesTheSameIds) {
  auto t = Tokenizer::FromHfJson(kFuzzSeed, "", "", "seed");
  ASSERT_TRUE(t.ok());
  const std::string text = "ab ab 123 abc <x> A ab";
  const auto expected = (*t)->Encode(text, false);
  ASSERT_TRUE(expected.ok());
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        auto ids = (*t)->Encode(text + std::string(i % 7, 'a'), false);
        if (i % 7 == 0 && (!ids.ok() || *ids != expected.value())) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace meshlm
