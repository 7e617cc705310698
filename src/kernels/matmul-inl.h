// Highway MatMul for f32, f16 and bf16 weights, f32 activations and f32 sums.
//
// y[t, n] = Σ_k x[t, k] · w[n, k]; weights are read in place, widened to f32 in registers.
//
// Decode (small T) is bound by memory bandwidth. Vectors run along K; weight rows are read
// one after another, each once for up to kDecodeT rows of x, with one accumulator per
// row (the fixed order of sums described at DotRow). A single sequential stream is what the hardware prefetchers follow best: reading 4
// rows side by side measured 2-3x slower (6-7 vs 16 GB/s on a Zen 4 VM).
//
// Prefill is bound by arithmetic. Vectors run along T instead (see MatMulPrefill).

#if defined(MESHLM_KERNELS_MATMUL_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef MESHLM_KERNELS_MATMUL_INL_H_
#undef MESHLM_KERNELS_MATMUL_INL_H_
#else
#define MESHLM_KERNELS_MATMUL_INL_H_
#endif

#include <algorithm>
#include <cstddef>
#include <vector>

#include "base/thread_pool.h"
#include "hwy/aligned_allocator.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/kernels.h"
#include "base/dtype.h"

HWY_BEFORE_NAMESPACE();
namespace meshlm::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Rows of x per pass over a weight row in decode, so that batched decode (T = 8 sequences)
// widens each weight once: 8 accumulators + 1 weight + 1 x vector fit the 16 registers of
// SSE4/AVX2.
constexpr size_t kDecodeT = 8;
// Decode splits N across threads in multiples of this many rows.
constexpr size_t kDecodeAlignN = 4;
// Prefill needs at least this many rows of x, and at least one full panel of them (see
// MatMulPrefill): below, much of a panel would be zero padding, and the decode path, which
// widens each weight once per kDecodeT rows of x, is as fast.
constexpr size_t kMinPrefillRows = 16;

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
  auto v = hn::LoadU(dh, p);
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX2
  // Keeps the load out of vcvtph2ps: with a memory operand it streamed weights 25% slower
  // on Zen 4 (18 vs 24 GB/s in decode).
  __asm__("" : "+v"(v.raw));
#endif
  return hn::PromoteTo(df, v);
}

HWY_INLINE float ToF32(float v) { return v; }
HWY_INLINE float ToF32(hwy::bfloat16_t v) { return hwy::F32FromBF16(v); }
HWY_INLINE float ToF32(hwy::float16_t v) {
  uint16_t bits;
  CopyBytes<2>(&v, &bits);
  return F16ToF32(bits);
}

// Every path below sums y[t, n] in one order, whatever T is and wherever row t sits in
// the batch, so that a sequence's results do not depend on which others share its step:
// one vector accumulator of L lanes, lane j the FMA chain over k = j, j + L, j + 2L, ...
// up to the last whole vector; then the lanes halved pairwise (lane i plus lane i + L/2,
// down to one: HalvingSum); then the K mod L last products one by one (TailDot); then
// the bias. Decode runs vectors along K and prefill along T, but both follow this order.

// Σ of v's lanes, lane i + lane i + half at each step.
template <class D>
HWY_INLINE float HalvingSum(D d, hn::Vec<D> v) {
#if HWY_TARGET == HWY_SCALAR
  (void)d;
  return hn::GetLane(v);
#else
  if constexpr (D::kPrivateN == 1) {
    return hn::GetLane(v);
  } else {
    const hn::Half<D> dh;
    (void)d;
    return HalvingSum(dh, hn::Add(hn::LowerHalf(dh, v), hn::UpperHalf(dh, v)));
  }
#endif
}

// total + Σ x[k] · w[k] for k in [k0, K), one product at a time.
template <typename WT>
HWY_INLINE float TailDot(float total, const float* HWY_RESTRICT x, const WT* HWY_RESTRICT w,
                         size_t k0, size_t K) {
  const hn::CappedTag<float, 1> d1;
  auto acc = hn::Set(d1, total);
  for (size_t k = k0; k < K; ++k) acc = hn::MulAdd(hn::Set(d1, x[k]), hn::Set(d1, ToF32(w[k])), acc);
  return hn::GetLane(acc);
}

// x: [TR, K] f32 (rows K apart); w: [K] WT, one row; y[t * y_stride] for t < TR; bias:
// one value or null. One accumulator per row of x (the order above): for one row the FMA
// latency chain is hidden by the memory stream it waits on anyway.
template <size_t TR, typename WT>
HWY_INLINE void DotRow(const float* HWY_RESTRICT x, size_t K, const WT* HWY_RESTRICT w,
                       const float* bias, float* HWY_RESTRICT y, size_t y_stride) {
  const hn::ScalableTag<float> df;
  using V = hn::Vec<decltype(df)>;
  const size_t L = hn::Lanes(df);
  V acc[TR];
#pragma GCC unroll 8
  for (size_t t = 0; t < TR; ++t) acc[t] = hn::Zero(df);
  size_t k = 0;
  for (; k + L <= K; k += L) {
    const V wv = LoadRow(df, w + k);
#pragma GCC unroll 8
    for (size_t t = 0; t < TR; ++t) acc[t] = hn::MulAdd(hn::LoadU(df, x + t * K + k), wv, acc[t]);
  }
#pragma GCC unroll 8
  for (size_t t = 0; t < TR; ++t) {
    const float total = TailDot(HalvingSum(df, acc[t]), x + t * K, w, k, K);
    y[t * y_stride] = bias != nullptr ? total + *bias : total;
  }
}

// R weight rows at once against TR rows of x (one accumulator each): every x vector loaded
// serves R weight rows, which cuts the traffic of x (re-read from L1/L2 for every weight
// row) R-fold. Only for targets with 32 vector registers (R·TR accumulators + R + 1).
constexpr size_t kPrefetchAhead = 4096;
template <size_t R, size_t TR, typename WT>
HWY_INLINE void DotRows(const float* HWY_RESTRICT x, size_t K, const WT* HWY_RESTRICT w,
                        size_t w_stride, const float* bias, float* HWY_RESTRICT y,
                        size_t y_stride) {
  const hn::ScalableTag<float> df;
  using V = hn::Vec<decltype(df)>;
  const size_t L = hn::Lanes(df);
  V acc[R][TR];
#pragma GCC unroll 8
  for (size_t r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (size_t t = 0; t < TR; ++t) acc[r][t] = hn::Zero(df);
  }
  size_t k = 0;
  for (; k + L <= K; k += L) {
    V wv[R];
    // The R weight streams run slowly enough (R·TR FMAs per vector) that the hardware
    // prefetchers fall behind; ask for each row kPrefetchAhead elements ahead (8 KiB of
    // bf16; 2 and 4 KiB ahead gave 60 and 71 tok/s in the measurement above). For
    // one sequence (T = 1) any software prefetch made decode slower (10 vs 19 tok/s).
    if ((k & 31) == 0) {
#pragma GCC unroll 8
      for (size_t r = 0; r < R; ++r) hwy::Prefetch(w + r * w_stride + k + kPrefetchAhead);
    }
#pragma GCC unroll 8
    for (size_t r = 0; r < R; ++r) wv[r] = LoadRow(df, w + r * w_stride + k);
#pragma GCC unroll 8
    for (size_t t = 0; t < TR; ++t) {
      const V xv = hn::LoadU(df, x + t * K + k);
#pragma GCC unroll 8
      for (size_t r = 0; r < R; ++r) acc[r][t] = hn::MulAdd(xv, wv[r], acc[r][t]);
    }
  }
#pragma GCC unroll 8
  for (size_t r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (size_t t = 0; t < TR; ++t) {
      const float total = TailDot(HalvingSum(df, acc[r][t]), x + t * K, w + r * w_stride, k, K);
      y[t * y_stride + r] = bias != nullptr ? total + bias[r] : total;
    }
  }
}

// All T rows of x (few) against weight rows [n0, n1), one row at a time.
template <typename WT>
HWY_INLINE void MatMulRowsDecode(const float* x, size_t T, size_t K, const WT* w, size_t w_stride,
                                 const float* bias, float* y, size_t N, size_t n0, size_t n1) {
  size_t n = n0;
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  // Batched decode: 4 weight rows against 4 rows of x at a time (16 accumulators). Each x
  // vector then serves 4 weight rows instead of 1, and the 4 weight rows are re-read from L1
  // for the next 4 rows of x. Qwen3-0.6B, 8 sequences, 2 threads: 96-100 tok/s against 26
  // for one sequence (was ~33 one weight row at a time, without prefetch).
  if (T >= 4) {
    for (; n + 4 <= n1; n += 4) {
      const float* bn = bias != nullptr ? bias + n : nullptr;
      const WT* wn = w + n * w_stride;
      size_t t = 0;
      for (; t + 4 <= T; t += 4) DotRows<4, 4>(x + t * K, K, wn, w_stride, bn, y + t * N + n, N);
      switch (T - t) {
        case 3:
          DotRows<4, 3>(x + t * K, K, wn, w_stride, bn, y + t * N + n, N);
          break;
        case 2:
          DotRows<4, 2>(x + t * K, K, wn, w_stride, bn, y + t * N + n, N);
          break;
        case 1:
          DotRows<4, 1>(x + t * K, K, wn, w_stride, bn, y + t * N + n, N);
          break;
        default:
          break;
      }
    }
  }
#endif
  for (; n < n1; ++n) {
    const WT* wn = w + n * w_stride;
    const float* bn = bias != nullptr ? bias + n : nullptr;
    size_t t = 0;
    for (; t + kDecodeT <= T; t += kDecodeT)
      DotRow<kDecodeT>(x + t * K, K, wn, bn, y + t * N + n, N);
    const float* xt = x + t * K;
    float* yt = y + t * N + n;
    switch (T - t) {
      case 7:
        DotRow<7>(xt, K, wn, bn, yt, N);
        break;
      case 6:
        DotRow<6>(xt, K, wn, bn, yt, N);
        break;
      case 5:
        DotRow<5>(xt, K, wn, bn, yt, N);
        break;
      case 4:
        DotRow<4>(xt, K, wn, bn, yt, N);
        break;
      case 3:
        DotRow<3>(xt, K, wn, bn, yt, N);
        break;
      case 2:
        DotRow<2>(xt, K, wn, bn, yt, N);
        break;
      case 1:
        DotRow<1>(xt, K, wn, bn, yt, N);
        break;
      default:
        break;
    }
  }
}

// Prefill register tile: kPrefillN weight rows × kPrefillTV vectors of x rows.
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
// 8 × 2 accumulators + 2 x vectors + 1 broadcast of 32 registers: one FMA per cycle
// on Zen 4, each x load used 8 times.
constexpr size_t kPrefillN = 8;
#else
// 4 × 2 accumulators + 3 of the 16 registers of SSE4/AVX2.
constexpr size_t kPrefillN = 4;
#endif
constexpr size_t kPrefillTV = 2;

// xp: [K, TB] f32, a panel of TB = kPrefillTV·Lanes rows of x, transposed;
// wr: [kPrefillN, K] f32, rows wr_stride apart; out: [kPrefillN, TB] = wr · xp over the
// whole vectors of K (k < K - K mod L), in the order DotRow sums: for each lane class
// j < L a chain over k = j, j + L, ..., then the classes halved pairwise. The classes'
// partial tiles wait in part: [L][kPrefillN · TB].
HWY_INLINE void PrefillTile(const float* HWY_RESTRICT xp, const float* HWY_RESTRICT wr,
                            size_t wr_stride, size_t K, float* HWY_RESTRICT part,
                            float* HWY_RESTRICT out) {
  const hn::ScalableTag<float> df;
  using V = hn::Vec<decltype(df)>;
  const size_t L = hn::Lanes(df);
  const size_t TB = kPrefillTV * L;
  const size_t tile = kPrefillN * TB;
  const size_t Km = K / L * L;
  for (size_t c = 0; c < L; ++c) {
    V acc[kPrefillN][kPrefillTV];
#pragma GCC unroll 8
    for (size_t r = 0; r < kPrefillN; ++r) {
#pragma GCC unroll 8
      for (size_t v = 0; v < kPrefillTV; ++v) acc[r][v] = hn::Zero(df);
    }
    for (size_t k = c; k < Km; k += L) {
      V xv[kPrefillTV];
#pragma GCC unroll 8
      for (size_t v = 0; v < kPrefillTV; ++v) xv[v] = hn::LoadU(df, xp + k * TB + v * L);
#pragma GCC unroll 8
      for (size_t r = 0; r < kPrefillN; ++r) {
        const V wv = hn::Set(df, wr[r * wr_stride + k]);
#pragma GCC unroll 8
        for (size_t v = 0; v < kPrefillTV; ++v) acc[r][v] = hn::MulAdd(wv, xv[v], acc[r][v]);
      }
    }
    float* pc = L == 1 ? out : part + c * tile;
#pragma GCC unroll 8
    for (size_t r = 0; r < kPrefillN; ++r) {
#pragma GCC unroll 8
      for (size_t v = 0; v < kPrefillTV; ++v) hn::StoreU(acc[r][v], df, pc + r * TB + v * L);
    }
  }
  if (L == 1) return;
  for (size_t half = L / 2; half >= 1; half /= 2) {
    for (size_t c = 0; c < half; ++c) {
      float* dst = half == 1 ? out : part + c * tile;
      const float* a = part + c * tile;
      const float* b = part + (c + half) * tile;
      for (size_t i = 0; i < tile; i += L) {
        hn::StoreU(hn::Add(hn::LoadU(df, a + i), hn::LoadU(df, b + i)), df, dst + i);
      }
    }
  }
}

// Rows [n, n + rows) of w, rows ≤ kPrefillN, → wr: [kPrefillN, K] f32, rows wr_stride
// apart, zero rows past `rows`.
template <typename WT>
HWY_INLINE void WidenRows(const WT* w, size_t w_stride, size_t rows, size_t K, float* wr,
                          size_t wr_stride) {
  const hn::ScalableTag<float> df;
  const size_t L = hn::Lanes(df);
  for (size_t r = 0; r < kPrefillN; ++r) {
    float* out = wr + r * wr_stride;
    if (r >= rows) {
      std::fill(out, out + K, 0.0f);
      continue;
    }
    const WT* in = w + r * w_stride;
    size_t k = 0;
    for (; k + L <= K; k += L) hn::StoreU(LoadRow(df, in + k), df, out + k);
    for (; k < K; ++k) out[k] = ToF32(in[k]);
  }
}

// x: [T, K] → xt: [P][K][TB], P = ceil(T / TB) panels of TB rows, transposed, zeros past T.
HWY_INLINE void TransposePanels(const float* x, size_t T, size_t K, size_t TB, size_t p0, size_t p1,
                                float* xt) {
  for (size_t p = p0; p < p1; ++p) {
    float* panel = xt + p * K * TB;
    for (size_t i = 0; i < TB; ++i) {
      const size_t t = p * TB + i;
      if (t < T) {
        for (size_t k = 0; k < K; ++k) panel[k * TB + i] = x[t * K + k];
      } else {
        for (size_t k = 0; k < K; ++k) panel[k * TB + i] = 0.0f;
      }
    }
  }
}

// x: [T, K] f32; w: [N, K] WT; y: [T, N]. Bound by arithmetic: vectors run along T, over
// x transposed once per call into panels, against broadcast weights widened to f32
// kPrefillN rows at a time, so no horizontal sums are needed and widening is paid once per
// weight rather than once per row of x.
template <typename WT>
HWY_INLINE void MatMulPrefill(const float* x, size_t T, const WT* w, size_t N, size_t K,
                              size_t w_stride, const float* bias, float* y, ThreadPool& pool) {
  const hn::ScalableTag<float> df;
  const size_t TB = kPrefillTV * hn::Lanes(df);
  const size_t P = (T + TB - 1) / TB;
  // Reused across calls, owned by the calling thread and read by the workers.
  thread_local hwy::AlignedFreeUniquePtr<float[]> xt_storage;
  thread_local size_t xt_size = 0;
  if (xt_size < P * K * TB) {
    xt_size = P * K * TB;
    xt_storage = hwy::AllocateAligned<float>(xt_size);
  }
  float* xt = xt_storage.get();
  pool.ParallelFor(P, 1,
                   [&](size_t p0, size_t p1, size_t) { TransposePanels(x, T, K, TB, p0, p1, xt); });
  pool.ParallelFor(N, kPrefillN, [&](size_t n0, size_t n1, size_t) {
    // Rows a power of two apart would all fall in one L1 set.
    const size_t wr_stride = K + 16;
    thread_local std::vector<float> wr, out, part;
    if (wr.size() < kPrefillN * wr_stride) wr.resize(kPrefillN * wr_stride);
    if (out.size() < kPrefillN * TB) out.resize(kPrefillN * TB);
    if (part.size() < hn::Lanes(df) * kPrefillN * TB) part.resize(hn::Lanes(df) * kPrefillN * TB);
    const size_t Km = K / hn::Lanes(df) * hn::Lanes(df);
    for (size_t n = n0; n < n1; n += kPrefillN) {
      const size_t rows = std::min(kPrefillN, n1 - n);
      WidenRows(w + n * w_stride, w_stride, rows, K, wr.data(), wr_stride);
      for (size_t p = 0; p < P; ++p) {
        PrefillTile(xt + p * K * TB, wr.data(), wr_stride, K, part.data(), out.data());
        const size_t t_end = std::min(T, (p + 1) * TB);
        for (size_t t = p * TB; t < t_end; ++t) {
          for (size_t r = 0; r < rows; ++r) {
            float total = out[r * TB + (t - p * TB)];
            if (Km < K) total = TailDot(total, x + t * K, w + (n + r) * w_stride, Km, K);
            y[t * N + n + r] = bias != nullptr ? total + bias[n + r] : total;
          }
        }
      }
    }
  });
}

// x: [T, K] f32; w: [N, K] WT; bias: [N] or null; y: [T, N]. Parallel over N.
template <typename WT>
HWY_NOINLINE void MatMulT(const float* x, size_t T, const Matrix& w, const float* bias, float* y,
                          ThreadPool& pool) {
  const WT* wd = reinterpret_cast<const WT*>(w.data);
  const size_t w_stride = w.row_stride / sizeof(WT);  // in elements
  const hn::ScalableTag<float> df;
  if (T >= std::max(kMinPrefillRows, kPrefillTV * hn::Lanes(df))) {
    MatMulPrefill(x, T, wd, w.rows, w.cols, w_stride, bias, y, pool);
    return;
  }
  pool.ParallelFor(w.rows, kDecodeAlignN, [&](size_t n0, size_t n1, size_t) {
    MatMulRowsDecode(x, T, w.cols, wd, w_stride, bias, y, w.rows, n0, n1);
  });
}

}  // namespace meshlm::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // MESHLM_KERNELS_MATMUL_INL_H_
