// Tests for half-precision conversions against the compiler's own _Float16 and bit logic.
#include "base/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace meshlm {
namespace {

TEST(DType, F16RoundTripsEveryHalfValue) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = F16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(F32ToF16(f), h) << "half bits " << h;
  }
}

TEST(DType, F16MatchesCompilerConversion) {
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> dist(-70000.f, 70000.f);
  std::uniform_real_distribution<float> small(-1e-4f, 1e-4f);
  for (int i = 0; i < 200000; ++i) {
    const float f = (i % 2) ? dist(rng) : small(rng);
    const _Float16 ref = static_cast<_Float16>(f);
    uint16_t ref_bits;
    std::memcpy(&ref_bits, &ref, 2);
    ASSERT_EQ(F32ToF16(f), ref_bits) << f;
    ASSERT_EQ(F16ToF32(ref_bits), static_cast<float>(ref));
  }
}

TEST(DType, BF16RoundsToNearestEven) {
  std::mt19937 rng(99);
  std::uniform_real_distribution<float> dist(-10.f, 10.f);
  for (int i = 0; i < 100000; ++i) {
    const float f = dist(rng);
    const uint16_t b = F32ToBF16(f);
    const float back = BF16ToF32(b);
    // The neighbours of the rounded value must not be closer to f.
    const float up = BF16ToF32(static_cast<uint16_t>(b + 1));
    const float down = BF16ToF32(static_cast<uint16_t>(b - 1));
    ASSERT_LE(std::fabs(back - f), std::fabs(up - f));
    ASSERT_LE(std::fabs(back - f), std::fabs(down - f));
  }
  EXPECT_EQ(F32ToBF16(1.0f), 0x3f80);
}

TEST(DType, SafetensorsNames) {
  EXPECT_EQ(DTypeFromSafetensors("BF16"), DType::kBF16);
  EXPECT_EQ(DTypeFromSafetensors("F8_E4M3"), std::nullopt);
  EXPECT_EQ(DTypeSize(DType::kI64), 8u);
}

}  // namespace
}  // namespace meshlm
