// Stub of the x86 intrinsics paths for other architectures, where NativeBf16Available()
// is false and they are never called.
#include "base/check.h"
#include "kernels/matmul_internal.h"

namespace meshlm::kernels::x86 {

void MatMulBF16Dot(const float*, size_t, const Matrix&, const float*, float*, ThreadPool&) {
  MESHLM_CHECK(false, "[matmul] AVX512_BF16 path called on a non-x86 build");
}

}  // namespace meshlm::kernels::x86
