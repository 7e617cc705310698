#include "cluster/manifest.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "cluster/remote.h"

namespace meshlm::cluster {
namespace {

namespace fs = std::filesystem;

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

void Write(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

// Sets a file's mtime `seconds_ago` in the past (older than the racy window).
void SetMtime(const fs::path& p, long seconds_ago, long nsec = 0) {
  timespec ts[2];
  clock_gettime(CLOCK_REALTIME, &ts[0]);
  ts[0].tv_sec -= seconds_ago;
  ts[0].tv_nsec = nsec;
  ts[1] = ts[0];
  ASSERT_EQ(utimensat(AT_FDCWD, p.c_str(), ts, 0), 0);
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class ManifestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("meshlm-manifest-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    std::mt19937 rng(std::random_device{}());
    Write(dir_ / "config.json", R"({"hidden_size": 64})");
    Write(dir_ / "model.safetensors", RandomBytes((3 << 20) + 17, rng()));
    Write(dir_ / "sub/tokenizer.json", RandomBytes(12345, rng()));
    Write(dir_ / "empty.txt", "");
    for (const char* f : {"config.json", "model.safetensors", "sub/tokenizer.json", "empty.txt"}) {
      SetMtime(dir_ / f, 100);
    }
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(ManifestTest, HashesMatchSha256sum) {
  auto m = BuildManifest(dir_.string());
  ASSERT_TRUE(m.ok()) << m.status().message();
  ASSERT_EQ(m->files.size(), 4u);
  EXPECT_EQ(m->hashed_files, 4);
  EXPECT_EQ(m->files[0].path, "config.json");
  EXPECT_EQ(m->files[3].path, "sub/tokenizer.json");
  for (const ManifestFile& f : m->files) {
    auto r = RunCommand({"sha256sum", (dir_ / f.path).string()}, "", 30);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->code, 0) << r->err;
    EXPECT_EQ(r->out.substr(0, 64), f.sha256) << f.path;
    EXPECT_EQ(f.size, fs::file_size(dir_ / f.path));
  }
  EXPECT_EQ(m->cache_path, (dir_ / ".meshlm-manifest.json").string());
  EXPECT_TRUE(fs::exists(m->cache_path));
}

TEST_F(ManifestTest, HiddenEntriesAndPartialTransfersAreNotTheModel) {
  auto before = BuildManifest(dir_.string());
  ASSERT_TRUE(before.ok());
  Write(dir_ / ".git/objects/ab/cdef", RandomBytes(100, 1));
  Write(dir_ / ".cache/huggingface/download/model.safetensors.metadata", "x");
  Write(dir_ / "sub/.hidden", "y");
  Write(dir_ / "model.safetensors.meshlm-part", RandomBytes(10, 2));
  auto after = BuildManifest(dir_.string());
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->files.size(), 4u);
  EXPECT_EQ(after->digest, before->digest);
  EXPECT_EQ(after->hashed_files, 0);
}

TEST_F(ManifestTest, SingleFileModelIsCachedBesideIt) {
  const fs::path gguf = dir_ / "model.safetensors";
  auto m = BuildManifest(gguf.string());
  ASSERT_TRUE(m.ok()) << m.status().message();
  ASSERT_EQ(m->files.size(), 1u);
  EXPECT_EQ(m->files[0].path, "model.safetensors");
  EXPECT_EQ(m->cache_path, gguf.string() + ".meshlm-manifest.json");
  // The single file's cache is not part of the folder's manifest.
  auto d = BuildManifest(dir_.string());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->files.size(), 4u);
}

TEST_F(ManifestTest, CacheIsTrustedOnlyWhileSizeAndMtimeMatch) {
  auto first = BuildManifest(dir_.string());
  ASSERT_TRUE(first.ok());
  auto second = BuildManifest(dir_.string());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->hashed_files, 0);
  EXPECT_EQ(second->digest, first->digest);

  // Corrupt the cached hash of config.json: trusted while its size and mtime match.
  const fs::path cache = dir_ / ".meshlm-manifest.json";
  std::string text = ReadAll(cache);
  const std::string real = first->files[0].sha256;
  const std::string fake(64, 'a');
  text.replace(text.find(real), 64, fake);
  std::ofstream(cache, std::ios::trunc) << text;
  auto trusted = BuildManifest(dir_.string());
  ASSERT_TRUE(trusted.ok());
  EXPECT_EQ(trusted->hashed_files, 0);
  EXPECT_EQ(trusted->files[0].sha256, fake);

  // A new mtime (same size, same bytes) makes it hashed again, and only it.
  SetMtime(dir_ / "config.json", 50, 123);
  auto rehashed = BuildManifest(dir_.string());
  ASSERT_TRUE(rehashed.ok());
  EXPECT_EQ(rehashed->hashed_files, 1);
  EXPECT_EQ(rehashed->files[0].sha256, real);
  EXPECT_EQ(rehashed->digest, first->digest);

  // --rehash ignores the cache.
  ManifestOptions all;
  all.rehash = true;
  auto full = BuildManifest(dir_.string(), all);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->hashed_files, 4);
}

TEST_F(ManifestTest, RecentlyModifiedFilesAreNotCached) {
  Write(dir_ / "fresh.bin", RandomBytes(1000, 7));  // mtime: now
  ASSERT_TRUE(BuildManifest(dir_.string()).ok());
  auto again = BuildManifest(dir_.string());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->hashed_files, 1);  // fresh.bin only
}

TEST_F(ManifestTest, DigestChangesWhenAnyByteChanges) {
  auto before = BuildManifest(dir_.string());
  ASSERT_TRUE(before.ok());
  std::mt19937 rng(std::random_device{}());
  const fs::path f = dir_ / "model.safetensors";
  const size_t size = fs::file_size(f);
  const size_t at = rng() % size;
  {
    std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
    io.seekg(static_cast<std::streamoff>(at));
    char c = 0;
    io.read(&c, 1);
    io.seekp(static_cast<std::streamoff>(at));
    c = static_cast<char>(c ^ (1 << (rng() % 8)));
    io.write(&c, 1);
  }
  SetMtime(f, 30);
  auto after = BuildManifest(dir_.string());
  ASSERT_TRUE(after.ok());
  EXPECT_NE(after->digest, before->digest);
  const auto diff = ManifestDifferences(*before, *after);
  ASSERT_EQ(diff.size(), 1u);
  EXPECT_EQ(diff[0].rfind("model.safetensors: sha256", 0), 0u) << diff[0];

  // A renamed file changes the digest too, and shows as missing + extra.
  fs::rename(dir_ / "empty.txt", dir_ / "empty2.txt");
  auto renamed = BuildManifest(dir_.string());
  ASSERT_TRUE(renamed.ok());
  EXPECT_NE(renamed->digest, after->digest);
  EXPECT_EQ(ManifestDifferences(*after, *renamed).size(), 2u);
}

TEST_F(ManifestTest, CorruptCacheIsRebuiltWithANote) {
  std::ofstream(dir_ / ".meshlm-manifest.json") << "{not json";
  auto m = BuildManifest(dir_.string());
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->hashed_files, 4);
  EXPECT_NE(m->note.find("not valid JSON"), std::string::npos) << m->note;
  EXPECT_TRUE(ManifestFromJson(ReadAll(dir_ / ".meshlm-manifest.json"), "x").ok());
}

TEST(ManifestJson, BadInputIsAnErrorNamingTheField) {
  EXPECT_FALSE(ManifestFromJson("[]", "m").ok());
  auto r = ManifestFromJson(
      R"({"format":"meshlm-manifest","files":[{"path":"../x","size":1,"sha256":")" +
          std::string(64, 'a') + "\"}]}",
      "m");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("files[0].path"), std::string::npos);
  auto s =
      ManifestFromJson(R"({"format":"meshlm-manifest","files":[{"path":"a","size":-1}]})", "m");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("files[0]"), std::string::npos);
}

TEST(Manifest, MissingModelIsAnError) {
  auto r = BuildManifest("/nonexistent/model/dir");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/nonexistent/model/dir"), std::string::npos);
}

}  // namespace
}  // namespace meshlm::cluster
