// Helpers shared by the kernel tests: random inputs and a loop over SIMD targets.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "base/dtype.h"

namespace meshlm::kernels::testing {

/// n floats uniform in [lo, hi), none of them zero.
inline std::vector<float> RandomFloats(std::mt19937& rng, size_t n, float lo = -1.0f,
                                       float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) {
    do {
      f = dist(rng);
    } while (f == 0.0f);
  }
  return v;
}

/// Weight storage of `dtype` (as uint16_t or float bits) plus the exact f32 values it
/// holds, for references.
struct RandomMatrix {
  std::vector<uint8_t> bytes;
  std::vector<float> values;  // [rows, row_stride], exact values of bytes
  Matrix weight;
};

inline RandomMatrix MakeRandomMatrix(std::mt19937& rng, DType dtype, size_t rows, size_t cols,
                                     size_t row_stride) {
  RandomMatrix m;
  m.values = RandomFloats(rng, rows * row_stride);
  m.bytes.resize(rows * row_stride * DTypeSize(dtype));
  for (size_t i = 0; i < m.values.size(); ++i) {
    if (dtype == DType::kF32) {
      std::memcpy(m.bytes.data() + 4 * i, &m.values[i], 4);
    } else {
      const uint16_t h = dtype == DType::kBF16 ? F32ToBF16(m.values[i]) : F32ToF16(m.values[i]);
      m.values[i] = dtype == DType::kBF16 ? BF16ToF32(h) : F16ToF32(h);
      std::memcpy(m.bytes.data() + 2 * i, &h, 2);
    }
  }
  m.weight.data = m.bytes.data();
  m.weight.dtype = dtype;
  m.weight.rows = rows;
  m.weight.cols = cols;
  m.weight.row_stride = row_stride * DTypeSize(dtype);  // elements to bytes
  return m;
}

/// Runs fn once per SIMD target compiled in and supported here, with that target
/// forced; restores the automatic choice afterwards.
template <class Fn>
void ForEachTarget(const Fn& fn) {
  for (const std::string& target : SupportedTargets()) {
    SCOPED_TRACE("target " + target);
    ASSERT_TRUE(SetTarget(target));
    ASSERT_EQ(CurrentTarget(), target);
    fn(target);
  }
  SetTarget("");
}

}  // namespace meshlm::kernels::testing
