// Per-dtype MatMul entry points behind kernels::MatMul, and the x86 bf16 dot path.
#pragma once

#include <cstddef>

#include "base/thread_pool.h"
#include "kernels/kernels.h"

namespace meshlm::kernels {

// Each dispatches once to the current Highway target. Shapes as for MatMul.
void MatMulF32(const float* x, size_t T, const Matrix& w, const float* bias, float* y,
               ThreadPool& pool);
void MatMulF16(const float* x, size_t T, const Matrix& w, const float* bias, float* y,
               ThreadPool& pool);
void MatMulBF16(const float* x, size_t T, const Matrix& w, const float* bias, float* y,
                ThreadPool& pool);

// Whether this CPU and the current target allow the AVX512_BF16 path.
bool NativeBf16Available();
// NativeBf16Available() and not switched off with SetNativeBf16(false).
bool NativeBf16Enabled();

namespace x86 {
// x: [T, K] f32, rounded to bf16 inside; w: [N, K] bf16. Uses vdpbf16ps; call only if
// NativeBf16Available().
void MatMulBF16Dot(const float* x, size_t T, const Matrix& w, const float* bias, float* y,
                   ThreadPool& pool);
}  // namespace x86

}  // namespace meshlm::kernels
