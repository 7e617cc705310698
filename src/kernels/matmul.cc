// MatMul: picks the kernel for the weight dtype and the number of rows of x.
#include "base/check.h"
#include "kernels/kernels.h"
#include "kernels/matmul_internal.h"
#include "kernels/quant_matmul.h"

namespace meshlm::kernels {
namespace {
// Below this many rows of x, bf16 weights go through the f32-activation path: decode is
// bound by memory bandwidth, not arithmetic, so rounding x to bf16 would buy nothing and
// cost accuracy. Prefill is bound by arithmetic, where vdpbf16ps does twice the work of
// an f32 FMA per instruction.
constexpr size_t kMinRowsForBf16Dot = 16;
}  // namespace

void MatMul(const float* x, size_t T, const Matrix& w, const float* bias, float* y,
            ThreadPool& pool) {
  if (w.quant) {
    if (T == 0 || w.rows == 0) return;
    QuantMatMul(x, T, w, bias, y, pool);
    return;
  }
  // The dense kernels step through rows in elements.
  const size_t es = DTypeSize(w.dtype);
  MESHLM_CHECK(w.row_stride >= w.cols * es && w.row_stride % es == 0,
               "row_stride {} bytes does not fit {} columns of {}", w.row_stride, w.cols,
               DTypeName(w.dtype));
  if (T == 0 || w.rows == 0) return;
  switch (w.dtype) {
    case DType::kF32:
      MatMulF32(x, T, w, bias, y, pool);
      return;
    case DType::kF16:
      MatMulF16(x, T, w, bias, y, pool);
      return;
    case DType::kBF16:
      if (T >= kMinRowsForBf16Dot && NativeBf16Enabled()) {
        x86::MatMulBF16Dot(x, T, w, bias, y, pool);
      } else {
        MatMulBF16(x, T, w, bias, y, pool);
      }
      return;
    default:
      MESHLM_CHECK(false, "[matmul] weight dtype {} unsupported", DTypeName(w.dtype));
  }
}

void MatMulMany(const MatMulJob* jobs, size_t n, ThreadPool& pool) {
  if (n == 0 || QuantMatMulMany(jobs, n, pool)) return;
  for (size_t i = 0; i < n; ++i) {
    MatMul(jobs[i].x, jobs[i].T, *jobs[i].w, nullptr, jobs[i].y, pool);
  }
}

}  // namespace meshlm::kernels
