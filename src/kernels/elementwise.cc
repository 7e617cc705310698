// Element-wise kernels of kernels.h, one instantiation per Highway target.
#include <cmath>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/elementwise.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must come after foreach_target.h.
#include "kernels/elementwise-inl.h"
#include "kernels/kernels.h"

HWY_BEFORE_NAMESPACE();
namespace meshlm::kernels::HWY_NAMESPACE {

void RmsNormTarget(const float* x, const float* weight, size_t rows, size_t n, float eps,
                   float* out) {
  RmsNormImpl(x, weight, rows, n, eps, out);
}
void ApplyRopeTarget(float* x, size_t T, size_t H, size_t Dh, const float* cos, const float* sin) {
  ApplyRopeImpl(x, T, H, Dh, cos, sin);
}
void SiluMulTarget(const float* gate, const float* up, size_t n, float* out) {
  SiluMulImpl(gate, up, n, out);
}
void AddInPlaceTarget(float* y, const float* x, size_t n) { AddInPlaceImpl(y, x, n); }
void SoftmaxTarget(float* x, size_t n) { SoftmaxImpl(x, n); }
void ConvertToF32Target(const void* src, DType dtype, size_t n, float* out) {
  ConvertToF32Impl(src, dtype, n, out);
}
// table: [V, D]; out: [T, D].
void EmbeddingLookupTarget(const Matrix& table, const int32_t* ids, size_t T, float* out) {
  for (size_t t = 0; t < T; ++t) {
    const uint8_t* row = table.data + ids[t] * table.row_stride;
    ConvertToF32Impl(row, table.dtype, table.cols, out + t * table.cols);
  }
}

}  // namespace meshlm::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "base/check.h"
#include "kernels/quant_matmul.h"

namespace meshlm::kernels {

HWY_EXPORT(RmsNormTarget);
HWY_EXPORT(ApplyRopeTarget);
HWY_EXPORT(SiluMulTarget);
HWY_EXPORT(AddInPlaceTarget);
HWY_EXPORT(SoftmaxTarget);
HWY_EXPORT(ConvertToF32Target);
HWY_EXPORT(EmbeddingLookupTarget);

void RmsNorm(const float* x, const float* weight, size_t rows, size_t n, float eps, float* out) {
  HWY_DYNAMIC_DISPATCH(RmsNormTarget)(x, weight, rows, n, eps, out);
}

// The angle is rounded to f32 before cos/sin, as Hugging Face computes it, so that long
// positions give the same (slightly off) angles as the reference.
void RopeTable(const int32_t* positions, size_t T, const float* inv_freq, size_t half,
               float* cos_out, float* sin_out) {
  for (size_t t = 0; t < T; ++t) {
    const float pos = static_cast<float>(positions[t]);
    for (size_t i = 0; i < half; ++i) {
      const float angle = pos * inv_freq[i];
      cos_out[t * half + i] = std::cos(angle);
      sin_out[t * half + i] = std::sin(angle);
    }
  }
}

void ApplyRope(float* x, size_t T, size_t num_heads, size_t head_dim, const float* cos,
               const float* sin) {
  HWY_DYNAMIC_DISPATCH(ApplyRopeTarget)(x, T, num_heads, head_dim, cos, sin);
}

void SiluMul(const float* gate, const float* up, size_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(SiluMulTarget)(gate, up, n, out);
}

void AddInPlace(float* y, const float* x, size_t n) {
  HWY_DYNAMIC_DISPATCH(AddInPlaceTarget)(y, x, n);
}

void Softmax(float* x, size_t n) { HWY_DYNAMIC_DISPATCH(SoftmaxTarget)(x, n); }

void EmbeddingLookup(const Matrix& table, const int32_t* ids, size_t T, float* out) {
  if (table.quant) {
    QuantEmbeddingLookup(table, ids, T, out);
    return;
  }
  MESHLM_CHECK(
      table.dtype == DType::kF32 || table.dtype == DType::kF16 || table.dtype == DType::kBF16,
      "[embedding] dtype {} unsupported", DTypeName(table.dtype));
  HWY_DYNAMIC_DISPATCH(EmbeddingLookupTarget)(table, ids, T, out);
}

void ConvertToF32(const void* src, DType dtype, size_t n, float* out) {
  MESHLM_CHECK(dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16,
               "[convert] dtype {} unsupported", DTypeName(dtype));
  HWY_DYNAMIC_DISPATCH(ConvertToF32Target)(src, dtype, n, out);
}

}  // namespace meshlm::kernels
#endif  // HWY_ONCE
