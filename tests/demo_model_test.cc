// The bundled demo model: it loads, its tokenizer round-trips text, generation under a
// seed is deterministic, and greedy continuations are English-like.
#include <gtest/gtest.h>

#include <cctype>
#include <set>
#include <sstream>

#include "engine/generate.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace meshlm {
namespace {

const std::string kDir = std::string(MESHLM_TEST_SOURCE_DIR) + "/models/meshlm-demo-6m";

std::string Complete(engine::Executor& ex, const Tokenizer& tok, const std::string& prompt,
                     float temperature, uint64_t seed) {
  auto ids = tok.Encode(prompt, true);
  EXPECT_TRUE(ids.ok());
  engine::GenerateOptions opt;
  opt.max_new_tokens = 40;
  opt.eos_ids = tok.stop_ids();
  opt.sampling.temperature = temperature;
  opt.sampling.top_p = 0.95f;
  opt.sampling.seed = seed;
  std::vector<int32_t> out;
  auto st = engine::Generate(ex, *ids, opt, [&](int32_t t) {
    out.push_back(t);
    return true;
  });
  EXPECT_TRUE(st.ok()) << st.status().message();
  return tok.Decode(out, true);
}

class DemoModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto t = Tokenizer::FromHfDir(kDir);
    ASSERT_TRUE(t.ok()) << t.status().message();
    tok_ = std::move(t).value().release();
    pool_ = new ThreadPool(2);
    auto m = model::Model::Load(kDir, {});
    ASSERT_TRUE(m.ok()) << m.status().message();
    auto ex = engine::Executor::CreateLocal(std::move(m).value(), *pool_);
    ASSERT_TRUE(ex.ok());
    ex_ = std::move(ex).value().release();
  }
  static Tokenizer* tok_;
  static ThreadPool* pool_;
  static engine::Executor* ex_;
};
Tokenizer* DemoModel::tok_ = nullptr;
ThreadPool* DemoModel::pool_ = nullptr;
engine::Executor* DemoModel::ex_ = nullptr;

TEST_F(DemoModel, TokenizerRoundTripsText) {
  for (const std::string text :
       {"The meaning of life is to be found.", "  Tabs\tand\nnew lines, numbers 1234567!",
        "Caf\xc3\xa9 na\xc3\xafve \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80", ""}) {
    auto ids = tok_->Encode(text, false);
    ASSERT_TRUE(ids.ok());
    EXPECT_EQ(tok_->Decode(*ids), text);
  }
  EXPECT_FALSE(tok_->chat_template().empty());
}

TEST_F(DemoModel, SeededSamplingIsDeterministic) {
  const std::string a = Complete(*ex_, *tok_, "A programmer", 0.8f, 11);
  EXPECT_EQ(a, Complete(*ex_, *tok_, "A programmer", 0.8f, 11));
  EXPECT_NE(a, Complete(*ex_, *tok_, "A programmer", 0.8f, 12));
}

// Most words of the continuations are common English words or plain alphabetic words:
// random weights give byte soup that fails this.
TEST_F(DemoModel, GreedyContinuationsAreEnglishLike) {
  const std::set<std::string> common = {"the",  "a",   "is", "to",   "of",  "and", "in",   "you",
                                        "that", "it",  "be", "for",  "not", "are", "with", "he",
                                        "as",   "was", "on", "have", "i",   "he",  "his",  "what"};
  size_t words = 0, alphabetic = 0, function_words = 0;
  for (const std::string prompt :
       {"The meaning of life is", "A programmer", "Love is", "When the sun", "Never trust"}) {
    std::istringstream in(Complete(*ex_, *tok_, prompt, 0.0f, 0));
    std::string w;
    while (in >> w) {
      std::string lower;
      for (char c : w) {
        if (std::isalpha(static_cast<unsigned char>(c))) lower += std::tolower(c);
      }
      ++words;
      alphabetic += lower.size() * 2 >= w.size();
      function_words += common.count(lower);
    }
  }
  ASSERT_GT(words, 20u);
  EXPECT_GE(alphabetic * 10, words * 8) << alphabetic << " of " << words;
  EXPECT_GE(function_words * 10, words * 2) << function_words << " of " << words;
}

}  // namespace
}  // namespace meshlm
