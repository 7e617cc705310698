// MatMul for f16 weights, one instantiation per Highway target (see matmul_typed-inl.h).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_f16.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must come after foreach_target.h.
#define MESHLM_MATMUL_WEIGHT hwy::float16_t
#define MESHLM_MATMUL_NAME MatMulF16
#include "kernels/matmul_typed-inl.h"
