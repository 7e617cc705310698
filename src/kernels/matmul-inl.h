// Highway MatMul for f32, f16 and bf16 weights: register tiles of dot products, f32 sums.
//
// y[t, n] = Σ_k x[t, k] · w[n, k]. Vectors run along K, so weight rows are read in
// place (no packing) and each weight vector, once widened to f32, feeds the dot products
// of several rows of x.
//
// Decode (T < kMinTileRows) is bound by memory bandwidth: weight rows are read one after
// another, each once for up to kTileT rows of x, with several accumulators per row. A
// single sequential stream is what the hardware prefetchers follow best; reading 4 rows
// side by side measured 2-3x slower (6-7 vs 16 GB/s on a Zen 4 VM).
// Prefill is bound by arithmetic: kTileT × kTileN register tiles, re-reading a
// kTileN-row block of weights (a few KiB, in L1) per kTileT rows of x.

#if defined(MESHLM_KERNELS_MATMUL_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef MESHLM_KERNELS_MATMUL_INL_H_
#undef MESHLM_KERNELS_MATMUL_INL_H_
#else
#define MESHLM_KERNELS_MATMUL_INL_H_
#endif

#include <algorithm>
#include <cstddef>

#include "base/thread_pool.h"
#include "hwy/highway.h"
#include "kernels/kernels.h"
#include "tensor/dtype.h"

HWY_BEFORE_NAMESPACE();
namespace meshlm::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Rows of x and of w per register tile: 4 × 4 f32 accumulators plus 4 widened weight
// vectors and one x vector fit the 16 registers of SSE4/AVX2 without spills.
constexpr size_t kTileT = 4;
constexpr size_t kTileN = 4;

template <class DF>
HWY_INLINE hn::Vec<DF> LoadRow(DF df, const float* p) {
  return hn::LoadU(df, p);
}
// bf16 → f32 is a 16-bit shift, f16 → f32 is F16C where the target has it.
template <class DF>
HWY_INLINE hn::Vec<DF> LoadRow(DF df, const hwy::bfloat16_t* p) {
  const hn::Rebind<hwy::bfloat16_t, DF> dh;
  return hn::PromoteTo(df, hn::LoadU(dh, p));
}
template <class DF>
HWY_INLINE hn::Vec<DF> LoadRow(DF df, const hwy::float16_t* p) {
  const hn::Rebind<hwy::float16_t, DF> dh;
  return hn::PromoteTo(df, hn::LoadU(dh, p));
}

HWY_INLINE float ToF32(float v) { return v; }
HWY_INLINE float ToF32(hwy::bfloat16_t v) { return hwy::F32FromBF16(v); }
HWY_INLINE float ToF32(hwy::float16_t v) {
  uint16_t bits;
  CopyBytes<2>(&v, &bits);
  return F16ToF32(bits);
}

// Below this many rows of x, MatMul streams weight rows one at a time (decode).
constexpr size_t kMinTileRows = 8;

// x: [TR, K] f32 (rows K apart); w: [K] WT, one row; y[t * y_stride] for t < TR; bias:
// one value or null. U accumulators per row of x hide the FMA latency.
template <size_t TR, typename WT>
HWY_INLINE void DotRow(const float* HWY_RESTRICT x, size_t K, const WT* HWY_RESTRICT w,
                       const float* bias, float* HWY_RESTRICT y, size_t y_stride) {
  constexpr size_t U = TR == 1 ? 4 : 2;
  const hn::ScalableTag<float> df;
  using V = hn::Vec<decltype(df)>;
  const size_t L = hn::Lanes(df);
  V acc[TR][U];
#pragma GCC unroll 8
  for (size_t t = 0; t < TR; ++t) {
#pragma GCC unroll 8
    for (size_t u = 0; u < U; ++u) acc[t][u] = hn::Zero(df);
  }
  size_t k = 0;
  for (; k + U * L <= K; k += U * L) {
#pragma GCC unroll 8
    for (size_t u = 0; u < U; ++u) {
      const V wv = LoadRow(df, w + k + u * L);
#pragma GCC unroll 8
      for (size_t t = 0; t < TR; ++t) {
        acc[t][u] = hn::MulAdd(hn::LoadU(df, x + t * K + k + u * L), wv, acc[t][u]);
      }
    }
  }
  for (; k + L <= K; k += L) {
    const V wv = LoadRow(df, w + k);
#pragma GCC unroll 8
    for (size_t t = 0; t < TR; ++t)
      acc[t][0] = hn::MulAdd(hn::LoadU(df, x + t * K + k), wv, acc[t][0]);
  }
#pragma GCC unroll 8
  for (size_t t = 0; t < TR; ++t) {
    V sum = acc[t][0];
#pragma GCC unroll 8
    for (size_t u = 1; u < U; ++u) sum = hn::Add(sum, acc[t][u]);
    float total = hn::GetLane(hn::SumOfLanes(df, sum));
    for (size_t kk = k; kk < K; ++kk) total += x[t * K + kk] * ToF32(w[kk]);
    y[t * y_stride] = bias != nullptr ? total + *bias : total;
  }
}

// All T < kMinTileRows rows of x against weight rows [n0, n1), one row at a time.
template <typename WT>
HWY_INLINE void MatMulRowsDecode(const float* x, size_t T, size_t K, const WT* w, size_t w_stride,
                                 const float* bias, float* y, size_t N, size_t n0, size_t n1) {
  for (size_t n = n0; n < n1; ++n) {
    const WT* wn = w + n * w_stride;
    const float* bn = bias != nullptr ? bias + n : nullptr;
    size_t t = 0;
    for (; t + kTileT <= T; t += kTileT) DotRow<kTileT>(x + t * K, K, wn, bn, y + t * N + n, N);
    switch (T - t) {
      case 3:
        DotRow<3>(x + t * K, K, wn, bn, y + t * N + n, N);
        break;
      case 2:
        DotRow<2>(x + t * K, K, wn, bn, y + t * N + n, N);
        break;
      case 1:
        DotRow<1>(x + t * K, K, wn, bn, y + t * N + n, N);
        break;
      default:
        break;
    }
  }
}

// x: [TR, K] f32 (rows K apart); w: [NR, K] WT (rows w_stride apart);
// y: [TR, NR] written at y[t * y_stride + r]; bias: [NR] or null.
template <size_t TR, size_t NR, typename WT>
HWY_INLINE void DotTile(const float* HWY_RESTRICT x, size_t K, const WT* HWY_RESTRICT w,
                        size_t w_stride, const float* bias, float* HWY_RESTRICT y,
                        size_t y_stride) {
  const hn::ScalableTag<float> df;
  using V = hn::Vec<decltype(df)>;
  const size_t L = hn::Lanes(df);
  V acc[TR][NR];
#pragma GCC unroll 8
  for (size_t t = 0; t < TR; ++t) {
#pragma GCC unroll 8
    for (size_t r = 0; r < NR; ++r) acc[t][r] = hn::Zero(df);
  }
  size_t k = 0;
  for (; k + L <= K; k += L) {
    V wv[NR];
#pragma GCC unroll 8
    for (size_t r = 0; r < NR; ++r) wv[r] = LoadRow(df, w + r * w_stride + k);
#pragma GCC unroll 8
    for (size_t t = 0; t < TR; ++t) {
      const V xv = hn::LoadU(df, x + t * K + k);
#pragma GCC unroll 8
      for (size_t r = 0; r < NR; ++r) acc[t][r] = hn::MulAdd(xv, wv[r], acc[t][r]);
    }
  }
#pragma GCC unroll 8
  for (size_t t = 0; t < TR; ++t) {
#pragma GCC unroll 8
    for (size_t r = 0; r < NR; ++r) {
      float sum = hn::GetLane(hn::SumOfLanes(df, acc[t][r]));
      for (size_t kk = k; kk < K; ++kk) sum += x[t * K + kk] * ToF32(w[r * w_stride + kk]);
      y[t * y_stride + r] = bias != nullptr ? sum + bias[r] : sum;
    }
  }
}

// All T rows of x against weight rows [n0, n1).
template <typename WT>
HWY_INLINE void MatMulRows(const float* x, size_t T, size_t K, const WT* w, size_t w_stride,
                           const float* bias, float* y, size_t N, size_t n0, size_t n1) {
  size_t n = n0;
  for (; n + kTileN <= n1; n += kTileN) {
    const WT* wn = w + n * w_stride;
    const float* bn = bias != nullptr ? bias + n : nullptr;
    size_t t = 0;
    for (; t + kTileT <= T; t += kTileT) {
      DotTile<kTileT, kTileN>(x + t * K, K, wn, w_stride, bn, y + t * N + n, N);
    }
    switch (T - t) {
      case 3:
        DotTile<3, kTileN>(x + t * K, K, wn, w_stride, bn, y + t * N + n, N);
        break;
      case 2:
        DotTile<2, kTileN>(x + t * K, K, wn, w_stride, bn, y + t * N + n, N);
        break;
      case 1:
        DotTile<1, kTileN>(x + t * K, K, wn, w_stride, bn, y + t * N + n, N);
        break;
      default:
        break;
    }
  }
  for (; n < n1; ++n) {
    const WT* wn = w + n * w_stride;
    const float* bn = bias != nullptr ? bias + n : nullptr;
    size_t t = 0;
    for (; t + kTileT <= T; t += kTileT) {
      DotTile<kTileT, 1>(x + t * K, K, wn, w_stride, bn, y + t * N + n, N);
    }
    for (; t < T; ++t) DotTile<1, 1>(x + t * K, K, wn, w_stride, bn, y + t * N + n, N);
  }
}

// x: [T, K] f32; w: [N, K] WT; bias: [N] or null; y: [T, N]. Parallel over N.
template <typename WT>
HWY_NOINLINE void MatMulT(const float* x, size_t T, const Weight& w, const float* bias, float* y,
                          ThreadPool& pool) {
  const WT* wd = static_cast<const WT*>(w.data);
  pool.ParallelFor(w.rows, kTileN, [&](size_t n0, size_t n1, size_t) {
    if (T < kMinTileRows) {
      MatMulRowsDecode(x, T, w.cols, wd, w.row_stride, bias, y, w.rows, n0, n1);
    } else {
      MatMulRows(x, T, w.cols, wd, w.row_stride, bias, y, w.rows, n0, n1);
    }
  });
}

}  // namespace meshlm::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // MESHLM_KERNELS_MATMUL_INL_H_
