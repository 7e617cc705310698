// StopMatcher: stop strings split across pieces are found and never emitted.
#include "engine/stop_strings.h"

#include <gtest/gtest.h>

namespace meshlm::engine {
namespace {

std::string Feed(StopMatcher& m, const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) {
    out += m.Push(p);
    if (m.stopped()) return out;
  }
  return out + m.Flush();
}

TEST(StopMatcher, NoStopsPassesEverythingAtOnce) {
  StopMatcher m({});
  EXPECT_EQ(m.Push("hello"), "hello");
  EXPECT_EQ(m.Push(" world"), " world");
  EXPECT_FALSE(m.stopped());
}

TEST(StopMatcher, StopAcrossPiecesIsCutAndNotEmitted) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.Push("abc E"), "abc ");  // "E" might start "END"
  EXPECT_EQ(m.Push("N"), "");
  EXPECT_EQ(m.Push("Dtail"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.Push("more"), "");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcher, FalseStartIsReleased) {
  StopMatcher m({"END"});
  EXPECT_EQ(Feed(m, {"x E", "NX", "y"}), "x ENXy");
  EXPECT_FALSE(m.stopped());
}

TEST(StopMatcher, EarliestOfSeveralWins) {
  StopMatcher m({"world", "lo w"});
  EXPECT_EQ(Feed(m, {"hel", "lo", " wor", "ld"}), "hel");
}

TEST(StopMatcher, HeldTailFlushedAtEnd) {
  StopMatcher m({"</s>"});
  EXPECT_EQ(m.Push("a</"), "a");
  EXPECT_EQ(m.Flush(), "</");
}

}  // namespace
}  // namespace meshlm::engine
