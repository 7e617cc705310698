// Sharded generation with real processes under `meshlm launch`: the same greedy tokens
// as one process for tp, pp and tp x pp, and less memory per rank as ranks are added.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "test_util.h"

namespace meshlm {
namespace {

using testing::BuildDir;
using testing::RunCommand;
std::string Meshlm() { return testing::MeshlmBinary(); }

// The rank-0 line of a launched run ("[0] 1,2,3") or the plain output of one process.
std::string TokensLine(const std::string& out) {
  std::string line;
  size_t start = 0;
  while (start < out.size()) {
    size_t end = out.find('\n', start);
    if (end == std::string::npos) end = out.size();
    std::string l = out.substr(start, end - start);
    if (l.rfind("[0] ", 0) == 0) l = l.substr(4);
    if (!l.empty() && std::isdigit(static_cast<unsigned char>(l[0]))) line = l;
    start = end + 1;
  }
  return line;
}

struct LaunchCase {
  int n;
  std::string flags;
};

// Greedy generation of `model` under `meshlm launch` with each case's ranks and flags gives
// the tokens of one process. Returns the generate arguments, for further runs.
std::string ExpectLaunchesMatchOneProcess(const std::string& model,
                                          const std::vector<LaunchCase>& cases) {
  const std::string args = " generate --model " + model +
                           " --ids 3,17,42,5,99 --max-tokens 16 --temperature 0 --threads 1";
  const auto [single, code] = RunCommand(Meshlm() + args);
  EXPECT_EQ(code, 0) << single;
  const std::string expect = TokensLine(single);
  EXPECT_FALSE(expect.empty()) << single;
  for (const LaunchCase& c : cases) {
    const auto [out, rc] = RunCommand(Meshlm() + " launch -n " + std::to_string(c.n) + " -- " +
                                      Meshlm() + args + " " + c.flags);
    EXPECT_EQ(rc, 0) << c.flags << "\n" << out;
    EXPECT_EQ(TokensLine(out), expect) << c.flags << "\n" << out;
  }
  return args;
}

TEST(ShardedLaunch, GreedyTokensMatchOneProcess) {
  ExpectLaunchesMatchOneProcess(
      BuildDir() + "/testmodels/tiny-llama-deep-f32",
      {{2, "--tp 2"}, {2, "--pp 2"}, {3, "--pp 3 --layers 1,3,1"}, {4, "--tp 2 --pp 2"}});
}

// A mixture of experts (12 experts, a dense layer between sparse ones) split by experts,
// by tensors inside expert groups, and by stages: the greedy tokens of one process.
TEST(ShardedLaunch, MoeGreedyTokensMatchOneProcess) {
  const std::string args = ExpectLaunchesMatchOneProcess(
      BuildDir() + "/testmodels/tiny-qwen3moe-f32", {{2, "--ep 2"},
                                                     {3, "--ep 3"},
                                                     {4, "--ep 4"},
                                                     {4, "--tp 2 --ep 2"},
                                                     {2, "--pp 2"},
                                                     {4, "--pp 2 --ep 2"}});
  const auto [out, rc] =
      RunCommand(Meshlm() + " launch -n 5 -- " + Meshlm() + args + " --ep 5", 60, true);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("num_experts=12 is not divisible by ep=5; valid ep: 1, 2, 3, 4, 6, 12"),
            std::string::npos)
      << out;
}

TEST(ShardedLaunch, TpThatDoesNotDivideIsRefusedWithTheValidValues) {
  const std::string model = BuildDir() + "/testmodels/tiny-llama-deep-f32";
  const auto [out, code] = RunCommand(Meshlm() + " launch -n 3 -- " + Meshlm() +
                                          " generate --model " + model + " --ids 1,2 --threads 1",
                                      60, true);
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("not divisible by tp=3; valid tp: 1, 2, 4"), std::string::npos) << out;
}

// Peak RSS per rank at tp=2 on the qwen3-0.6b shape is at most 0.6 of one process's:
// each rank touches only its slices of the mmap'd weights.
TEST(ShardedLaunch, MemoryPerRankFallsWithTp) {
  const std::string model = BuildDir() + "/testmodels/qwen3-0.6b";
  if (!std::filesystem::exists(model + "/config.json")) {
    const auto [out, rc] = RunCommand("/usr/bin/python3 " + std::string(MESHLM_TEST_SOURCE_DIR) +
                                          "/tools/make_model.py --shape qwen3-0.6b --out " + model,
                                      300);
    ASSERT_EQ(rc, 0) << out;
  }
  // A file written moments ago sits in the page cache as large folios, which the kernel
  // maps whole around every touched page; a model read from disk does not. Measure from
  // the latter state, as a user loading a model would.
  auto evict = [&] {
    const int fd = ::open((model + "/model.safetensors").c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  };
  const std::string bench =
      " bench --model " + model + " --prompt-tokens 8 --gen-tokens 2 --threads 1 --json";
  evict();
  const auto [one, rc1] = RunCommand(Meshlm() + bench, 300);
  ASSERT_EQ(rc1, 0) << one;
  evict();
  const auto [two, rc2] =
      RunCommand(Meshlm() + " launch -n 2 -- " + Meshlm() + bench + " --tp 2", 300);
  ASSERT_EQ(rc2, 0) << two;
  const auto j1 = nlohmann::json::parse(one.substr(one.find('{')));
  const auto j2 = nlohmann::json::parse(two.substr(two.find('{')));
  const double single = j1["peak_rss_bytes"][0].get<double>();
  ASSERT_EQ(j2["peak_rss_bytes"].size(), 2u);
  for (const auto& r : j2["peak_rss_bytes"]) {
    EXPECT_LE(r.get<double>(), 0.6 * single) << "one process: " << single;
  }
}

}  // namespace
}  // namespace meshlm

namespace meshlm {
namespace {

TEST(PlanCommand, PrintsSlicesAndRefusesWhatDoesNotFit) {
  const std::string model = BuildDir() + "/testmodels/tiny-qwen3-deep-f32";
  auto [out, rc] = RunCommand(Meshlm() + " plan --model " + model + " -n 4 --tp 2 --pp 2 --ctx 64");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("tp=2 pp=2"), std::string::npos) << out;
  EXPECT_NE(out.find("150-299"), std::string::npos) << out;  // rank 3's vocabulary slice
  std::tie(out, rc) = RunCommand(Meshlm() + " plan --model " + model + " -n 2 --memory 0,0");
  EXPECT_NE(rc, 0) << out;
  std::tie(out, rc) = RunCommand(Meshlm() + " plan --model " + model + " -n 2 --pp 6");
  EXPECT_NE(rc, 0) << out;
}

}  // namespace
}  // namespace meshlm
