// Quantize → dequantize round trips per layout, hand-built blocks, and column slices.
#include "tensor/quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace meshlm {
namespace {

std::vector<float> Random(std::mt19937& rng, size_t n, float scale) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

// Largest error allowed per element, relative to the largest |x| of the block: half a
// quantization step plus the rounding of scales to f16 / 6 bits.
double Tolerance(QuantType t) {
  switch (t) {
    case QuantType::kQ8_0:
      return 0.5 / 127 + 1e-3;
    case QuantType::kQ4_0:
      return 1.0 / 8 + 1e-3;  // -max maps to 8, clamped to 7
    case QuantType::kQ4_K:
      return 2.0 / 15 + 0.05;  // scales and mins rounded to 6 bits
    case QuantType::kQ6_K:
      return 0.5 / 31 + 0.02;
    default:
      return 0;
  }
}

class GgufRoundTrip : public ::testing::TestWithParam<QuantType> {};

TEST_P(GgufRoundTrip, ErrorWithinHalfAStep) {
  const QuantType t = GetParam();
  std::mt19937 rng(std::random_device{}());
  const size_t be = QuantBlockElems(t), n = be * 8;
  for (float scale : {0.02f, 1.0f, 300.0f}) {
    const std::vector<float> x = Random(rng, n, scale);
    std::vector<uint8_t> q(QuantRowBytes(t, n));
    QuantizeRowGguf(t, x.data(), n, q.data());
    std::vector<float> y(n);
    DequantizeRowGguf(t, q.data(), n, y.data());
    for (size_t b = 0; b < n / be; ++b) {
      float amax = 0;
      for (size_t i = 0; i < be; ++i) amax = std::max(amax, std::fabs(x[b * be + i]));
      for (size_t i = 0; i < be; ++i) {
        ASSERT_NEAR(y[b * be + i], x[b * be + i], Tolerance(t) * amax)
            << QuantTypeName(t) << " scale " << scale << " element " << b * be + i;
      }
    }
    // Through the matrix view too.
    Matrix w{t, q.data(), 1, n, q.size()};
    ASSERT_TRUE(ValidateQuantMatrix(w, "x").ok());
    std::vector<float> z(n);
    DequantizeRow(w, 0, z.data());
    EXPECT_EQ(0, std::memcmp(y.data(), z.data(), n * sizeof(float)));
  }
}

INSTANTIATE_TEST_SUITE_P(Types, GgufRoundTrip,
                         ::testing::Values(QuantType::kQ8_0, QuantType::kQ4_0, QuantType::kQ4_K,
                                           QuantType::kQ6_K),
                         [](const auto& info) { return std::string(QuantTypeName(info.param)); });

TEST(Quant, HandBuiltBlocksDecodeAsPublished) {
  BlockQ4_0 b40{};
  b40.d = F32ToF16(0.5f);
  b40.qs[0] = 0x3C;  // weight 0: 12 → 0.5 * 4; weight 16: 3 → 0.5 * -5
  float y[256];
  DequantizeRowGguf(QuantType::kQ4_0, reinterpret_cast<uint8_t*>(&b40), 32, y);
  EXPECT_EQ(y[0], 2.0f);
  EXPECT_EQ(y[16], -2.5f);
  EXPECT_EQ(y[1], -4.0f);

  BlockQ4_K bk{};
  bk.d = F32ToF16(1.0f);
  bk.dmin = F32ToF16(0.25f);
  // Sub-block 5: scale 0x23 = 35 (low 4 bits in scales[9], high 2 bits in scales[1] bits 6-7),
  // min 0x12 = 18 (low 4 in scales[9] high nibble, high 2 in scales[5] bits 6-7).
  bk.scales[9] = 0x3 | (0x2 << 4);
  bk.scales[1] = 0x2 << 6;
  bk.scales[5] = 0x1 << 6;
  bk.qs[64 + 7] = 0x90;  // sub-block 5 is the high nibble of bytes 64..95: weight 160 + 7 = 9
  DequantizeRowGguf(QuantType::kQ4_K, reinterpret_cast<uint8_t*>(&bk), 256, y);
  EXPECT_EQ(y[167], 35.0f * 9 - 0.25f * 18);
  EXPECT_EQ(y[166], -0.25f * 18);

  BlockQ6_K b6{};
  b6.d = F32ToF16(2.0f);
  b6.scales[8 + 4] = -3;     // second half, weights 64..79 of that half use scales[8 + 4]
  b6.ql[64 + 5] = 0x70;      // weight 128 + 64 + 5: low 4 bits from the high nibble = 7
  b6.qh[32 + 5] = 0x2 << 4;  // high 2 bits = 2 → q = 7 + 32 = 39 → 39 - 32 = 7
  DequantizeRowGguf(QuantType::kQ6_K, reinterpret_cast<uint8_t*>(&b6), 256, y);
  EXPECT_EQ(y[197], 2.0f * -3 * 7);
}

TEST(Quant, MlxRoundTripAllGroupSizesAndScaleTypes) {
  std::mt19937 rng(std::random_device{}());
  for (int bits : {4, 8}) {
    for (size_t gs : {32u, 64u, 128u}) {
      for (DType st : {DType::kF32, DType::kF16, DType::kBF16}) {
        const size_t rows = 3, cols = 256;
        const std::vector<float> x = Random(rng, rows * cols, 0.5f);
        std::vector<uint32_t> packed(rows * cols * bits / 32);
        std::vector<float> s(rows * cols / gs), b(rows * cols / gs);
        for (size_t r = 0; r < rows; ++r) {
          QuantizeRowMlx(bits, gs, x.data() + r * cols, cols, packed.data() + r * cols * bits / 32,
                         s.data() + r * cols / gs, b.data() + r * cols / gs);
        }
        std::vector<uint16_t> s16(s.size()), b16(b.size());
        for (size_t i = 0; i < s.size(); ++i) {
          s16[i] = st == DType::kF16 ? F32ToF16(s[i]) : F32ToBF16(s[i]);
          b16[i] = st == DType::kF16 ? F32ToF16(b[i]) : F32ToBF16(b[i]);
        }
        const bool f32 = st == DType::kF32;
        Matrix w{bits == 4 ? QuantType::kMlx4 : QuantType::kMlx8,
                 reinterpret_cast<const uint8_t*>(packed.data()),
                 rows,
                 cols,
                 cols * bits / 8,
                 f32 ? (const void*)s.data() : s16.data(),
                 f32 ? (const void*)b.data() : b16.data(),
                 st,
                 gs,
                 cols / gs};
        ASSERT_TRUE(ValidateQuantMatrix(w, "w").ok());
        std::vector<float> y(cols);
        for (size_t r = 0; r < rows; ++r) {
          DequantizeRow(w, r, y.data());
          for (size_t i = 0; i < cols; ++i) {
            const size_t g = r * cols / gs + i / gs;
            // Half a step, plus scale/bias rounding to 16 bits over the 2^bits levels.
            const double tol =
                s[g] * 0.51 + (f32 ? 0 : 0.01 * (std::fabs(b[g]) + s[g] * (1 << bits)));
            ASSERT_NEAR(y[i], x[r * cols + i], tol) << bits << " bits gs " << gs << " row " << r;
          }
        }
      }
    }
  }
}

TEST(Quant, SlicesFollowBlocksAndRejectMisalignedSplits) {
  std::mt19937 rng(std::random_device{}());
  const size_t rows = 4, cols = 512;
  const std::vector<float> x = Random(rng, rows * cols, 1.0f);
  const size_t rb = QuantRowBytes(QuantType::kQ4_K, cols);
  std::vector<uint8_t> q(rows * rb);
  for (size_t r = 0; r < rows; ++r) {
    QuantizeRowGguf(QuantType::kQ4_K, x.data() + r * cols, cols, q.data() + r * rb);
  }
  Matrix w{QuantType::kQ4_K, q.data(), rows, cols, rb};
  auto half = SliceColumns(w, 256, 256);
  ASSERT_TRUE(half.ok());
  std::vector<float> full(cols), part(256);
  DequantizeRow(w, 2, full.data());
  DequantizeRow(SliceRows(*half, 1, 3), 1, part.data());
  EXPECT_EQ(0, std::memcmp(full.data() + 256, part.data(), 256 * sizeof(float)));
  auto bad = SliceColumns(w, 128, 256);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("256"), std::string::npos) << bad.status().message();
  Matrix odd{QuantType::kQ8_0, q.data(), 1, 48, 100};
  EXPECT_FALSE(ValidateQuantMatrix(odd, "odd").ok());
}

}  // namespace
}  // namespace meshlm
