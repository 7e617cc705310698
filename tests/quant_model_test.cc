// End-to-end tests of quantized models: GGUF files (from meshlm's writer and from llama.cpp's
// gguf-py) and MLX-quantized folders give the logits of the numpy reference run on the values
// they hold; broken files give errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/mapped_file.h"
#include "engine/model_tokenizer.h"
#include "kernels/quant_matmul.h"
#include "model/model.h"

namespace meshlm {
namespace {

namespace fs = std::filesystem;

std::string Dir() {
  const char* b = std::getenv("MESHLM_BUILD_DIR");
  return std::string(b ? b : ".") + "/quantmodels";
}

std::vector<float> ReadF32(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  EXPECT_TRUE(in.good()) << path;
  const size_t n = static_cast<size_t>(in.tellg()) / 4;
  std::vector<float> v(n);
  in.seekg(0);
  in.read(reinterpret_cast<char*>(v.data()), n * 4);
  return v;
}

std::vector<int32_t> ReadTokens(const std::string& path) {
  std::ifstream in(path);
  std::vector<int32_t> ids;
  std::string item;
  while (std::getline(in, item, ',')) ids.push_back(std::stoi(item));
  return ids;
}

// max |a - b| / max |b|.
double RelErr(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(double(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return diff / std::max(scale, 1e-30);
}

struct Case {
  std::string name;  // file or folder under Dir(), and the prefix of its reference files
  bool four_bit;     // weights coarse enough that the unquantized logits differ clearly
};

class QuantModelTest : public ::testing::TestWithParam<Case> {};

// The int8 rounding of activations costs up to ~0.5% per matmul; 2 layers and the LM head
// stayed within 1.3% of the largest logit on every case here.
constexpr double kTolerance = 3e-2;

TEST_P(QuantModelTest, LogitsMatchReferenceOnStoredValues) {
  const Case& c = GetParam();
  const std::string base = Dir() + "/" + c.name;
  const std::string path = fs::exists(base + ".gguf") ? base + ".gguf" : base;
  auto loaded = model::Model::Load(path, {});
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  model::Model& m = **loaded;
  const auto ids = ReadTokens(base + ".tokens.txt");
  const auto ref = ReadF32(base + ".ref_logits.bin");
  const auto orig = ReadF32(base + ".orig_logits.bin");
  const size_t V = m.config().vocab_size;
  ASSERT_EQ(ref.size(), ids.size() * V);
  // Q8_0, Q4_0, Q4_K, Q6_K and MLX 4-bit are repacked when the x86 kernels (VNNI or AVX2)
  // are in use; the portable path below then reads the packed bytes too.
  const bool packable =
      c.name.find("q8_0") != std::string::npos || c.name.find("q4_0") != std::string::npos ||
      c.name.find("mlx4") != std::string::npos || c.name.find("q4_k") != std::string::npos ||
      c.name.find("q6_k") != std::string::npos;
  EXPECT_EQ(m.packed_bytes() > 0, packable && kernels::PackedLayoutHelps()) << c.name;
  for (const std::string& qpath : kernels::QuantPaths()) {
    ASSERT_TRUE(kernels::SetQuantPath(qpath));
    for (size_t threads : {1, 2}) {
      SCOPED_TRACE(::testing::Message() << c.name << " path " << qpath << " threads " << threads);
      ThreadPool pool(threads);
      // Prefill of every token, then the same tokens decoded one at a time.
      auto cache = m.NewCache();
      model::SeqStep step{cache.get(), ids.data(), ids.size(), true};
      ASSERT_TRUE(m.Validate({&step, 1}).ok());
      std::vector<float> logits(ids.size() * V);
      m.Forward({&step, 1}, logits.data(), pool);
      const double err = RelErr(logits, ref);
      EXPECT_LT(err, kTolerance);
      auto cache2 = m.NewCache();
      std::vector<float> last(V);
      for (size_t i = 0; i < ids.size(); ++i) {
        model::SeqStep one{cache2.get(), ids.data() + i, 1, false};
        m.Forward({&one, 1}, last.data(), pool);
      }
      const std::vector<float> ref_last(ref.end() - V, ref.end());
      EXPECT_LT(RelErr(last, ref_last), kTolerance);
      if (c.four_bit) {
        // The check can tell the stored values from the unquantized ones.
        EXPECT_GT(RelErr(logits, orig), 2 * err) << "error against the unquantized model";
      }
      if (qpath == kernels::QuantPaths().front() && threads == 1) {
        std::printf("%-22s max error %.4f of the largest logit (unquantized model: %.4f)\n",
                    c.name.c_str(), err, RelErr(logits, orig));
      }
    }
  }
  kernels::SetQuantPath("");
}

INSTANTIATE_TEST_SUITE_P(
    Formats, QuantModelTest,
    ::testing::Values(Case{"tiny-llama-q8_0", false}, Case{"tiny-qwen2-q4_0", true},
                      Case{"tiny-qwen3-f16", false}, Case{"tiny-mistral-bf16", false},
                      Case{"small-llama-q4_k_m", true}, Case{"small-qwen3-q6_k", false},
                      Case{"small-qwen3-q4_0", true}, Case{"tiny-qwen3-mlx4", true},
                      Case{"tiny-llama-mlx8", false}, Case{"small-qwen3-mlx4", true},
                      Case{"small-llama-mlx8", false}, Case{"tiny-qwen3moe-q8_0", false},
                      Case{"tiny-qwen3moe-bf16", false}, Case{"tiny-mixtral-q4_0", true},
                      Case{"small-qwen3moe-q4_k", true}, Case{"small-mixtral-q6_k", false},
                      Case{"small-qwen3moe-f16", false}, Case{"tiny-qwen3moe-mlx4", true},
                      Case{"small-mixtral-mlx8", false},
                      // Written by llama.cpp's gguf-py, not by meshlm's tools.
                      Case{"tiny-qwen3moe-gguf_py-q8_0", false},
                      Case{"tiny-mixtral-gguf_py-q4_0", true},
                      Case{"tiny-llama-gguf_py-f16", false}),
    [](const auto& info) {
      std::string n = info.param.name;
      for (char& ch : n) ch = std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
      return n;
    });

TEST(QuantModel, GgufTokenizerMetadataAndConfig) {
  auto m = model::Model::Load(Dir() + "/tiny-llama-q8_0.gguf", {});
  ASSERT_TRUE(m.ok()) << m.status().message();
  const model::GgufTokenizer* tok = (*m)->gguf_tokenizer();
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->model, "gpt2");
  EXPECT_EQ(tok->tokens.size(), static_cast<size_t>((*m)->config().vocab_size));
  EXPECT_EQ(tok->bos_id, 1);
  EXPECT_FALSE(tok->chat_template.empty());
  const model::ModelConfig& c = (*m)->config();
  EXPECT_EQ(c.arch, model::Arch::kLlama);
  EXPECT_EQ(c.num_heads_kv, 2);
  EXPECT_EQ(c.eos_token_ids, std::vector<int32_t>{2});
  EXPECT_FALSE(c.tie_word_embeddings);
  auto folder = model::Model::Load(Dir() + "/tiny-qwen3-mlx4", {});
  ASSERT_TRUE(folder.ok());
  EXPECT_EQ((*folder)->gguf_tokenizer(), nullptr);
  auto cfg = model::LoadModelConfigOfPath(Dir() + "/small-qwen3-q6_k.gguf");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->hidden_size, 256);
  EXPECT_TRUE(cfg->qk_norm);
  EXPECT_TRUE(cfg->tie_word_embeddings);
}

// Files written by llama.cpp's gguf-py (tools/convert_with_gguf_py.py) from folders with a
// real tokenizer.json: meshlm reads the converter's metadata as the config.json it came
// from, and the tokenizer it rebuilds from tokenizer.ggml.* gives the ids of that
// tokenizer.json.
TEST(QuantModel, GgufPyTokenizerAndConfig) {
  struct File {
    std::string name, vocab_dir, pre;
    model::Arch arch;
    int64_t experts, experts_per_tok, expert_width, vocab, bos, eos;
  };
  const std::string demo = std::string(MESHLM_TEST_SOURCE_DIR) + "/models/meshlm-demo-6m";
  const File files[] = {
      // Qwen3's tokenizer_config.json names no bos token: config.json's id 1 is taken.
      {"tiny-qwen3moe-gguf_py-q8_0", Dir() + "/vocabs/qwen3", "qwen2", model::Arch::kQwen3Moe, 12,
       4, 32, 151936, 1, 151645},
      {"tiny-mixtral-gguf_py-q4_0", demo, "gpt-2", model::Arch::kMixtral, 4, 2, 96, 4096, 4093,
       4095},
      {"tiny-llama-gguf_py-f16", demo, "gpt-2", model::Arch::kLlama, 0, 0, 0, 4096, 4093, 4095},
  };
  const std::string texts[] = {
      "Hello, w\u00f6rld! 12345 don't   stop\n\n\ttabs ",
      "<|im_start|>user\nWhat is 7*6?<|im_end|>\n<|im_start|>assistant\n",
      "<think>\u65e5\u672c\u8a9e</think> \U0001F999\U0001F999 3.14159 'RE you sure?"};
  for (const File& f : files) {
    SCOPED_TRACE(f.name);
    const std::string path = Dir() + "/" + f.name + ".gguf";
    auto m = model::Model::Load(path, {});
    ASSERT_TRUE(m.ok()) << m.status().message();
    const model::ModelConfig& c = (*m)->config();
    EXPECT_EQ(c.arch, f.arch);
    EXPECT_EQ(c.hidden_size, 64);
    EXPECT_EQ(c.num_heads_kv, 2);
    EXPECT_EQ(c.vocab_size, f.vocab);
    EXPECT_FALSE(c.tie_word_embeddings);
    EXPECT_EQ(c.num_experts, f.experts);
    EXPECT_EQ(c.num_experts_per_tok, f.experts_per_tok);
    if (f.experts > 0) {
      EXPECT_EQ(c.moe_intermediate_size, f.expert_width);
      EXPECT_EQ(c.moe_layers, std::vector<bool>(c.num_layers, true));
    }
    EXPECT_EQ(c.bos_token_ids, std::vector<int32_t>{static_cast<int32_t>(f.bos)});
    EXPECT_EQ(c.eos_token_ids, std::vector<int32_t>{static_cast<int32_t>(f.eos)});

    const model::GgufTokenizer* g = (*m)->gguf_tokenizer();
    ASSERT_NE(g, nullptr);
    EXPECT_EQ(g->model, "gpt2");
    EXPECT_EQ(g->pre, f.pre);
    EXPECT_EQ(g->tokens.size(), static_cast<size_t>(f.vocab));
    EXPECT_FALSE(g->add_bos);
    auto tj = ReadFileToString(f.vocab_dir + "/tokenizer.json");
    auto tc = ReadFileToString(f.vocab_dir + "/tokenizer_config.json");
    ASSERT_TRUE(tj.ok() && tc.ok());
    EXPECT_EQ(g->merges.size(), nlohmann::json::parse(*tj)["model"]["merges"].size());
    EXPECT_EQ(g->chat_template, nlohmann::json::parse(*tc)["chat_template"]);
    if (f.pre == "qwen2") {
      // The converter's token types: special added tokens CONTROL, the others USER_DEFINED,
      // ids the vocabulary lacks "[PAD<id>]" UNUSED.
      EXPECT_EQ(g->token_types[100], 1);
      EXPECT_EQ(g->tokens[151645], "<|im_end|>");
      EXPECT_EQ(g->token_types[151645], 3);
      EXPECT_EQ(g->tokens[151667], "<think>");
      EXPECT_EQ(g->token_types[151667], 4);
      EXPECT_EQ(g->tokens[151700], "[PAD151700]");
      EXPECT_EQ(g->token_types[151700], 5);
    }

    auto from_gguf = engine::LoadModelTokenizer(path);
    auto from_hf = Tokenizer::FromHfDir(f.vocab_dir);
    ASSERT_TRUE(from_gguf.ok()) << from_gguf.status().message();
    ASSERT_TRUE(from_hf.ok()) << from_hf.status().message();
    for (const std::string& text : texts) {
      auto a = (*from_gguf)->Encode(text, true);
      auto b = (*from_hf)->Encode(text, true);
      ASSERT_TRUE(a.ok() && b.ok()) << text;
      EXPECT_EQ(*a, *b) << text;
      EXPECT_EQ((*from_gguf)->Decode(*a), text);
    }
  }
}

TEST(QuantModelErrors, TruncatedGgufNamesTheTensor) {
  const std::string src = Dir() + "/tiny-llama-q8_0.gguf";
  const std::string dst = ::testing::TempDir() + "/truncated.gguf";
  fs::copy_file(src, dst, fs::copy_options::overwrite_existing);
  fs::resize_file(dst, fs::file_size(src) / 2);
  auto m = model::Model::Load(dst, {});
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("beyond the end of the file"), std::string::npos)
      << m.status().message();
  EXPECT_NE(m.status().message().find("truncated.gguf"), std::string::npos);
}

TEST(QuantModelErrors, MlxScalesThatDoNotMatchTheirWeights) {
  auto m = model::Model::Load(Dir() + "/bad-scales-mlx4", {});
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("model.layers.1.mlp.up_proj.scales"), std::string::npos)
      << m.status().message();
  EXPECT_NE(m.status().message().find("does not match"), std::string::npos) << m.status().message();
}

TEST(QuantModelErrors, ShardSplitOffBlockBoundaries) {
  // tiny-qwen3-mlx4 has group size 32 and F = 160 columns in down_proj: tp = 2 would cut
  // at 80, inside a group. (down_proj is quantized there: 160 is a multiple of 32.)
  model::LoadOptions opt;
  opt.shard.tp_size = 2;
  opt.shard.tp_rank = 1;
  auto m = model::Model::Load(Dir() + "/tiny-qwen3-mlx4", opt);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("mlp.down_proj.weight"), std::string::npos)
      << m.status().message();
  EXPECT_NE(m.status().message().find("multiples of 32"), std::string::npos)
      << m.status().message();
  // tiny-mixtral-q4_0's experts are 96 wide: tp = 2 cuts each at 48, inside a block.
  m = model::Model::Load(Dir() + "/tiny-mixtral-q4_0.gguf", opt);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("mlp.switch_mlp.down_proj.weight (expert 0)"),
            std::string::npos)
      << m.status().message();
  EXPECT_NE(m.status().message().find("multiples of 32"), std::string::npos)
      << m.status().message();
}

}  // namespace
}  // namespace meshlm
