// MatMul for bf16 weights, one instantiation per Highway target (see matmul_typed-inl.h).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_bf16.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must come after foreach_target.h.
#define MESHLM_MATMUL_WEIGHT hwy::bfloat16_t
#define MESHLM_MATMUL_NAME MatMulBF16
#include "kernels/matmul_typed-inl.h"
