// Tests for Status and Result.
#include "base/status.h"

#include <gtest/gtest.h>

namespace meshlm {
namespace {

Result<int> Parse(int v) {
  if (v < 0) return Error("[test] value {} is negative", v);
  return v * 2;
}

Status UseParse(int v, int* out) {
  MESHLM_ASSIGN_OR_RETURN(*out, Parse(v));
  return OkStatus();
}

TEST(Status, ResultCarriesValueOrError) {
  auto ok = Parse(3);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok.value(), 6);
  auto bad = Parse(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "[test] value -1 is negative");
}

TEST(Status, AssignOrReturnPropagates) {
  int out = 0;
  EXPECT_TRUE(UseParse(4, &out).ok());
  EXPECT_EQ(out, 8);
  Status s = UseParse(-2, &out);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.With("[cli]").message(), "[cli]: [test] value -2 is negative");
}

}  // namespace
}  // namespace meshlm
