#include "cluster/remote.h"

#include <gtest/gtest.h>

#include "base/clock.h"

namespace meshlm::cluster {
namespace {

TEST(RunCommand, CapturesOutputErrorAndExitCode) {
  auto r = RunCommand({"sh", "-c", "cat; echo err >&2; exit 3"}, "hello\n", 10);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->code, 3);
  EXPECT_EQ(r->out, "hello\n");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_FALSE(r->timed_out);
}

TEST(RunCommand, LargeInputAndOutputDoNotDeadlock) {
  const std::string big(3 << 20, 'x');
  auto r = RunCommand({"cat"}, big, 20);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->code, 0);
  EXPECT_EQ(r->out.size(), big.size());
}

TEST(RunCommand, DeadlineStopsTheCommandAndItsChildren) {
  const double t0 = NowSeconds();
  auto r = RunCommand({"sh", "-c", "sleep 30 & sleep 30"}, "", 0.5);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->code, 124);
  EXPECT_LT(NowSeconds() - t0, 5.0);
}

TEST(RunCommand, MissingProgramIs127WithAMessage) {
  auto r = RunCommand({"/nonexistent/program"}, "", 5);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->code, 127);
  EXPECT_NE(r->err.find("/nonexistent/program"), std::string::npos) << r->err;
}

TEST(SshArgv, NeverPromptsAndPutsArgsBeforeTheHost) {
  const auto argv = SshArgv("h1", {"-p", "2222"}, "uname -a");
  const std::vector<std::string> want = {"ssh",  "-o", "BatchMode=yes", "-T", "-p",
                                         "2222", "h1", "uname -a"};
  EXPECT_EQ(argv, want);
}

}  // namespace
}  // namespace meshlm::cluster
