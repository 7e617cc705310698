// Highway kernel for causal grouped-query attention of one sequence, one query row (and
// a range of heads) at a time: scores, max-subtracted softmax, weighted sum of values (two
// passes over K/V).

#if defined(MESHLM_KERNELS_ATTENTION_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef MESHLM_KERNELS_ATTENTION_INL_H_
#undef MESHLM_KERNELS_ATTENTION_INL_H_
#else
#define MESHLM_KERNELS_ATTENTION_INL_H_
#endif

#include <algorithm>
#include <cstddef>

#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/elementwise-inl.h"

HWY_BEFORE_NAMESPACE();
namespace meshlm::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// q: [Dh] · k: [Dh], two accumulators to halve the FMA dependency chain.
HWY_INLINE float Dot(const float* HWY_RESTRICT q, const float* HWY_RESTRICT k, size_t Dh) {
  const DF df;
  const size_t L = hn::Lanes(df);
  VF a0 = hn::Zero(df), a1 = hn::Zero(df);
  size_t d = 0;
  for (; d + 2 * L <= Dh; d += 2 * L) {
    a0 = hn::MulAdd(hn::LoadU(df, q + d), hn::LoadU(df, k + d), a0);
    a1 = hn::MulAdd(hn::LoadU(df, q + d + L), hn::LoadU(df, k + d + L), a1);
  }
  for (; d + L <= Dh; d += L) a0 = hn::MulAdd(hn::LoadU(df, q + d), hn::LoadU(df, k + d), a0);
  float sum = hn::GetLane(hn::SumOfLanes(df, hn::Add(a0, a1)));
  for (; d < Dh; ++d) sum += q[d] * k[d];
  return sum;
}

// out: [Dh] += p · v: [Dh].
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

// The KV cache is read from memory at every decode step (the weights streamed in between
// evict it), and its rows of a few heads, kv_stride apart, are a pattern the hardware
// prefetchers follow poorly: each row is fetched this many rows ahead (8 measured the
// same). qwen3-0.6b Q4_0, 2 threads: decode after a 400-token prompt 55 -> 80-89 tok/s,
// after 128 tokens 87 -> 101.
constexpr size_t kAheadRows = 4;

HWY_INLINE void PrefetchRow(const float* p, size_t n) {
  for (size_t d = 0; d < n; d += 16) hwy::Prefetch(p + d);
}

// One query row of nq query heads, in groups of G that share a KV head, against keys and
// values 0 .. S-1. K and V are read one row at a time across all the heads, so that each
// KV row is read once for its G query heads and memory is swept in order: decode at long S
// is bound by reading the cache, and reading one head's slice of several rows (kv_stride
// apart) at a time measured 1.2-1.5x slower at S=4096 and S=32768.
// q: [nq, Dh]; k, v: [S, nq / G, Dh] rows kv_stride apart; scratch: [nq·S + nq];
// out: [nq, Dh].
HWY_INLINE void AttendHeads(const float* q, size_t nq, size_t G, size_t S, const float* k,
                            const float* v, size_t kv_stride, size_t Dh, float scale,
                            float* scratch, float* out) {
  float* scores = scratch;
  float* inv_sum = scratch + nq * S;
  const size_t row = nq / G * Dh;  // floats of a K or V row that these heads read
  for (size_t j = 0; j < S; ++j) {
    const float* kj = k + j * kv_stride;
    if (j + kAheadRows < S) PrefetchRow(kj + kAheadRows * kv_stride, row);
    for (size_t i = 0; i < nq; ++i) scores[i * S + j] = Dot(q + i * Dh, kj + i / G * Dh, Dh);
  }
  for (size_t i = 0; i < nq; ++i) {
    float* si = scores + i * S;
    Scale(si, S, scale);
    inv_sum[i] = 1.0f / ExpMinusMax(si, S, MaxOf(si, S));
    std::fill(out + i * Dh, out + (i + 1) * Dh, 0.0f);
  }
  for (size_t j = 0; j < S; ++j) {
    const float* vj = v + j * kv_stride;
    if (j + kAheadRows < S) PrefetchRow(vj + kAheadRows * kv_stride, row);
    for (size_t i = 0; i < nq; ++i) AddScaled(scores[i * S + j], vj + i / G * Dh, Dh, out + i * Dh);
  }
  for (size_t i = 0; i < nq; ++i) Scale(out + i * Dh, Dh, inv_sum[i]);
}

}  // namespace meshlm::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // MESHLM_KERNELS_ATTENTION_INL_H_
