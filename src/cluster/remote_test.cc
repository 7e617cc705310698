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

// ssh's own words (OpenSSH's messages) map to the fix; a name that does not resolve is
// not blamed on sshd or keys.
TEST(SshFix, NamesTheCauseFromSshsMessage) {
  auto fix = [](const std::string& err, bool timed_out = false) {
    CommandResult r;
    r.code = timed_out ? 124 : 255;
    r.timed_out = timed_out;
    r.err = err;
    return SshFix(r, 7);
  };
  const std::string unresolved =
      fix("ssh: Could not resolve hostname mac-studio-3: Name or service not known\n");
  EXPECT_NE(unresolved.find("does not resolve"), std::string::npos) << unresolved;
  EXPECT_NE(unresolved.find("DNS"), std::string::npos) << unresolved;
  EXPECT_NE(unresolved.find("~/.ssh/config"), std::string::npos) << unresolved;
  EXPECT_EQ(unresolved.find("sshd"), std::string::npos) << unresolved;
  EXPECT_EQ(unresolved.find("authorized_keys"), std::string::npos) << unresolved;
  EXPECT_NE(fix("ssh: connect to host 10.0.0.2 port 22: Connection refused\n").find("start sshd"),
            std::string::npos);
  EXPECT_NE(fix("user@h: Permission denied (publickey).\n").find("authorized_keys"),
            std::string::npos);
  EXPECT_NE(fix("Host key verification failed.\n").find("host key"), std::string::npos);
  EXPECT_NE(fix("", true).find("no answer within 7 s"), std::string::npos);
  EXPECT_NE(fix("kex_exchange_identification: read: reset\n").find("kex_exchange"),
            std::string::npos);
}

}  // namespace
}  // namespace meshlm::cluster
