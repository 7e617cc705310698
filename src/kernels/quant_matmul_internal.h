// Shared pieces of the quantized matmul: int8 activation blocks and the per-path kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "tensor/quant.h"

namespace meshlm::kernels {

constexpr size_t kActBlock = 32;

/// x: [T, K] f32 quantized per block of 32 for one weight type.
/// q: [T, K] int8, d: [T, K/32] scales, sum: [T, K/32] = d · Σ q of each block, for the
/// min/bias terms of Q4_K and MLX (the sum of the rounded x, not of x: then the result is
/// exactly Σ w · x̂, and rounding errors do not add up over the offset those terms
/// remove), corr: [T, K/32, 8] = -offset · Σ of each 4
/// consecutive q, where offset is the zero point of the weight type's unsigned quants
/// (128 for Q8_0 read as x ^ 0x80, 8 for Q4_0, 32 for Q6_K, 0 otherwise). vpdpbusd
/// starting from corr thus yields Σ (u - offset) · a exactly.
/// For MLX 4-bit, q is stored in the order its nibbles lie: within each block the 16 even
/// elements, then the 16 odd ones.
struct QuantActs {
  size_t T = 0, K = 0, nb = 0;
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<float> sum;
  std::vector<int32_t> corr;
  /// [T, K/32]: -offset · Σ q of each block (the whole block's corr), for packed weights.
  std::vector<int32_t> bcorr;
  /// [T, K/32, 2]: the same for each half of a block (packed Q6_K, a scale per 16).
  std::vector<int32_t> hcorr;
};

/// The zero point described above.
int ActOffset(QuantType t);

/// Fills a for x: [T, K], for weights of type t. Portable and x86 produce equal bytes.
void QuantizeActs(const float* x, size_t T, size_t K, QuantType t, QuantActs* a);
/// Sets a's sizes for x: [T, K].
void ResizeActs(size_t T, size_t K, QuantActs* a);
/// Fills a->hcorr from a->corr.
void HalfCorrections(QuantActs* a);

/// y[t * ldy + n] = Σ_k a[t, k] · w[n, k] for n in [n0, n1), t < a.T (no bias).
void QuantDotRowsPortable(const Matrix& w, size_t n0, size_t n1, const QuantActs& a, float* y,
                          size_t ldy);

namespace x86 {
/// Whether the CPU has AVX512F/BW/VL, AVX512-VNNI and F16C.
bool QuantVnniSupported();
/// As QuantizeActs, with AVX-512; call only if QuantVnniSupported().
void QuantizeActsVnni(const float* x, size_t T, size_t K, QuantType t, QuantActs* a);
/// As QuantDotRowsPortable; call only if QuantVnniSupported().
void QuantDotRowsVnni(const Matrix& w, size_t n0, size_t n1, const QuantActs& a, float* y,
                      size_t ldy);
/// As QuantDotRowsVnni for packed weights, rows [kPackRows · g0, kPackRows · g1).
void QuantDotGroupsVnni(const Matrix& w, size_t g0, size_t g1, const QuantActs& a, float* y,
                        size_t ldy);

/// Whether the CPU has AVX2, FMA and F16C.
bool QuantAvx2Supported();
/// Whether the AVX2 kernels read w: Q8_0 and Q4_0 in the file layout (QuantDotRowsAvx2),
/// every packed type (QuantDotGroupsAvx2).
bool QuantAvx2Handles(const Matrix& w);
/// As QuantizeActs (the same bytes) for every type but MLX 4-bit; call only if
/// QuantAvx2Supported().
void QuantizeActsAvx2(const float* x, size_t T, size_t K, QuantType t, QuantActs* a);
/// As QuantDotRowsPortable for weights QuantAvx2Handles; call only if QuantAvx2Supported().
void QuantDotRowsAvx2(const Matrix& w, size_t n0, size_t n1, const QuantActs& a, float* y,
                      size_t ldy);
/// As QuantDotGroupsVnni; call only if QuantAvx2Supported().
void QuantDotGroupsAvx2(const Matrix& w, size_t g0, size_t g1, const QuantActs& a, float* y,
                        size_t ldy);
}  // namespace x86

}  // namespace meshlm::kernels
