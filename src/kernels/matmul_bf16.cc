// MatMul for bf16 weights, one instantiation per Highway target.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_bf16.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must come after foreach_target.h.
#include "kernels/matmul-inl.h"

HWY_BEFORE_NAMESPACE();
namespace meshlm::kernels::HWY_NAMESPACE {

void MatMulBF16Target(const float* x, size_t T, const Weight& w, const float* bias, float* y,
                      ThreadPool& pool) {
  MatMulT<hwy::bfloat16_t>(x, T, w, bias, y, pool);
}

}  // namespace meshlm::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/matmul_internal.h"

namespace meshlm::kernels {

HWY_EXPORT(MatMulBF16Target);

void MatMulBF16(const float* x, size_t T, const Weight& w, const float* bias, float* y,
                ThreadPool& pool) {
  HWY_DYNAMIC_DISPATCH(MatMulBF16Target)(x, T, w, bias, y, pool);
}

}  // namespace meshlm::kernels
#endif  // HWY_ONCE
