// Hostfile parsing: MLX shapes accepted unchanged, meshlm additions, and error messages.
#include "cluster/hostfile.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>

namespace meshlm::cluster {
namespace {

Result<Hostfile> Parse(const std::string& s) { return ParseHostfile(s, "[hostfile] h.json"); }

std::string ErrorOf(const std::string& s) {
  auto r = Parse(s);
  return r.ok() ? "(parsed)" : r.status().message();
}

TEST(Hostfile, ReadsMlxListForm) {
  auto hf = Parse(R"([
    {"ssh": "mac1.local", "ips": ["192.168.1.10"], "rdma": [null, "rdma_en3", ["rdma_en4", "rdma_en5"]]},
    {"ssh": "mac2.local", "ips": [], "rdma": ["rdma_en3", null, "rdma_en4"]},
    {"ssh": "mac3.local", "rdma": [["rdma_en4", "rdma_en5"], "rdma_en5", null]}])");
  ASSERT_TRUE(hf.ok()) << hf.status().message();
  ASSERT_EQ(hf->hosts.size(), 3u);
  EXPECT_EQ(hf->hosts[0].rdma[2], (std::vector<std::string>{"rdma_en4", "rdma_en5"}));
  EXPECT_EQ(hf->hosts[1].rdma[0], (std::vector<std::string>{"rdma_en3"}));
  EXPECT_TRUE(hf->hosts[0].rdma[0].empty());
  EXPECT_EQ(hf->Address(0), "192.168.1.10");
  EXPECT_EQ(hf->Address(2), "mac3.local");
}

TEST(Hostfile, ReadsObjectFormWithEnvsAndMeshlmFields) {
  auto hf = Parse(R"({"backend": "jaccl", "envs": ["MLX_METAL_FAST_SYNCH=1"],
    "hosts": [{"ssh": "a", "links": [null, ["10.0.1.1", "10.0.2.1"]], "memory_gb": 64},
              {"ssh": "b", "links": [["10.0.1.2", "10.0.2.2"], null]}]})");
  ASSERT_TRUE(hf.ok()) << hf.status().message();
  EXPECT_EQ(hf->backend, "jaccl");
  ASSERT_EQ(hf->envs.size(), 1u);
  EXPECT_EQ(hf->envs[0].first, "MLX_METAL_FAST_SYNCH");
  EXPECT_EQ(hf->hosts[1].links[0][1], "10.0.2.2");
  EXPECT_EQ(*hf->hosts[0].memory_gb, 64);
  auto obj = Parse(R"({"envs": {"A": "1"}, "hosts": [{"ssh": "x"}]})");
  ASSERT_TRUE(obj.ok());
  EXPECT_EQ(obj->envs[0].second, "1");
}

TEST(Hostfile, ErrorsNameHostAndField) {
  EXPECT_EQ(
      ErrorOf(
          R"([{"ssh": "a", "rdma": [null, "x", null]}, {"ssh": "b"}, {"ssh": "c", "rdma": [null, null, "y"]}])"),
      "[hostfile] h.json: hosts[2].rdma[2]: the diagonal must be null");
  EXPECT_EQ(ErrorOf(R"([{"ssh": "a", "rdma": [null]}, {"ssh": "b"}])"),
            "[hostfile] h.json: hosts[0].rdma: has 1 cells but the hostfile has 2 hosts; one cell "
            "per host");
  EXPECT_EQ(ErrorOf(R"([{"ssh": "a", "rdma": [null, 5]}, {"ssh": "b"}])"),
            "[hostfile] h.json: hosts[0].rdma[1]: expected null, a string or a list of strings, "
            "found number");
  EXPECT_EQ(ErrorOf(R"([{"ips": "x"}, {"rdma": null}])"),
            "[hostfile] h.json: hosts[1]: needs \"ssh\" or \"ips\"");
  EXPECT_EQ(ErrorOf("[1,"), "[hostfile] h.json: not valid JSON");
  EXPECT_EQ(ErrorOf("[]"), "[hostfile] h.json: the host list is empty");
  EXPECT_EQ(ErrorOf(R"({"hosts": [{"ssh": "a"}], "envs": ["NOPE"]})"),
            "[hostfile] h.json: envs[0] 'NOPE' is not KEY=VALUE");
  EXPECT_EQ(
      ErrorOf(
          R"([{"ssh": "a", "links": [null, ["1.1.1.1", "2.2.2.2"]]}, {"ssh": "b", "links": ["1.1.1.2", null]}])"),
      "[hostfile] h.json: hosts[0].links[1] lists 2 rails but hosts[1].links[0] lists 1; "
      "rail r on each side must be the two ends of one link");
}

TEST(Hostfile, MutatedInputNeverCrashes) {
  const std::string base = R"({"backend": "ring", "envs": ["A=1"], "hosts": [
    {"ssh": "a", "ips": ["10.0.0.1"], "rdma": [null, ["x", "y"]], "links": [null, "10.1.0.1"]},
    {"ssh": "b", "rdma": [["x", "y"], null], "links": ["10.1.0.2", null], "memory_gb": 8}]})";
  std::mt19937 rng(1);
  const char pieces[] = "[]{},:\"0null\\ ";
  int parsed = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s = base;
    for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) {
      const size_t at = rng() % s.size();
      switch (rng() % 3) {
        case 0:
          s.erase(at, 1 + rng() % 8);
          break;
        case 1:
          s.insert(at, 1, pieces[rng() % (sizeof(pieces) - 1)]);
          break;
        default:
          s[at] = pieces[rng() % (sizeof(pieces) - 1)];
          break;
      }
    }
    auto hf = Parse(s);
    if (hf.ok()) {
      ++parsed;
      for (const HostEntry& h : hf->hosts) {
        EXPECT_TRUE(h.rdma.empty() || h.rdma.size() == hf->hosts.size());
      }
    } else {
      EXPECT_EQ(hf.status().message().rfind("[hostfile] h.json", 0), 0u) << hf.status().message();
    }
  }
  EXPECT_GT(parsed, 0);
}

TEST(Hostfile, ShippedExamplesParse) {
  // The source tree from the environment, else from this file's path.
  const char* env = std::getenv("MESHLM_SOURCE_DIR");
  std::string src =
      env ? env : std::string(__FILE__).substr(0, std::string(__FILE__).rfind("/src/"));
  for (const char* f : {"/hostfiles/hosts-2node.json", "/hostfiles/hosts.json.example"}) {
    auto hf = LoadHostfile(src + f);
    EXPECT_TRUE(hf.ok()) << f << ": " << hf.status().message();
  }
}

}  // namespace
}  // namespace meshlm::cluster
