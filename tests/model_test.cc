// End-to-end model tests: logits against the independent numpy reference, prefill against
// step-by-step decode, batching, and errors on broken model folders.
#include "model/model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/generate.h"
#include "test_util.h"

namespace meshlm {
namespace {

namespace fs = std::filesystem;

using testing::ModelsDir;
using testing::ReadF32;
using testing::ReadTokens;
using testing::RelErr;

std::unique_ptr<model::Model> Load(const std::string& dir, size_t ctx = 0) {
  model::LoadOptions opt;
  opt.max_context = ctx;
  auto m = model::Model::Load(dir, opt);
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? std::move(m).value() : nullptr;
}

// Logits for every token of `ids` in one prefill.
std::vector<float> PrefillLogits(model::Model& m, const std::vector<int32_t>& ids,
                                 ThreadPool& pool) {
  auto cache = m.NewCache();
  model::SeqStep step{cache.get(), ids.data(), ids.size(), true};
  EXPECT_TRUE(m.Validate({&step, 1}).ok());
  std::vector<float> logits(ids.size() * m.config().vocab_size);
  m.Forward({&step, 1}, logits.data(), pool);
  return logits;
}

struct Case {
  std::string shape;
  std::string dtype;
  double tolerance;
};
// Keeps CTest's discovered test names stable (the default prints raw bytes).
void PrintTo(const Case& c, std::ostream* os) { *os << c.shape << "-" << c.dtype; }

class ReferenceTest : public ::testing::TestWithParam<Case> {};

TEST_P(ReferenceTest, LogitsAndHiddenStatesMatchNumpy) {
  const Case& c = GetParam();
  const std::string dir = ModelsDir() + "/" + c.shape + "-" + c.dtype;
  ASSERT_TRUE(fs::exists(dir + "/ref_logits.bin")) << dir;
  auto m = Load(dir);
  ASSERT_NE(m, nullptr);
  const auto ids = ReadTokens(dir + "/ref_tokens.txt");
  const size_t T = ids.size(), V = m->config().vocab_size, D = m->config().hidden_size;
  for (size_t threads : {1, 3}) {
    ThreadPool pool(threads);
    std::vector<std::vector<float>> hidden;
    m->layer_observer = [&](size_t, const float* x, size_t n) {
      hidden.emplace_back(x, x + n * D);
    };
    const auto logits = PrefillLogits(*m, ids, pool);
    m->layer_observer = nullptr;
    const auto ref = ReadF32(dir + "/ref_logits.bin");
    ASSERT_EQ(ref.size(), T * V);
    EXPECT_LE(RelErr(logits.data(), ref.data(), T * V), c.tolerance) << "threads " << threads;
    ASSERT_EQ(hidden.size(), static_cast<size_t>(m->config().num_layers));
    for (size_t l = 0; l < hidden.size(); ++l) {
      const auto ref_h = ReadF32(dir + "/ref/hidden_" + std::to_string(l) + ".bin");
      ASSERT_EQ(ref_h.size(), T * D);
      EXPECT_LE(RelErr(hidden[l].data(), ref_h.data(), T * D), c.tolerance) << "layer " << l;
    }
  }
}

TEST_P(ReferenceTest, PrefillEqualsTokenByTokenDecode) {
  const Case& c = GetParam();
  auto m = Load(ModelsDir() + "/" + c.shape + "-" + c.dtype);
  ASSERT_NE(m, nullptr);
  const auto ids = ReadTokens(ModelsDir() + "/" + c.shape + "-" + c.dtype + "/ref_tokens.txt");
  const size_t V = m->config().vocab_size;
  ThreadPool pool(2);
  const auto full = PrefillLogits(*m, ids, pool);
  auto cache = m->NewCache();
  std::vector<float> step_logits(V);
  for (size_t t = 0; t < ids.size(); ++t) {
    model::SeqStep step{cache.get(), &ids[t], 1, false};
    m->Forward({&step, 1}, step_logits.data(), pool);
    EXPECT_LE(RelErr(step_logits.data(), full.data() + t * V, V), 1e-5) << "position " << t;
  }
}

TEST_P(ReferenceTest, BatchOfSequencesEqualsSeparateRuns) {
  const Case& c = GetParam();
  auto m = Load(ModelsDir() + "/" + c.shape + "-" + c.dtype);
  ASSERT_NE(m, nullptr);
  const size_t V = m->config().vocab_size;
  ThreadPool pool(2);
  const std::vector<int32_t> a = {5, 9, 77, 3, 12}, b = {100, 2, 55};
  const auto la = PrefillLogits(*m, a, pool), lb = PrefillLogits(*m, b, pool);
  // a's first 3 tokens as a prefill and b whole in one step, then a's last two tokens
  // decoded one at a time next to another sequence's decode step.
  auto ca = m->NewCache(), cb = m->NewCache();
  std::vector<model::SeqStep> steps = {{ca.get(), a.data(), 3, false},
                                       {cb.get(), b.data(), 3, true}};
  std::vector<float> out(4 * V);
  m->Forward(steps, out.data(), pool);
  EXPECT_LE(RelErr(out.data(), la.data() + 2 * V, V), 1e-5);
  EXPECT_LE(RelErr(out.data() + V, lb.data(), 3 * V), 1e-5);
  const int32_t extra = 8;
  for (size_t t = 3; t < 5; ++t) {
    steps = {{cb.get(), &extra, 1, false}, {ca.get(), &a[t], 1, false}};
    m->Forward(steps, out.data(), pool);
    EXPECT_LE(RelErr(out.data() + V, la.data() + t * V, V), 1e-5) << t;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ReferenceTest,
    ::testing::Values(Case{"tiny-llama", "f32", 1e-4}, Case{"tiny-llama2", "f32", 1e-4},
                      Case{"tiny-qwen3", "f32", 1e-4}, Case{"tiny-qwen2", "f32", 1e-4},
                      Case{"tiny-mistral", "f32", 1e-4}, Case{"tiny-llama", "bf16", 2e-2},
                      Case{"tiny-llama2", "bf16", 2e-2}, Case{"tiny-qwen3", "bf16", 2e-2},
                      Case{"tiny-qwen2", "bf16", 2e-2}, Case{"tiny-mistral", "bf16", 2e-2},
                      Case{"tiny-qwen3moe", "f32", 1e-4}, Case{"tiny-mixtral", "f32", 1e-4},
                      Case{"tiny-qwen3moe", "bf16", 2e-2}, Case{"tiny-mixtral", "bf16", 2e-2}),
    [](const auto& info) {
      std::string n = info.param.shape + "_" + info.param.dtype;
      std::replace(n.begin(), n.end(), '-', '_');
      return n;
    });

TEST(Model, ShardedFolderGivesIdenticalLogits) {
  auto one = Load(ModelsDir() + "/tiny-qwen3-f32");
  auto sharded = Load(ModelsDir() + "/tiny-qwen3-f32-sharded");
  ASSERT_NE(one, nullptr);
  ASSERT_NE(sharded, nullptr);
  ThreadPool pool(1);
  const std::vector<int32_t> ids = {1, 2, 3, 4, 5, 6};
  EXPECT_EQ(PrefillLogits(*one, ids, pool), PrefillLogits(*sharded, ids, pool));
}

TEST(Model, SeededGenerationIsDeterministic) {
  ThreadPool pool(2);
  auto ex = engine::Executor::CreateLocal(Load(ModelsDir() + "/tiny-llama-bf16"), pool);
  ASSERT_TRUE(ex.ok()) << ex.status().message();
  auto run = [&](uint64_t seed) {
    engine::GenerateOptions opt;
    opt.max_new_tokens = 20;
    opt.ignore_eos = true;
    opt.sampling.temperature = 1.5f;
    opt.sampling.top_p = 0.95f;
    opt.sampling.seed = seed;
    std::vector<int32_t> out;
    const std::vector<int32_t> prompt = {1, 2, 3};
    auto st = engine::Generate(**ex, prompt, opt, [&](int32_t t) {
      out.push_back(t);
      return true;
    });
    EXPECT_TRUE(st.ok());
    return out;
  };
  const auto a = run(7);
  EXPECT_EQ(a.size(), 20u);
  EXPECT_EQ(a, run(7));
  EXPECT_NE(a, run(8));
}

// Broken folders: a copy of a good model with one thing spoiled.
class BrokenModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("meshlm_broken_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::copy(ModelsDir() + "/tiny-qwen3-f32-sharded", dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  nlohmann::json ReadJson(const std::string& name) {
    std::ifstream in(dir_ / name);
    return nlohmann::json::parse(in);
  }
  void WriteJson(const std::string& name, const nlohmann::json& j) {
    std::ofstream(dir_ / name) << j.dump();
  }
  std::string LoadError(size_t ctx = 0) {
    model::LoadOptions opt;
    opt.max_context = ctx;
    auto m = model::Model::Load(dir_.string(), opt);
    EXPECT_FALSE(m.ok());
    return m.ok() ? "" : m.status().message();
  }
  std::string FirstShard() { return "model-00001-of-00003.safetensors"; }
  fs::path dir_;
};

TEST_F(BrokenModelTest, MissingFolderOrConfig) {
  fs::remove(dir_ / "config.json");
  EXPECT_NE(LoadError().find("config.json' not found"), std::string::npos);
  auto m = model::Model::Load("/nonexistent/model", {});
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("/nonexistent/model"), std::string::npos);
}

TEST_F(BrokenModelTest, UnsupportedArchitecture) {
  auto j = ReadJson("config.json");
  j["architectures"] = {"FalconForCausalLM"};
  WriteJson("config.json", j);
  EXPECT_NE(LoadError().find("architecture 'FalconForCausalLM' unsupported"), std::string::npos);
}

TEST_F(BrokenModelTest, ShapeDisagreesWithConfig) {
  auto j = ReadJson("config.json");
  j["intermediate_size"] = j["intermediate_size"].get<int>() + 8;
  WriteJson("config.json", j);
  const std::string e = LoadError();
  EXPECT_NE(e.find("mlp.gate_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("config.json implies"), std::string::npos) << e;
}

TEST_F(BrokenModelTest, IndexNamesMissingShard) {
  fs::remove(dir_ / "model-00002-of-00003.safetensors");
  const std::string e = LoadError();
  EXPECT_NE(e.find("model-00002-of-00003.safetensors"), std::string::npos) << e;
}

TEST_F(BrokenModelTest, TruncatedShard) {
  const fs::path shard = dir_ / FirstShard();
  fs::resize_file(shard, fs::file_size(shard) - 100);
  const std::string e = LoadError();
  EXPECT_NE(e.find(FirstShard()), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
}

TEST_F(BrokenModelTest, CorruptHeader) {
  const fs::path shard = dir_ / FirstShard();
  std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(9);
  f.write("\xff\xfe{{", 4);
  f.close();
  const std::string e = LoadError();
  EXPECT_NE(e.find("not valid JSON"), std::string::npos) << e;
}

TEST_F(BrokenModelTest, UnsupportedDtype) {
  // Rewrite one shard's header so a tensor claims I32 (same byte size as F32).
  const fs::path shard = dir_ / FirstShard();
  std::ifstream in(shard, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  in.close();
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  const std::string header = bytes.substr(8, n);
  const size_t at = header.find("\"F32\"");
  ASSERT_NE(at, std::string::npos);
  std::string changed = header;
  changed.replace(at, 5, "\"I32\"");
  bytes.replace(8, n, changed);
  std::ofstream(shard, std::ios::binary) << bytes;
  const std::string e = LoadError();
  EXPECT_NE(e.find("dtype I32"), std::string::npos) << e;
}

TEST_F(BrokenModelTest, ContextBeyondTheModel) {
  const auto j = ReadJson("config.json");
  const size_t max_ctx = j["max_position_embeddings"].get<size_t>();
  const std::string e = LoadError(max_ctx + 1);
  EXPECT_NE(e.find(std::to_string(max_ctx + 1)), std::string::npos) << e;
  EXPECT_NE(e.find("max_position_embeddings"), std::string::npos) << e;
}

TEST(Model, PromptBeyondContextIsAnError) {
  ThreadPool pool(1);
  auto ex = engine::Executor::CreateLocal(Load(ModelsDir() + "/tiny-llama-f32", 8), pool);
  ASSERT_TRUE(ex.ok());
  std::vector<int32_t> prompt(9, 1);
  auto st = engine::Generate(**ex, prompt, {}, [](int32_t) { return true; });
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().message().find("context of 8"), std::string::npos);
  std::vector<int32_t> bad = {1, 100000};
  st = engine::Generate(**ex, bad, {}, [](int32_t) { return true; });
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().message().find("token id 100000"), std::string::npos);
}

}  // namespace
}  // namespace meshlm
