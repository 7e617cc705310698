// `meshlm launch` and `meshlm commtest` on localhost: tagged output, stdin broadcast, exit
// codes, teardown without orphans, the secret kept off command lines, a real commtest.
#include <dirent.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "comm_spawn.h"

namespace meshlm::testing {
namespace {

std::string Tool() { return BuildDir() + "/tests/launch_tool"; }

struct ToolRun {
  int code;
  std::string out;
  double seconds;
};

// Runs the tool with `args` (stdin from `input`), output to a log; bounded by `timeout_s`.
ToolRun RunTool(const std::string& name, const std::vector<std::string>& args,
                const std::string& input = "", double timeout_s = 30) {
  const std::string in_path = fmt::format("{}/tests/launch_{}.in", BuildDir(), name);
  {
    std::ofstream f(in_path);
    f << input;
  }
  std::vector<std::string> argv = {"/bin/sh", "-c", "exec \"$0\" \"$@\" < " + in_path, Tool()};
  argv.insert(argv.end(), args.begin(), args.end());
  ChildSet set;
  const double t0 = NowSeconds();
  Child& c = set.Spawn(argv, {}, fmt::format("{}/tests/launch_{}.log", BuildDir(), name));
  const bool done = ChildSet::Wait(c, timeout_s);
  ToolRun r{done ? c.ExitCode() : -1, ReadFileOrEmpty(c.log), NowSeconds() - t0};
  return r;
}

// Pids of processes whose command line contains `needle`.
std::vector<int> ProcessesWith(const std::string& needle) {
  std::vector<int> pids;
  DIR* d = opendir("/proc");
  while (dirent* e = readdir(d)) {
    const int pid = atoi(e->d_name);
    if (pid <= 0 || pid == getpid()) continue;
    std::string cmd = ReadFileOrEmpty(fmt::format("/proc/{}/cmdline", pid));
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    if (cmd.find(needle) != std::string::npos) pids.push_back(pid);
  }
  closedir(d);
  return pids;
}

TEST(Launch, TagsOutputAndBroadcastsStdin) {
  ToolRun r = RunTool("tags",
                      {"launch", "-n", "3", "--env", "EXTRA=yes", "--", "sh", "-c",
                       "echo \"hello $MESHLM_RANK/$MESHLM_WORLD_SIZE $EXTRA\"; "
                       "while read l; do echo \"got $l\"; done"},
                      "alpha\nbeta\n");
  EXPECT_EQ(r.code, 0) << r.out;
  for (int rank = 0; rank < 3; ++rank) {
    EXPECT_NE(r.out.find(fmt::format("[{}] hello {}/3 yes", rank, rank)), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find(fmt::format("[{}] got alpha", rank)), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(fmt::format("[{}] got beta", rank)), std::string::npos) << r.out;
  }
}

TEST(Launch, FirstFailureSetsExitCodeAndStopsEveryRankWithoutOrphans) {
  const std::string marker = fmt::format("meshlm-orphan-check-{}", getpid());
  // Every rank leaves a grandchild behind; rank 1 fails after a moment.
  ToolRun r = RunTool("fail", {"launch", "-n", "3", "--", "sh", "-c",
                               "sleep 300 " + std::string("&& echo ") + marker +
                                   " & "
                                   "if [ $MESHLM_RANK = 1 ]; then sleep 0.3; exit 7; fi; wait"});
  EXPECT_EQ(r.code, 7) << r.out;
  EXPECT_LT(r.seconds, 10) << r.out;
  EXPECT_NE(r.out.find("rank 1 failed with exit code 7"), std::string::npos) << r.out;
  usleep(200000);
  EXPECT_TRUE(ProcessesWith(marker).empty()) << "orphans left behind";
}

// A launcher killed with SIGKILL (as the OOM killer would) leaves no rank running.
TEST(Launch, KilledLauncherLeavesNoRankBehind) {
  const std::string marker = fmt::format("3{:05}.5", getpid() % 100000);
  // The ranks, not the launcher, whose command line names the sleep too.
  auto ranks = [&] {
    std::vector<int> pids;
    for (int pid : ProcessesWith("sleep " + marker)) {
      if (ReadFileOrEmpty(fmt::format("/proc/{}/cmdline", pid)).rfind("sleep", 0) == 0) {
        pids.push_back(pid);
      }
    }
    return pids;
  };
  ChildSet set;
  Child& launcher = set.Spawn({Tool(), "launch", "-n", "3", "--", "sleep", marker}, {},
                              fmt::format("{}/tests/launch_killed_launcher.log", BuildDir()));
  for (int i = 0; i < 500 && ranks().size() < 3; ++i) usleep(10000);
  ASSERT_EQ(ranks().size(), 3u) << ReadFileOrEmpty(launcher.log);
  kill(launcher.pid, SIGKILL);
  const double t0 = NowSeconds();
  while (!ranks().empty() && NowSeconds() - t0 < 5) usleep(10000);
  const double took = NowSeconds() - t0;
  std::printf("ranks gone %.3f s after their launcher was killed\n", took);
  EXPECT_TRUE(ranks().empty()) << "ranks outlived their launcher";
  EXPECT_LT(took, 2.0);
}

TEST(Launch, KilledRankIsReportedAsSignal) {
  ToolRun r = RunTool("killed", {"launch", "-n", "2", "--", "sh", "-c",
                                 "if [ $MESHLM_RANK = 0 ]; then kill -9 $$; fi; sleep 300"});
  EXPECT_EQ(r.code, 128 + 9) << r.out;
  EXPECT_LT(r.seconds, 10);
}

TEST(Launch, SecretIsInTheEnvironmentButOnNoCommandLine) {
  ToolRun r = RunTool("secret",
                      {"launch", "-n", "2", "--", "sh", "-c",
                       "s=$MESHLM_SECRET; [ ${#s} -eq 64 ] || exit 3; "
                       "if echo \"$s\" | grep -l -a -F -f - /proc/[0-9]*/cmdline 2>/dev/null; then "
                       "echo LEAKED; exit 4; fi; echo clean"});
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("[0] clean"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[1] clean"), std::string::npos) << r.out;
}

TEST(Launch, RejectsBadFlags) {
  ToolRun r = RunTool("bad", {"launch", "--env", "NOEQUALS", "-n", "2", "--", "true"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("--env 'NOEQUALS' is not KEY=VALUE"), std::string::npos) << r.out;
  ToolRun h = RunTool("badhf", {"launch", "--hostfile", "/nonexistent.json", "--", "true"});
  EXPECT_EQ(h.code, 2);
  EXPECT_NE(h.out.find("cannot open '/nonexistent.json'"), std::string::npos) << h.out;
}

class Commtest : public ::testing::TestWithParam<int> {};

TEST_P(Commtest, AllPhasesPassWithJson) {
  const int n = GetParam();
  ToolRun r = RunTool(fmt::format("commtest{}", n),
                      {"commtest", "-n", std::to_string(n), "--max-bytes", "2M", "--rounds", "2",
                       "--latency-iters", "50", "--json"},
                      "", 60);
  ASSERT_EQ(r.code, 0) << r.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("\\[0\\] (\\{.*\\})"))) << r.out;
  auto j = nlohmann::json::parse(m[1].str());
  EXPECT_EQ(j["ranks"], n);
  EXPECT_EQ(j["wrong_elements"], 0);
  EXPECT_EQ(j["latency"].size(), 2u);
  EXPECT_GT(j["bandwidth"].size(), 3u);
}

INSTANTIATE_TEST_SUITE_P(Localhost, Commtest, ::testing::Values(2, 3));

}  // namespace
}  // namespace meshlm::testing
