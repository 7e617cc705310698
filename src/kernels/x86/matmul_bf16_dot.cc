// MatMul for bf16 weights with AVX512_BF16 (vdpbf16ps): the prefill path on Zen 4 and
// Sapphire Rapids. Only this file uses the instructions, each function marked with a
// target attribute so that the rest of the binary runs on any x86-64.
//
// x: [T, K] f32 is rounded to bf16 once per call into a zero-padded [T, Kp] buffer; w:
// [N, K] bf16 is read in place. vdpbf16ps multiplies 32 bf16 pairs and adds them into 16
// f32 lanes, twice the arithmetic of an f32 FMA per instruction. A register tile holds
// kTileT × kTileN accumulators whose lanes run along K; they are reduced at the end of
// the row, so weights need no packing.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/matmul_internal.h"

// GCC 12 flags the deliberately undefined vectors inside its own AVX-512 reduction
// intrinsics as uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#define MESHLM_TARGET_AVX512BF16 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))

namespace meshlm::kernels::x86 {
namespace {

// 4 × 4 accumulators + 4 weight vectors + 1 x vector = 21 of the 32 zmm registers; each
// 32-element step does 16 vdpbf16ps for 8 loads.
constexpr size_t kTileT = 4;
constexpr size_t kTileN = 4;
constexpr size_t kStep = 32;  // bf16 elements per zmm

// x: [T, K] f32 → xb: [T, Kp] bf16 (round to nearest even), zeros in [K, Kp).
MESHLM_TARGET_AVX512BF16 void ConvertRows(const float* x, size_t T, size_t K, size_t Kp,
                                          uint16_t* xb) {
  for (size_t t = 0; t < T; ++t) {
    const float* row = x + t * K;
    uint16_t* out = xb + t * Kp;
    for (size_t k = 0; k < Kp; k += kStep) {
      const size_t left = K > k ? K - k : 0;
      const __mmask16 m_lo = left >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << left) - 1);
      const size_t left_hi = left > 16 ? left - 16 : 0;
      const __mmask16 m_hi = left_hi >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << left_hi) - 1);
      const __m512 lo = _mm512_maskz_loadu_ps(m_lo, row + k);
      const __m512 hi = _mm512_maskz_loadu_ps(m_hi, row + k + 16);
      const __m512bh packed = _mm512_cvtne2ps_pbh(hi, lo);
      _mm512_storeu_si512(out + k, reinterpret_cast<const __m512i&>(packed));
    }
  }
}

MESHLM_TARGET_AVX512BF16 inline __m512bh LoadBf16(const uint16_t* p) {
  const __m512i v = _mm512_loadu_si512(p);
  return reinterpret_cast<const __m512bh&>(v);
}

MESHLM_TARGET_AVX512BF16 inline __m512bh LoadBf16(const uint16_t* p, __mmask32 m) {
  const __m512i v = _mm512_maskz_loadu_epi16(m, p);
  return reinterpret_cast<const __m512bh&>(v);
}

// Sums each of 16 vectors: lane i of the result is the sum of v[i]. Pairs of vectors are
// interleaved and added (within 128-bit lanes, then across them), 15 adds instead of the
// 16 × 4 of separate reductions.
MESHLM_TARGET_AVX512BF16 inline __m512 TransposeSum16(const __m512* v) {
  __m512 s[8];
  for (int i = 0; i < 8; ++i) {
    s[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                         _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  }
  __m512 u[4];
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(s[2 * i]);
    const __m512d b = _mm512_castps_pd(s[2 * i + 1]);
    u[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                         _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  // u[i], 128-bit lane j, element e: part j of the sum of v[4i + e].
  const __m512 v01 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 v23 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_f32x4(u[2], u[3], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(v01, v23, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(v01, v23, _MM_SHUFFLE(3, 1, 3, 1)));
}

// xb: [TR, Kp] bf16; w: [NR, K] bf16 (rows w_stride apart); y: [TR, NR] at
// y[t * y_stride + r]; bias: [NR] or null.
template <size_t TR, size_t NR>
MESHLM_TARGET_AVX512BF16 inline void DotTile(const uint16_t* xb, size_t Kp, const uint16_t* w,
                                             size_t w_stride, size_t K, const float* bias, float* y,
                                             size_t y_stride) {
  __m512 acc[TR * NR];
  for (size_t i = 0; i < TR * NR; ++i) acc[i] = _mm512_setzero_ps();
  size_t k = 0;
  for (; k + kStep <= K; k += kStep) {
    __m512bh wv[NR];
    for (size_t r = 0; r < NR; ++r) wv[r] = LoadBf16(w + r * w_stride + k);
    for (size_t t = 0; t < TR; ++t) {
      const __m512bh xv = LoadBf16(xb + t * Kp + k);
      for (size_t r = 0; r < NR; ++r) {
        acc[t * NR + r] = _mm512_dpbf16_ps(acc[t * NR + r], xv, wv[r]);
      }
    }
  }
  if (k < K) {
    // Masked loads never touch memory past the row, which may be the end of a mapping.
    const __mmask32 m = static_cast<__mmask32>((uint64_t{1} << (K - k)) - 1);
    __m512bh wv[NR];
    for (size_t r = 0; r < NR; ++r) wv[r] = LoadBf16(w + r * w_stride + k, m);
    for (size_t t = 0; t < TR; ++t) {
      const __m512bh xv = LoadBf16(xb + t * Kp + k);
      for (size_t r = 0; r < NR; ++r) {
        acc[t * NR + r] = _mm512_dpbf16_ps(acc[t * NR + r], xv, wv[r]);
      }
    }
  }
  if constexpr (TR * NR == 16) {
    alignas(64) float sums[16];
    _mm512_store_ps(sums, TransposeSum16(acc));
    for (size_t t = 0; t < TR; ++t) {
      for (size_t r = 0; r < NR; ++r) {
        const float s = sums[t * NR + r];
        y[t * y_stride + r] = bias != nullptr ? s + bias[r] : s;
      }
    }
  } else {
    for (size_t t = 0; t < TR; ++t) {
      for (size_t r = 0; r < NR; ++r) {
        const float s = _mm512_reduce_add_ps(acc[t * NR + r]);
        y[t * y_stride + r] = bias != nullptr ? s + bias[r] : s;
      }
    }
  }
}

// All T rows of xb against weight rows [n0, n1).
MESHLM_TARGET_AVX512BF16 void DotRows(const uint16_t* xb, size_t T, size_t Kp, const uint16_t* w,
                                      size_t w_stride, size_t K, const float* bias, float* y,
                                      size_t N, size_t n0, size_t n1) {
  size_t n = n0;
  for (; n + kTileN <= n1; n += kTileN) {
    const uint16_t* wn = w + n * w_stride;
    const float* bn = bias != nullptr ? bias + n : nullptr;
    size_t t = 0;
    for (; t + kTileT <= T; t += kTileT) {
      DotTile<kTileT, kTileN>(xb + t * Kp, Kp, wn, w_stride, K, bn, y + t * N + n, N);
    }
    for (; t < T; ++t) DotTile<1, kTileN>(xb + t * Kp, Kp, wn, w_stride, K, bn, y + t * N + n, N);
  }
  for (; n < n1; ++n) {
    const uint16_t* wn = w + n * w_stride;
    const float* bn = bias != nullptr ? bias + n : nullptr;
    size_t t = 0;
    for (; t + kTileT <= T; t += kTileT) {
      DotTile<kTileT, 1>(xb + t * Kp, Kp, wn, w_stride, K, bn, y + t * N + n, N);
    }
    for (; t < T; ++t) DotTile<1, 1>(xb + t * Kp, Kp, wn, w_stride, K, bn, y + t * N + n, N);
  }
}

}  // namespace

void MatMulBF16Dot(const float* x, size_t T, const Weight& w, const float* bias, float* y,
                   ThreadPool& pool) {
  const size_t K = w.cols;
  const size_t Kp = (K + kStep - 1) / kStep * kStep;
  // Reused across calls: a fresh multi-MiB allocation per call would be mmap'd and
  // page-faulted every time.
  thread_local std::vector<uint16_t> xb;
  if (xb.size() < T * Kp) xb.resize(T * Kp);
  ConvertRows(x, T, K, Kp, xb.data());
  const uint16_t* wd = static_cast<const uint16_t*>(w.data);
  const uint16_t* xbd = xb.data();
  pool.ParallelFor(w.rows, kTileN, [&](size_t n0, size_t n1, size_t) {
    DotRows(xbd, T, Kp, wd, w.row_stride, K, bias, y, w.rows, n0, n1);
  });
}

}  // namespace meshlm::kernels::x86
