// Highway kernel for causal grouped-query attention of one sequence, one query row at a
// time: scores, max-subtracted softmax, weighted sum of values (two passes over K/V).

#if defined(MESHLM_KERNELS_ATTENTION_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef MESHLM_KERNELS_ATTENTION_INL_H_
#undef MESHLM_KERNELS_ATTENTION_INL_H_
#else
#define MESHLM_KERNELS_ATTENTION_INL_H_
#endif

#include <cstddef>

#include "hwy/highway.h"
#include "kernels/elementwise-inl.h"

HWY_BEFORE_NAMESPACE();
namespace meshlm::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Dot products of q: [Dh] with 4 rows of k, rows `stride` floats apart, into out[0..4).
HWY_INLINE void Dot4(const float* HWY_RESTRICT q, const float* HWY_RESTRICT k, size_t stride,
                     size_t Dh, float* out) {
  const DF df;
  const size_t L = hn::Lanes(df);
  VF a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
  size_t d = 0;
  for (; d + L <= Dh; d += L) {
    const VF vq = hn::LoadU(df, q + d);
    a0 = hn::MulAdd(vq, hn::LoadU(df, k + d), a0);
    a1 = hn::MulAdd(vq, hn::LoadU(df, k + stride + d), a1);
    a2 = hn::MulAdd(vq, hn::LoadU(df, k + 2 * stride + d), a2);
    a3 = hn::MulAdd(vq, hn::LoadU(df, k + 3 * stride + d), a3);
  }
  out[0] = hn::GetLane(hn::SumOfLanes(df, a0));
  out[1] = hn::GetLane(hn::SumOfLanes(df, a1));
  out[2] = hn::GetLane(hn::SumOfLanes(df, a2));
  out[3] = hn::GetLane(hn::SumOfLanes(df, a3));
  for (; d < Dh; ++d) {
    for (size_t j = 0; j < 4; ++j) out[j] += q[d] * k[j * stride + d];
  }
}

HWY_INLINE float Dot1(const float* HWY_RESTRICT q, const float* HWY_RESTRICT k, size_t Dh) {
  const DF df;
  const size_t L = hn::Lanes(df);
  VF a = hn::Zero(df);
  size_t d = 0;
  for (; d + L <= Dh; d += L) a = hn::MulAdd(hn::LoadU(df, q + d), hn::LoadU(df, k + d), a);
  float sum = hn::GetLane(hn::SumOfLanes(df, a));
  for (; d < Dh; ++d) sum += q[d] * k[d];
  return sum;
}

// out: [Dh] += p * v: [Dh].
HWY_INLINE void AddScaled(float p, const float* HWY_RESTRICT v, size_t Dh,
                          float* HWY_RESTRICT out) {
  const DF df;
  const size_t L = hn::Lanes(df);
  const VF vp = hn::Set(df, p);
  size_t d = 0;
  for (; d + L <= Dh; d += L) {
    hn::StoreU(hn::MulAdd(vp, hn::LoadU(df, v + d), hn::LoadU(df, out + d)), df, out + d);
  }
  for (; d < Dh; ++d) out[d] += p * v[d];
}

// One query row against keys/values 0 .. S-1.
// q: [Dh]; k, v: [S, Dh] rows kv_stride apart; scores: [S] scratch; out: [Dh].
HWY_INLINE void AttendRow(const float* q, size_t S, const float* k, const float* v,
                          size_t kv_stride, size_t Dh, float scale, float* scores, float* out) {
  size_t j = 0;
  for (; j + 4 <= S; j += 4) Dot4(q, k + j * kv_stride, kv_stride, Dh, scores + j);
  for (; j < S; ++j) scores[j] = Dot1(q, k + j * kv_stride, Dh);
  Scale(scores, S, scale);
  const float sum = ExpMinusMax(scores, S, MaxOf(scores, S));
  for (size_t d = 0; d < Dh; ++d) out[d] = 0.0f;
  for (j = 0; j < S; ++j) AddScaled(scores[j], v + j * kv_stride, Dh, out);
  Scale(out, Dh, 1.0f / sum);
}

}  // namespace meshlm::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // MESHLM_KERNELS_ATTENTION_INL_H_
