#include "base/progress.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace meshlm {
namespace {

TEST(Progress, LineShowsTheFractionDoneAndTheRate) {
  const std::string half = Progress::Line("packing", 50 << 20, 100 << 20, 2.0);
  EXPECT_NE(half.find("packing"), std::string::npos) << half;
  EXPECT_NE(half.find(" 50%"), std::string::npos) << half;
  EXPECT_NE(half.find("50/100 MiB"), std::string::npos) << half;
  EXPECT_NE(half.find("(25 MiB/s)"), std::string::npos) << half;
  EXPECT_NE(half.find("[" + std::string(15, '#') + std::string(15, '.') + "]"), std::string::npos)
      << half;
  const std::string over = Progress::Line("reading", 300, 200, 1.0);  // never past 100%
  EXPECT_NE(over.find("100%"), std::string::npos) << over;
  EXPECT_NE(over.find("[" + std::string(30, '#') + "]"), std::string::npos) << over;
}

// Plain lines (stderr is not a terminal under ctest): start, quarters, end; nothing for a
// small total or when not asked.
TEST(Progress, PrintsPlainLinesOnlyWhenAskedAndLarge) {
  testing::internal::CaptureStderr();
  {
    Progress small("hashing", Progress::kMinBytes - 1, true);
    small.Add(Progress::kMinBytes - 1);
    Progress quiet("hashing", Progress::kMinBytes * 4, false);
    quiet.Add(Progress::kMinBytes * 4);
    EXPECT_FALSE(small.shown());
    EXPECT_FALSE(quiet.shown());
  }
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");

  testing::internal::CaptureStderr();
  {
    const size_t total = Progress::kMinBytes * 8;
    Progress p("packing", total, true);
    ASSERT_TRUE(p.shown());
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < 64; ++i) p.Add(total / 256);
      });
    }
    for (auto& t : threads) t.join();
  }
  const std::string out = testing::internal::GetCapturedStderr();
  std::vector<std::string> lines;
  size_t at = 0;
  for (size_t nl; (nl = out.find('\n', at)) != std::string::npos; at = nl + 1) {
    lines.push_back(out.substr(at, nl - at));
  }
  ASSERT_GE(lines.size(), 2u) << out;
  EXPECT_LE(lines.size(), 5u) << out;  // start, at most three quarters, end
  EXPECT_NE(lines.front().find("packing 512 MiB"), std::string::npos) << out;
  EXPECT_NE(lines.back().find("100%"), std::string::npos) << out;
  EXPECT_NE(lines.back().find("512/512 MiB"), std::string::npos) << out;
  EXPECT_EQ(out.find('\r'), std::string::npos) << "no carriage returns off a terminal";
}

}  // namespace
}  // namespace meshlm
