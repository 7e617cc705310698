// MatMul for f16 weights, one instantiation per Highway target.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_f16.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must come after foreach_target.h.
#include "kernels/matmul-inl.h"

HWY_BEFORE_NAMESPACE();
namespace meshlm::kernels::HWY_NAMESPACE {

void MatMulF16Target(const float* x, size_t T, const Weight& w, const float* bias, float* y,
                     ThreadPool& pool) {
  MatMulT<hwy::float16_t>(x, T, w, bias, y, pool);
}

}  // namespace meshlm::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/matmul_internal.h"

namespace meshlm::kernels {

HWY_EXPORT(MatMulF16Target);

void MatMulF16(const float* x, size_t T, const Weight& w, const float* bias, float* y,
               ThreadPool& pool) {
  HWY_DYNAMIC_DISPATCH(MatMulF16Target)(x, T, w, bias, y, pool);
}

}  // namespace meshlm::kernels
#endif  // HWY_ONCE
