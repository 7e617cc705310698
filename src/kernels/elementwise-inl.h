// Highway kernels that touch each element once: norms, rope, activations, softmax,
// conversions.

#if defined(MESHLM_KERNELS_ELEMENTWISE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef MESHLM_KERNELS_ELEMENTWISE_INL_H_
#undef MESHLM_KERNELS_ELEMENTWISE_INL_H_
#else
#define MESHLM_KERNELS_ELEMENTWISE_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "base/dtype.h"

HWY_BEFORE_NAMESPACE();
namespace meshlm::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Room for one vector of any target, for tails copied out of and back into arrays.
constexpr size_t kMaxFloatLanes = 64;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Loads the n < Lanes(df) floats at p, zeros after them.
HWY_INLINE VF LoadTail(DF df, const float* p, size_t n) {
  alignas(64) float buf[kMaxFloatLanes] = {};
  std::memcpy(buf, p, n * sizeof(float));
  return hn::Load(df, buf);
}
HWY_INLINE void StoreTail(DF df, VF v, float* p, size_t n) {
  alignas(64) float buf[kMaxFloatLanes];
  hn::Store(v, df, buf);
  std::memcpy(p, buf, n * sizeof(float));
}

// x * sigmoid(x) = x / (1 + e^-x); e^-x overflows to inf for x < -88, giving -0.
HWY_INLINE VF Silu(DF df, VF x) {
  const VF one = hn::Set(df, 1.0f);
  return hn::Div(x, hn::Add(one, hn::Exp(df, hn::Neg(x))));
}

// out: [n] = silu(gate: [n]) * up: [n].
HWY_INLINE void SiluMulImpl(const float* gate, const float* up, size_t n, float* out) {
  const DF df;
  const size_t L = hn::Lanes(df);
  size_t i = 0;
  for (; i + L <= n; i += L) {
    const VF g = hn::LoadU(df, gate + i);
    hn::StoreU(hn::Mul(Silu(df, g), hn::LoadU(df, up + i)), df, out + i);
  }
  if (i < n) {
    const VF g = LoadTail(df, gate + i, n - i);
    StoreTail(df, hn::Mul(Silu(df, g), LoadTail(df, up + i, n - i)), out + i, n - i);
  }
}

// y: [n] += x: [n].
HWY_INLINE void AddInPlaceImpl(float* y, const float* x, size_t n) {
  const DF df;
  const size_t L = hn::Lanes(df);
  size_t i = 0;
  for (; i + L <= n; i += L) {
    hn::StoreU(hn::Add(hn::LoadU(df, y + i), hn::LoadU(df, x + i)), df, y + i);
  }
  for (; i < n; ++i) y[i] += x[i];
}

// Σ x[i]² of x: [n], in f32 lanes with two accumulators.
HWY_INLINE float SumOfSquares(const float* x, size_t n) {
  const DF df;
  const size_t L = hn::Lanes(df);
  VF a0 = hn::Zero(df), a1 = hn::Zero(df);
  size_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    const VF v0 = hn::LoadU(df, x + i);
    const VF v1 = hn::LoadU(df, x + i + L);
    a0 = hn::MulAdd(v0, v0, a0);
    a1 = hn::MulAdd(v1, v1, a1);
  }
  if (i + L <= n) {
    const VF v0 = hn::LoadU(df, x + i);
    a0 = hn::MulAdd(v0, v0, a0);
    i += L;
  }
  float sum = hn::GetLane(hn::SumOfLanes(df, hn::Add(a0, a1)));
  for (; i < n; ++i) sum += x[i] * x[i];
  return sum;
}

// out: [rows, n] = x: [rows, n] / rms(row) * weight: [n]; out may alias x.
HWY_INLINE void RmsNormImpl(const float* x, const float* weight, size_t rows, size_t n, float eps,
                            float* out) {
  const DF df;
  const size_t L = hn::Lanes(df);
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float* outr = out + r * n;
    const float inv = static_cast<float>(
        1.0 / std::sqrt(static_cast<double>(SumOfSquares(xr, n)) / static_cast<double>(n) +
                        static_cast<double>(eps)));
    const VF vinv = hn::Set(df, inv);
    size_t i = 0;
    for (; i + L <= n; i += L) {
      const VF v = hn::Mul(hn::LoadU(df, xr + i), vinv);
      hn::StoreU(hn::Mul(v, hn::LoadU(df, weight + i)), df, outr + i);
    }
    for (; i < n; ++i) outr[i] = xr[i] * inv * weight[i];
  }
}

// x: [T, H, Dh] rotated in place; cos, sin: [T, Dh/2]. Element i pairs with i + Dh/2.
HWY_INLINE void ApplyRopeImpl(float* x, size_t T, size_t H, size_t Dh, const float* cos,
                              const float* sin) {
  const DF df;
  const size_t L = hn::Lanes(df);
  const size_t half = Dh / 2;
  for (size_t t = 0; t < T; ++t) {
    const float* c = cos + t * half;
    const float* s = sin + t * half;
    for (size_t h = 0; h < H; ++h) {
      float* lo = x + (t * H + h) * Dh;
      float* hi = lo + half;
      size_t i = 0;
      for (; i + L <= half; i += L) {
        const VF a = hn::LoadU(df, lo + i);
        const VF b = hn::LoadU(df, hi + i);
        const VF vc = hn::LoadU(df, c + i);
        const VF vs = hn::LoadU(df, s + i);
        hn::StoreU(hn::NegMulAdd(b, vs, hn::Mul(a, vc)), df, lo + i);
        hn::StoreU(hn::MulAdd(a, vs, hn::Mul(b, vc)), df, hi + i);
      }
      for (; i < half; ++i) {
        const float a = lo[i], b = hi[i];
        lo[i] = a * c[i] - b * s[i];
        hi[i] = b * c[i] + a * s[i];
      }
    }
  }
}

// Max of x: [n], n >= 1.
HWY_INLINE float MaxOf(const float* x, size_t n) {
  const DF df;
  const size_t L = hn::Lanes(df);
  float m = x[0];
  size_t i = 0;
  if (n >= L) {
    VF vm = hn::LoadU(df, x);
    for (i = L; i + L <= n; i += L) vm = hn::Max(vm, hn::LoadU(df, x + i));
    m = hn::GetLane(hn::MaxOfLanes(df, vm));
  }
  for (; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

// x: [n] = exp(x - max) in place; returns their sum.
HWY_INLINE float ExpMinusMax(float* x, size_t n, float max) {
  const DF df;
  const size_t L = hn::Lanes(df);
  const VF vmax = hn::Set(df, max);
  VF sum = hn::Zero(df);
  size_t i = 0;
  for (; i + L <= n; i += L) {
    const VF e = hn::Exp(df, hn::Sub(hn::LoadU(df, x + i), vmax));
    hn::StoreU(e, df, x + i);
    sum = hn::Add(sum, e);
  }
  if (i < n) {
    // Lanes past n hold exp(-inf) = 0, so they add nothing to the sum.
    alignas(64) float buf[kMaxFloatLanes];
    for (size_t j = 0; j < L; ++j) buf[j] = -HUGE_VALF;
    std::memcpy(buf, x + i, (n - i) * sizeof(float));
    const VF e = hn::Exp(df, hn::Sub(hn::Load(df, buf), vmax));
    StoreTail(df, e, x + i, n - i);
    sum = hn::Add(sum, hn::IfThenElseZero(hn::Lt(hn::Iota(df, 0), hn::Set(df, n - i)), e));
  }
  return hn::GetLane(hn::SumOfLanes(df, sum));
}

// x: [n] *= s.
HWY_INLINE void Scale(float* x, size_t n, float s) {
  const DF df;
  const size_t L = hn::Lanes(df);
  const VF vs = hn::Set(df, s);
  size_t i = 0;
  for (; i + L <= n; i += L) hn::StoreU(hn::Mul(hn::LoadU(df, x + i), vs), df, x + i);
  for (; i < n; ++i) x[i] *= s;
}

// x: [n] = softmax(x), max-subtracted so that exp never overflows.
HWY_INLINE void SoftmaxImpl(float* x, size_t n) {
  if (n == 0) return;
  const float sum = ExpMinusMax(x, n, MaxOf(x, n));
  Scale(x, n, 1.0f / sum);
}

// out: [n] f32 = src: [n] f32/f16/bf16.
HWY_INLINE void ConvertToF32Impl(const void* src, DType dtype, size_t n, float* out) {
  const DF df;
  const size_t L = hn::Lanes(df);
  size_t i = 0;
  switch (dtype) {
    case DType::kF32:
      std::memcpy(out, src, n * sizeof(float));
      return;
    case DType::kBF16: {
      const auto* p = static_cast<const hwy::bfloat16_t*>(src);
      const hn::Rebind<hwy::bfloat16_t, DF> dh;
      for (; i + L <= n; i += L) hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, p + i)), df, out + i);
      for (; i < n; ++i) out[i] = hwy::F32FromBF16(p[i]);
      return;
    }
    case DType::kF16: {
      const auto* p = static_cast<const hwy::float16_t*>(src);
      const hn::Rebind<hwy::float16_t, DF> dh;
      for (; i + L <= n; i += L) hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, p + i)), df, out + i);
      const auto* bits = static_cast<const uint16_t*>(src);
      for (; i < n; ++i) out[i] = F16ToF32(bits[i]);
      return;
    }
    default:
      return;
  }
}

}  // namespace meshlm::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // MESHLM_KERNELS_ELEMENTWISE_INL_H_
