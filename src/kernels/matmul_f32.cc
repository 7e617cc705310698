// MatMul for f32 weights, one instantiation per Highway target (see matmul_typed-inl.h).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_f32.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must come after foreach_target.h.
#define MESHLM_MATMUL_WEIGHT float
#define MESHLM_MATMUL_NAME MatMulF32
#include "kernels/matmul_typed-inl.h"
