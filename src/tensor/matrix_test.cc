// Matrix views: row and column slices and byte counts of dense, GGUF, MLX and packed forms.
#include "tensor/matrix.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tensor/quant.h"

namespace meshlm {
namespace {

// A dense slice points at the element it starts with and keeps the parent's row stride.
TEST(Matrix, DenseSlicesAreViewsWithTheParentStride) {
  std::mt19937 rng(std::random_device{}());
  const size_t rows = 6, cols = 10;
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
    SCOPED_TRACE(DTypeName(dt));
    std::vector<uint8_t> bytes(rows * cols * DTypeSize(dt));
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
    const Matrix m = ContiguousMatrix(bytes.data(), dt, std::nullopt, rows, cols);
    EXPECT_EQ(m.row_stride, cols * DTypeSize(dt));
    EXPECT_EQ(MatrixBytes(m), bytes.size());
    const Matrix r = SliceRows(m, 2, 3);
    EXPECT_EQ(r.data, bytes.data() + 2 * m.row_stride);
    EXPECT_EQ(r.rows, 3u);
    auto c = SliceColumns(r, 4, 5);
    ASSERT_TRUE(c.ok()) << c.status().message();
    EXPECT_EQ(c->data, r.data + 4 * DTypeSize(dt));
    EXPECT_EQ(c->cols, 5u);
    EXPECT_EQ(c->row_stride, m.row_stride);
    EXPECT_EQ(RowBytes(*c), 5 * DTypeSize(dt));
    EXPECT_EQ(MatrixBytes(*c), 3 * 5 * DTypeSize(dt));
    auto beyond = SliceColumns(m, 6, 5);
    ASSERT_FALSE(beyond.ok());
    EXPECT_NE(beyond.status().message().find("beyond 10"), std::string::npos)
        << beyond.status().message();
  }
}

// MLX slices move the scales and biases with the words; byte counts include both.
TEST(Matrix, MlxSlicesMoveScalesAndBiases) {
  const size_t rows = 4, cols = 256, gs = 64;
  std::vector<uint8_t> words(rows * QuantRowBytes(QuantType::kMlx4, cols));
  std::vector<uint16_t> scales(rows * cols / gs), biases(rows * cols / gs);
  Matrix m = ContiguousMatrix(words.data(), DType::kU32, QuantType::kMlx4, rows, cols);
  m.scales = scales.data();
  m.biases = biases.data();
  m.scale_dtype = DType::kF16;
  m.group_size = gs;
  m.scale_stride = cols / gs;
  EXPECT_EQ(MatrixBytes(m), words.size() + 2 * scales.size() * sizeof(uint16_t));
  auto s = SliceColumns(SliceRows(m, 1, 2), 128, 128);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->data, words.data() + m.row_stride + 128 / 2);
  EXPECT_EQ(s->scales, scales.data() + 1 * m.scale_stride + 2);
  EXPECT_EQ(s->biases, biases.data() + 1 * m.scale_stride + 2);
  EXPECT_EQ(MatrixBytes(*s), 2 * 64 + 2 * 2 * 2 * sizeof(uint16_t));
  auto bad = SliceColumns(m, 32, 64);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("multiples of 64"), std::string::npos)
      << bad.status().message();
}

// Packed matrices slice on whole groups of kPackRows and count their groups' bytes.
TEST(Matrix, PackedSlicesTakeWholeGroups) {
  const size_t rows = 2 * kPackRows, cols = 64;
  const size_t gb = PackedGroupBytes(QuantType::kQ8_0, cols);
  std::vector<uint8_t> bytes(rows / kPackRows * gb);
  Matrix p;
  p.quant = QuantType::kQ8_0;
  p.data = bytes.data();
  p.rows = rows;
  p.cols = cols;
  p.row_stride = gb;
  p.packed = true;
  EXPECT_EQ(MatrixBytes(p), bytes.size());
  const Matrix second = SliceRows(p, kPackRows, kPackRows);
  EXPECT_EQ(second.data, bytes.data() + gb);
  EXPECT_EQ(MatrixBytes(second), gb);
  EXPECT_FALSE(SliceColumns(p, 0, 32).ok());
}

}  // namespace
}  // namespace meshlm
