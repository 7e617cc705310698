// Stub of the x86 quantized-matmul path for other architectures, where
// QuantVnniSupported() is false and the kernel is never called.
#include "base/check.h"
#include "kernels/quant_matmul_internal.h"

namespace meshlm::kernels::x86 {

bool QuantVnniSupported() { return false; }
bool QuantAvx2Supported() { return false; }
bool QuantAvx2Handles(const Matrix&) { return false; }

void QuantizeActsAvx2(const float*, size_t, size_t, QuantType, QuantActs*) {
  MESHLM_CHECK(false, "[quant_matmul] AVX2 path called on a non-x86 build");
}

void QuantDotRowsAvx2(const Matrix&, size_t, size_t, const QuantActs&, float*, size_t) {
  MESHLM_CHECK(false, "[quant_matmul] AVX2 path called on a non-x86 build");
}

void QuantDotGroupsAvx2(const Matrix&, size_t, size_t, const QuantActs&, float*, size_t) {
  MESHLM_CHECK(false, "[quant_matmul] AVX2 path called on a non-x86 build");
}

void QuantizeActsVnni(const float*, size_t, size_t, QuantType, QuantActs*) {
  MESHLM_CHECK(false, "[quant_matmul] VNNI path called on a non-x86 build");
}

void QuantDotRowsVnni(const Matrix&, size_t, size_t, const QuantActs&, float*, size_t) {
  MESHLM_CHECK(false, "[quant_matmul] VNNI path called on a non-x86 build");
}

void QuantDotGroupsVnni(const Matrix&, size_t, size_t, const QuantActs&, float*, size_t) {
  MESHLM_CHECK(false, "[quant_matmul] VNNI path called on a non-x86 build");
}

}  // namespace meshlm::kernels::x86
