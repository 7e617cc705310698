// Reduction kernels; plain loops that the compiler vectorizes (this file builds at -O3).
#include "comm/reduce.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "base/check.h"

namespace meshlm::comm {
namespace {

template <typename T, ReduceOp kOp>
void Loop(T* __restrict d, const T* __restrict s, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if constexpr (kOp == ReduceOp::kSum) {
      if constexpr (std::is_integral_v<T>) {
        // Wrap instead of signed-overflow UB.
        using U = std::make_unsigned_t<T>;
        d[i] = static_cast<T>(static_cast<U>(d[i]) + static_cast<U>(s[i]));
      } else {
        d[i] = d[i] + s[i];
      }
    } else if constexpr (kOp == ReduceOp::kMax) {
      d[i] = d[i] < s[i] ? s[i] : d[i];
    } else {
      d[i] = s[i] < d[i] ? s[i] : d[i];
    }
  }
}

template <typename T>
void Dispatch(void* dst, const void* src, size_t n, ReduceOp op) {
  T* d = static_cast<T*>(dst);
  const T* s = static_cast<const T*>(src);
  switch (op) {
    case ReduceOp::kSum:
      Loop<T, ReduceOp::kSum>(d, s, n);
      return;
    case ReduceOp::kMax:
      Loop<T, ReduceOp::kMax>(d, s, n);
      return;
    case ReduceOp::kMin:
      Loop<T, ReduceOp::kMin>(d, s, n);
      return;
  }
}

// Halves: widen a block to f32, reduce, narrow. The block keeps the f32 copies in L1.
template <float (*kToF32)(uint16_t), uint16_t (*kFromF32)(float)>
void HalfReduce(void* dst, const void* src, size_t n, ReduceOp op) {
  constexpr size_t kBlock = 512;
  uint16_t* d = static_cast<uint16_t*>(dst);
  const uint16_t* s = static_cast<const uint16_t*>(src);
  float a[kBlock], b[kBlock];
  for (size_t i = 0; i < n; i += kBlock) {
    const size_t m = std::min(kBlock, n - i);
    for (size_t j = 0; j < m; ++j) {
      a[j] = kToF32(d[i + j]);
      b[j] = kToF32(s[i + j]);
    }
    Dispatch<float>(a, b, m, op);
    for (size_t j = 0; j < m; ++j) d[i + j] = kFromF32(a[j]);
  }
}

}  // namespace

void ReduceInto(void* dst, const void* src, size_t count, DType dtype, ReduceOp op) {
  switch (dtype) {
    case DType::kF32:
      Dispatch<float>(dst, src, count, op);
      return;
    case DType::kI32:
      Dispatch<int32_t>(dst, src, count, op);
      return;
    case DType::kI64:
      Dispatch<int64_t>(dst, src, count, op);
      return;
    case DType::kU8:
      Dispatch<uint8_t>(dst, src, count, op);
      return;
    case DType::kU32:
      Dispatch<uint32_t>(dst, src, count, op);
      return;
    case DType::kF16:
      HalfReduce<F16ToF32, F32ToF16>(dst, src, count, op);
      return;
    case DType::kBF16:
      HalfReduce<BF16ToF32, F32ToBF16>(dst, src, count, op);
      return;
  }
  MESHLM_CHECK(false, "bad dtype {}", static_cast<int>(dtype));
}

}  // namespace meshlm::comm
