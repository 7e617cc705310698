// Tests for safetensors parsing: round trip and malformed files.
#include "model/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

namespace meshlm::model {
namespace {

namespace fs = std::filesystem;

std::string MakeFile(const nlohmann::json& header, const std::string& data) {
  std::string h = header.dump();
  while ((8 + h.size()) % 8) h += ' ';
  std::string out(8, '\0');
  const uint64_t n = h.size();
  std::memcpy(out.data(), &n, 8);
  return out + h + data;
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("meshlm_st_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& bytes) {
    const std::string p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
  fs::path dir_;
};

nlohmann::json TwoTensors() {
  return {{"a", {{"dtype", "F32"}, {"shape", {2, 3}}, {"data_offsets", {0, 24}}}},
          {"b", {{"dtype", "BF16"}, {"shape", {4}}, {"data_offsets", {24, 32}}}},
          {"__metadata__", {{"format", "pt"}}}};
}

TEST_F(SafetensorsTest, ParsesTensorsInPlace) {
  std::string data(32, '\0');
  for (int i = 0; i < 32; ++i) data[i] = static_cast<char>(i);
  auto f = SafetensorsFile::Open(Write("m.safetensors", MakeFile(TwoTensors(), data)));
  ASSERT_TRUE(f.ok()) << f.status().message();
  const auto& t = (*f)->tensors();
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t.at("a").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t.at("a").dtype, DType::kF32);
  EXPECT_EQ(t.at("b").nbytes, 8u);
  EXPECT_EQ(t.at("b").data[0], 24);
  EXPECT_EQ(t.at("a").data + 24, t.at("b").data);
}

TEST_F(SafetensorsTest, RejectsMalformedFilesWithNamedErrors) {
  const std::string good = MakeFile(TwoTensors(), std::string(32, 'x'));
  struct Case {
    std::string bytes;
    std::string expect;
  };
  auto with = [&](nlohmann::json h, const std::string& data) { return MakeFile(h, data); };
  nlohmann::json bad_dtype = TwoTensors();
  bad_dtype["a"]["dtype"] = "F8_E4M3";
  nlohmann::json beyond = TwoTensors();
  beyond["b"]["data_offsets"] = {24, 4000};
  nlohmann::json wrong_size = TwoTensors();
  wrong_size["a"]["shape"] = {2, 4};
  nlohmann::json bad_shape = TwoTensors();
  bad_shape["a"]["shape"] = {-2, 3};
  nlohmann::json no_offsets = TwoTensors();
  no_offsets["a"].erase("data_offsets");
  std::string huge = good;
  const uint64_t big = 1ull << 50;
  std::memcpy(huge.data(), &big, 8);
  const std::vector<Case> cases = {
      {"", "too short"},
      {good.substr(0, 5), "too short"},
      {huge, "header length"},
      {good.substr(0, 40), "header length"},
      {std::string("\x10\0\0\0\0\0\0\0{not json}      ", 24), "not valid JSON"},
      {with(bad_dtype, std::string(32, 'x')), "dtype F8_E4M3 unsupported"},
      {with(beyond, std::string(32, 'x')), "beyond the data section"},
      {with(wrong_size, std::string(32, 'x')), "expected 32"},
      {with(bad_shape, std::string(32, 'x')), "bad shape"},
      {with(no_offsets, std::string(32, 'x')), "data_offsets"},
      {good.substr(0, good.size() - 3), "beyond the data section"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    auto f = SafetensorsFile::Open(Write("bad" + std::to_string(i), cases[i].bytes));
    ASSERT_FALSE(f.ok()) << "case " << i;
    EXPECT_NE(f.status().message().find(cases[i].expect), std::string::npos)
        << "case " << i << ": " << f.status().message();
    EXPECT_NE(f.status().message().find("bad" + std::to_string(i)), std::string::npos)
        << "error should name the file: " << f.status().message();
  }
}

TEST_F(SafetensorsTest, RandomMutationsNeverCrash) {
  const std::string good = MakeFile(TwoTensors(), std::string(32, 'x'));
  std::mt19937 rng(42);
  for (int i = 0; i < 3000; ++i) {
    std::string b = good;
    const int edits = 1 + rng() % 4;
    for (int e = 0; e < edits; ++e) b[rng() % b.size()] = static_cast<char>(rng());
    if (rng() % 4 == 0) b.resize(rng() % b.size());
    auto r = ParseSafetensors(reinterpret_cast<const uint8_t*>(b.data()), b.size(), "fuzz");
    if (r.ok()) {
      for (const auto& [name, t] : *r) {
        EXPECT_GE(t.data, reinterpret_cast<const uint8_t*>(b.data()));
        EXPECT_LE(t.data + t.nbytes, reinterpret_cast<const uint8_t*>(b.data()) + b.size());
      }
    }
  }
}

TEST_F(SafetensorsTest, ShardedFolderAndMissingShard) {
  nlohmann::json h1 = {{"a", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0, 8}}}}};
  nlohmann::json h2 = {{"b", {{"dtype", "F16"}, {"shape", {2}}, {"data_offsets", {0, 4}}}}};
  Write("model-00001-of-00002.safetensors", MakeFile(h1, std::string(8, 'a')));
  Write("model-00002-of-00002.safetensors", MakeFile(h2, std::string(4, 'b')));
  nlohmann::json index = {
      {"metadata", {{"total_size", 12}}},
      {"weight_map",
       {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00002-of-00002.safetensors"}}}};
  Write("model.safetensors.index.json", index.dump());
  auto store = TensorStore::Open(dir_.string());
  ASSERT_TRUE(store.ok()) << store.status().message();
  EXPECT_NE((*store)->Find("a"), nullptr);
  EXPECT_NE((*store)->Find("b"), nullptr);
  EXPECT_FALSE((*store)->Get("c").ok());

  fs::remove(dir_ / "model-00002-of-00002.safetensors");
  auto missing = TensorStore::Open(dir_.string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("model-00002-of-00002.safetensors"), std::string::npos);
  EXPECT_NE(missing.status().message().find("missing"), std::string::npos);
}

TEST_F(SafetensorsTest, EmptyFolderIsAnError) {
  auto store = TensorStore::Open(dir_.string());
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("no model.safetensors"), std::string::npos);
}

}  // namespace
}  // namespace meshlm::model
