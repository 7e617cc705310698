// One weight type's MatMul: the per-target instantiation of MatMulT and its run-time
// dispatch, shared by matmul_f32.cc, matmul_f16.cc and matmul_bf16.cc.
//
// Each of those files is its own translation unit (builds run in parallel, and each holds
// one dtype's kernels for every target in memory). It defines MESHLM_MATMUL_WEIGHT (the
// weight element type) and MESHLM_MATMUL_NAME (the entry point declared in
// matmul_internal.h), points HWY_TARGET_INCLUDE at itself, includes hwy/foreach_target.h
// and then this file, which is read once per target and so has no include guard.

#ifndef MESHLM_MATMUL_WEIGHT
#error "define MESHLM_MATMUL_WEIGHT and MESHLM_MATMUL_NAME before including matmul_typed-inl.h"
#endif

#include "kernels/matmul-inl.h"

#define MESHLM_MATMUL_PASTE_(a, b) a##b
#define MESHLM_MATMUL_PASTE(a, b) MESHLM_MATMUL_PASTE_(a, b)
#define MESHLM_MATMUL_TARGET MESHLM_MATMUL_PASTE(MESHLM_MATMUL_NAME, Target)

HWY_BEFORE_NAMESPACE();
namespace meshlm::kernels::HWY_NAMESPACE {

// x: [T, K] f32; w: [N, K] MESHLM_MATMUL_WEIGHT; y: [T, N] f32.
void MESHLM_MATMUL_TARGET(const float* x, size_t T, const Matrix& w, const float* bias, float* y,
                          ThreadPool& pool) {
  MatMulT<MESHLM_MATMUL_WEIGHT>(x, T, w, bias, y, pool);
}

}  // namespace meshlm::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/matmul_internal.h"

namespace meshlm::kernels {

HWY_EXPORT(MESHLM_MATMUL_TARGET);

void MESHLM_MATMUL_NAME(const float* x, size_t T, const Matrix& w, const float* bias, float* y,
                        ThreadPool& pool) {
  HWY_DYNAMIC_DISPATCH(MESHLM_MATMUL_TARGET)(x, T, w, bias, y, pool);
}

}  // namespace meshlm::kernels
#endif  // HWY_ONCE

#undef MESHLM_MATMUL_TARGET
#undef MESHLM_MATMUL_PASTE
#undef MESHLM_MATMUL_PASTE_
#undef MESHLM_MATMUL_NAME
#undef MESHLM_MATMUL_WEIGHT
