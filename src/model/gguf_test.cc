// GGUF parser: a valid file built here round-trips; malformed files fail with errors that
// name the item; random mutations and truncations never crash.
#include "model/gguf.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "model/gguf_model.h"
#include "tensor/quant.h"

namespace meshlm::model {
namespace {

// Writes GGUF v3 bytes; the layout follows the published specification.
class Builder {
 public:
  template <typename T>
  void Put(std::vector<uint8_t>& b, T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
  }
  void PutStr(std::vector<uint8_t>& b, const std::string& s) {
    Put<uint64_t>(b, s.size());
    b.insert(b.end(), s.begin(), s.end());
  }
  void KvU32(const std::string& k, uint32_t v) {
    Kv(k, 4, [&](auto& b) { Put(b, v); });
  }
  void KvF32(const std::string& k, float v) {
    Kv(k, 6, [&](auto& b) { Put(b, v); });
  }
  void KvStr(const std::string& k, const std::string& v) {
    Kv(k, 8, [&](auto& b) { PutStr(b, v); });
  }
  void KvBool(const std::string& k, bool v) {
    Kv(k, 7, [&](auto& b) { Put<uint8_t>(b, v); });
  }
  void KvStrs(const std::string& k, const std::vector<std::string>& v) {
    Kv(k, 9, [&](auto& b) {
      Put<uint32_t>(b, 8);
      Put<uint64_t>(b, v.size());
      for (const auto& s : v) PutStr(b, s);
    });
  }
  void KvF32s(const std::string& k, const std::vector<float>& v) {
    Kv(k, 9, [&](auto& b) {
      Put<uint32_t>(b, 6);
      Put<uint64_t>(b, v.size());
      for (float f : v) Put(b, f);
    });
  }
  void Tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type,
              std::vector<uint8_t> bytes) {
    tensors_.push_back({name, dims, type, std::move(bytes)});
  }
  std::vector<uint8_t> Build(uint32_t version = 3, size_t align = 32) {
    std::vector<uint8_t> b;
    Put<uint32_t>(b, 0x46554747);
    Put<uint32_t>(b, version);
    Put<uint64_t>(b, tensors_.size());
    Put<uint64_t>(b, n_kv_);
    b.insert(b.end(), kv_.begin(), kv_.end());
    uint64_t off = 0;
    for (const auto& t : tensors_) {
      PutStr(b, t.name);
      Put<uint32_t>(b, t.dims.size());
      for (uint64_t d : t.dims) Put(b, d);
      Put(b, t.type);
      Put(b, off);
      off += (t.bytes.size() + align - 1) / align * align;
    }
    b.resize((b.size() + align - 1) / align * align, 0);
    for (const auto& t : tensors_) {
      b.insert(b.end(), t.bytes.begin(), t.bytes.end());
      b.resize((b.size() + align - 1) / align * align, 0);
    }
    return b;
  }

 private:
  template <typename F>
  void Kv(const std::string& k, uint32_t type, F value) {
    PutStr(kv_, k);
    Put(kv_, type);
    value(kv_);
    ++n_kv_;
  }
  struct T {
    std::string name;
    std::vector<uint64_t> dims;
    uint32_t type;
    std::vector<uint8_t> bytes;
  };
  std::vector<uint8_t> kv_;
  uint64_t n_kv_ = 0;
  std::vector<T> tensors_;
};

std::vector<uint8_t> F32Bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// A small valid file: metadata of several types and a Q8_0 matrix [2 rows, 64 cols].
std::vector<uint8_t> ValidFile(std::mt19937& rng, std::vector<float>* values = nullptr) {
  Builder b;
  b.KvStr("general.architecture", "llama");
  b.KvU32("llama.block_count", 1);
  b.KvF32("llama.rope.freq_base", 500000.0f);
  b.KvBool("tokenizer.ggml.add_bos_token", true);
  b.KvStrs("tokenizer.ggml.tokens", {"a", "b", "<s>"});
  b.KvF32s("tokenizer.ggml.scores", {0.5f, -1.0f, 0.0f});
  std::normal_distribution<float> nd;
  std::vector<float> x(128);
  for (float& f : x) f = nd(rng);
  std::vector<uint8_t> q(QuantRowBytes(QuantType::kQ8_0, 128));
  QuantizeRowGguf(QuantType::kQ8_0, x.data(), 128, q.data());
  if (values) {
    values->resize(128);
    DequantizeRowGguf(QuantType::kQ8_0, q.data(), 128, values->data());
  }
  b.Tensor("blk.0.ffn_up.weight", {64, 2}, kGgmlQ8_0, q);
  b.Tensor("output_norm.weight", {3}, kGgmlF32, F32Bytes({1, 2, 3}));
  return b.Build();
}

std::string Parse(const std::vector<uint8_t>& bytes) {
  auto r = ParseGguf(bytes.data(), bytes.size(), "m.gguf");
  return r.ok() ? "" : r.status().message();
}

TEST(Gguf, ValidFileRoundTrips) {
  std::mt19937 rng(std::random_device{}());
  std::vector<float> values;
  const auto bytes = ValidFile(rng, &values);
  auto r = ParseGguf(bytes.data(), bytes.size(), "m.gguf");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const GgufContents& c = *r;
  EXPECT_EQ(c.version, 3u);
  EXPECT_EQ(c.metadata.at("general.architecture").s, "llama");
  EXPECT_EQ(c.metadata.at("llama.block_count").i, 1);
  EXPECT_EQ(c.metadata.at("llama.rope.freq_base").f, 500000.0);
  EXPECT_EQ(c.metadata.at("tokenizer.ggml.tokens").strings.size(), 3u);
  ASSERT_EQ(c.tensors.size(), 2u);
  const GgufTensor& t = c.tensors[0];
  EXPECT_EQ(t.quant, QuantType::kQ8_0);
  EXPECT_EQ(t.dims, (std::vector<uint64_t>{64, 2}));
  EXPECT_EQ(t.nbytes, 4u * 34);
  EXPECT_EQ((t.data - bytes.data()) % 32, 0);
  std::vector<float> y(128);
  DequantizeRowGguf(QuantType::kQ8_0, t.data, 128, y.data());
  EXPECT_EQ(y, values);
  float norm[3];
  std::memcpy(norm, c.tensors[1].data, 12);
  EXPECT_EQ(norm[2], 3.0f);
  EXPECT_EQ(GgufToHfName(t.name), "model.layers.0.mlp.up_proj.weight");
  EXPECT_EQ(GgufToHfName("blk.12.attn_q.weight"), "model.layers.12.self_attn.q_proj.weight");
  EXPECT_EQ(GgufToHfName("blk.x.attn_q.weight"), "");
}

TEST(Gguf, MalformedFilesNameTheItem) {
  std::mt19937 rng(std::random_device{}());
  const auto good = ValidFile(rng);
  auto bad = good;
  bad[0] = 'X';
  EXPECT_NE(Parse(bad).find("not a GGUF file"), std::string::npos);
  bad = good;
  bad[4] = 2;
  EXPECT_NE(Parse(bad).find("version 2 unsupported"), std::string::npos);
  // Truncated: in the header, in the metadata, in the tensor data.
  for (size_t n : {size_t{3}, size_t{30}, good.size() - 30}) {  // the last 20 are padding
    const std::vector<uint8_t> cut(good.begin(), good.begin() + n);
    EXPECT_FALSE(Parse(cut).empty()) << n;
  }
  EXPECT_NE(Parse({good.begin(), good.end() - 100}).find("beyond the end"), std::string::npos);

  Builder b;
  b.Tensor("blk.0.attn_q.weight", {32, 1}, 39, std::vector<uint8_t>(64));
  EXPECT_NE(Parse(b.Build()).find("tensor 'blk.0.attn_q.weight': type 39 unsupported"),
            std::string::npos);
  Builder odd;
  odd.Tensor("w", {48, 1}, kGgmlQ8_0, std::vector<uint8_t>(64));
  EXPECT_NE(Parse(odd.Build()).find("not a multiple"), std::string::npos);
  Builder dims;
  dims.Tensor("w", {1, 1, 1, 1, 1}, kGgmlF32, std::vector<uint8_t>(4));
  EXPECT_NE(Parse(dims.Build()).find("5 dimensions"), std::string::npos);
  Builder align;
  align.KvStr("general.alignment", "32");
  EXPECT_NE(Parse(align.Build()).find("general.alignment"), std::string::npos);
  // A huge array count must fail before any allocation.
  std::vector<uint8_t> huge;
  Builder h;
  h.Put<uint32_t>(huge, 0x46554747);
  h.Put<uint32_t>(huge, 3);
  h.Put<uint64_t>(huge, 0);
  h.Put<uint64_t>(huge, 1);
  h.PutStr(huge, "tokenizer.ggml.tokens");
  h.Put<uint32_t>(huge, 9);
  h.Put<uint32_t>(huge, 8);
  h.Put<uint64_t>(huge, 1ull << 60);
  EXPECT_NE(Parse(huge).find("array of"), std::string::npos);
}

TEST(Gguf, MetadataOfTheWrongTypeIsAnError) {
  std::mt19937 rng(std::random_device{}());
  Builder b;
  b.KvStr("general.architecture", "llama");
  b.KvStr("llama.embedding_length", "1024");
  const auto bytes = b.Build();
  const std::string path = ::testing::TempDir() + "/wrong_type.gguf";
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  auto file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().message();
  auto v = (*file)->GetInt("llama.embedding_length");
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("'llama.embedding_length' has type string, expected an "
                                      "integer"),
            std::string::npos)
      << v.status().message();
  auto m = LoadGgufModel(path);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("llama.embedding_length"), std::string::npos);
  EXPECT_FALSE((*file)->GetStrings("general.architecture").ok());
}

// Random byte flips, insertions of large values and truncations of a valid file: the
// parser must return (ok or an error), never crash or read out of bounds (run under the
// sanitizers to check the latter).
TEST(GgufFuzz, MutationsAndTruncationsNeverCrash) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  const auto good = ValidFile(rng);
  std::uniform_int_distribution<size_t> pos(0, good.size() - 1);
  size_t failures = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<uint8_t> b = good;
    const int kind = iter % 4;
    if (kind == 0) {
      for (int k = 0; k < 1 + iter % 5; ++k) b[pos(rng)] = static_cast<uint8_t>(rng());
    } else if (kind == 1) {
      const size_t p = pos(rng) & ~size_t{7};
      const uint64_t v = (iter % 8 == 1) ? ~0ull : (1ull << (rng() % 64));
      std::memcpy(b.data() + std::min(p, b.size() - 8), &v, 8);
    } else if (kind == 2) {
      b.resize(pos(rng));
    } else {
      b[pos(rng)] ^= static_cast<uint8_t>(1u << (rng() % 8));
      b.resize(b.size() - rng() % 64);
    }
    // Copy to an exactly sized heap buffer so that any overread is caught by ASan.
    std::unique_ptr<uint8_t[]> buf(new uint8_t[b.size() + 1]);
    std::memcpy(buf.get(), b.data(), b.size());
    auto r = ParseGguf(buf.get(), b.size(), "fuzz.gguf");
    if (!r.ok()) {
      ++failures;
      EXPECT_EQ(r.status().message().rfind("[gguf] 'fuzz.gguf'", 0), 0u) << r.status().message();
      continue;
    }
    for (const GgufTensor& t : r->tensors) {
      ASSERT_GE(t.data, buf.get());
      ASSERT_LE(t.data + t.nbytes, buf.get() + b.size());
    }
  }
  EXPECT_GT(failures, 1000u);
}

}  // namespace
}  // namespace meshlm::model
