// Quantized matmul with AVX512-VNNI (vpdpbusd on 256-bit vectors): Q8_0, Q4_0, Q4_K,
// Q6_K and MLX 4/8-bit weights against int8 activation blocks. Only this file uses the
// instructions; everything in it is compiled for that level by the pragma below and is
// called only after QuantVnniSupported().
//
// vpdpbusd multiplies unsigned bytes by signed bytes, so every weight type is read as
// unsigned quants u with a zero point (Q8_0 as q ^ 0x80, the 4- and 6-bit nibbles as
// stored) and the activations are the signed side. Starting each dot product from the
// activation block's `corr` removes the zero point exactly (see QuantActs). One 32-weight
// block is one ymm: an int32 dot per 4 weights, converted once and scaled by
// d_w · d_x. A register tile of kTileN weight rows × up to 4 tokens reuses each unpacked
// weight vector for every token (prefill) and each activation vector for every row.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/quant_matmul_internal.h"

namespace meshlm::kernels::x86 {

bool QuantVnniSupported() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") &&
                         __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("f16c") &&
                         __builtin_cpu_supports("fma");
  return ok;
}

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,f16c,fma,avx2")

namespace {

#define MESHLM_ALWAYS_INLINE inline __attribute__((always_inline))

constexpr size_t kTileN = 4;
constexpr size_t kMaxTileT = 4;

#include "kernels/x86/quant_decoders_vnni-inl.h"

inline float HorizontalSum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 h = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
}

// y[(t0 + t) * ldy + n0 + r] for r < NR, t < TR: rows n0.. of w against tokens t0.. of a.
// One 32-weight block j of the prepared super-block (block b of the row) for NR rows and
// TR tokens, accumulated into acc / macc.
template <class Dec, size_t NR, size_t TR>
MESHLM_ALWAYS_INLINE void Block(const Dec* dec, size_t j, size_t b, const QuantActs& a, size_t t0,
                                __m256 (&acc)[NR][TR], float (&macc)[NR][TR]) {
  const size_t K = a.K, nb = a.nb;
  __m256i wq[NR];
  __m256 ws[NR];
  for (size_t r = 0; r < NR; ++r) {
    wq[r] = dec[r].Quants(j);
    ws[r] = dec[r].Scale(j);
  }
  for (size_t t = 0; t < TR; ++t) {
    const size_t tb = (t0 + t) * nb + b;
    const __m256i aq =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q.data() + (t0 + t) * K + 32 * b));
    const __m256i corr =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.corr.data() + 8 * tb));
    const __m256 da = _mm256_set1_ps(a.d[tb]);
    for (size_t r = 0; r < NR; ++r) {
      const __m256i dot = _mm256_dpbusd_epi32(corr, wq[r], aq);
      acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(ws[r], da), acc[r][t]);
      // Fused on purpose: left to the compiler, whether this contracts varied with the tile.
      if constexpr (Dec::kHasMin) macc[r][t] = __builtin_fmaf(dec[r].Min(j), a.sum[tb], macc[r][t]);
    }
  }
}

// y[(t0 + t) * ldy + n0 + r] for r < NR, t < TR: rows n0.. of w against tokens t0.. of a.
// Even and odd blocks go to two sets of accumulators, so that consecutive blocks do not
// wait on one FMA chain (4 cycles each), which capped decode at 8 MACs per cycle. Every
// tile size does so, which keeps each row's order of sums the same for any T.
template <class Dec, size_t NR, size_t TR>
void Tile(const Matrix& w, size_t n0, const QuantActs& a, size_t t0, float* y, size_t ldy) {
  const size_t nb = a.nb;
  __m256 acc0[NR][TR], acc1[NR][TR];
  float macc[NR][TR];
  for (size_t r = 0; r < NR; ++r) {
    for (size_t t = 0; t < TR; ++t) {
      acc0[r][t] = acc1[r][t] = _mm256_setzero_ps();
      macc[r][t] = 0;
    }
  }
  Dec dec[NR];
  if constexpr (Dec::kSub == 1) {
    size_t s = 0;
    for (; s + 2 <= nb; s += 2) {
      for (size_t r = 0; r < NR; ++r) dec[r].Prepare(w, n0 + r, s);
      Block<Dec, NR, TR>(dec, 0, s, a, t0, acc0, macc);
      for (size_t r = 0; r < NR; ++r) dec[r].Prepare(w, n0 + r, s + 1);
      Block<Dec, NR, TR>(dec, 0, s + 1, a, t0, acc1, macc);
    }
    if (s < nb) {
      for (size_t r = 0; r < NR; ++r) dec[r].Prepare(w, n0 + r, s);
      Block<Dec, NR, TR>(dec, 0, s, a, t0, acc0, macc);
    }
  } else {
    static_assert(Dec::kSub % 2 == 0);
    for (size_t s = 0; s < nb / Dec::kSub; ++s) {
      for (size_t r = 0; r < NR; ++r) dec[r].Prepare(w, n0 + r, s);
      for (size_t j = 0; j < Dec::kSub; j += 2) {
        Block<Dec, NR, TR>(dec, j, s * Dec::kSub + j, a, t0, acc0, macc);
        Block<Dec, NR, TR>(dec, j + 1, s * Dec::kSub + j + 1, a, t0, acc1, macc);
      }
    }
  }
  for (size_t r = 0; r < NR; ++r) {
    for (size_t t = 0; t < TR; ++t) {
      const __m256 sum = _mm256_add_ps(acc0[r][t], acc1[r][t]);
      y[(t0 + t) * ldy + n0 + r] = HorizontalSum(sum) + macc[r][t];
    }
  }
}

template <class Dec, size_t NR>
void Rows(const Matrix& w, size_t n0, const QuantActs& a, float* y, size_t ldy) {
  size_t t = 0;
  for (; t + kMaxTileT <= a.T; t += kMaxTileT) Tile<Dec, NR, kMaxTileT>(w, n0, a, t, y, ldy);
  switch (a.T - t) {
    case 3:
      Tile<Dec, NR, 3>(w, n0, a, t, y, ldy);
      break;
    case 2:
      Tile<Dec, NR, 2>(w, n0, a, t, y, ldy);
      break;
    case 1:
      Tile<Dec, NR, 1>(w, n0, a, t, y, ldy);
      break;
    default:
      break;
  }
}

// Every T goes through the same tiles, so that each row's sum runs in one order however
// many tokens share the call (a sequence's results do not depend on its batch). Decode
// reads each weight once: one row at a time keeps a single sequential stream, which the
// hardware prefetchers follow at full speed; several interleaved short rows ran at a
// fraction of it. Prefill reuses each unpacked weight vector for 4 tokens.
template <class Dec>
void DotRows(const Matrix& w, size_t n0, size_t n1, const QuantActs& a, float* y, size_t ldy) {
  size_t n = n0;
  if (a.T >= kMaxTileT) {
    for (; n + kTileN <= n1; n += kTileN) Rows<Dec, kTileN>(w, n, a, y, ldy);
  }
  for (; n < n1; ++n) Rows<Dec, 1>(w, n, a, y, ldy);
}

}  // namespace

void QuantizeActsVnni(const float* x, size_t T, size_t K, QuantType t, QuantActs* a) {
  ResizeActs(T, K, a);
  const int offset = ActOffset(t);
  // Positions of the 16 even and 16 odd elements of a block (MLX 4-bit order).
  const __m512i evens = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odds = _mm512_add_epi32(evens, _mm512_set1_epi32(1));
  for (size_t i = 0; i < T * a->nb; ++i) {
    const float* xb = x + i * kActBlock;
    __m512 lo = _mm512_loadu_ps(xb), hi = _mm512_loadu_ps(xb + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(lo), _mm512_abs_ps(hi)));
    // The same expressions as QuantizeActs, so both produce equal bytes.
    const float inv = amax > 0 ? 127.0f / amax : 0.0f;
    a->d[i] = amax / 127.0f;
    if (t == QuantType::kMlx4) {
      const __m512 e = _mm512_permutex2var_ps(lo, evens, hi);
      const __m512 o = _mm512_permutex2var_ps(lo, odds, hi);
      lo = e;
      hi = o;
    }
    // Round to nearest even (the MXCSR default), as std::nearbyint.
    const __m512i qlo = _mm512_cvtps_epi32(_mm512_mul_ps(lo, _mm512_set1_ps(inv)));
    const __m512i qhi = _mm512_cvtps_epi32(_mm512_mul_ps(hi, _mm512_set1_ps(inv)));
    int8_t* q = a->q.data() + i * kActBlock;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtepi32_epi8(qlo));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16), _mm512_cvtepi32_epi8(qhi));
    const int32_t isum = _mm512_reduce_add_epi32(_mm512_add_epi32(qlo, qhi));
    a->sum[i] = a->d[i] * static_cast<float>(isum);
    a->bcorr[i] = -offset * isum;
    // Sums of each 4 consecutive q: vpdpbusd of ones with q.
    const __m256i q8 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
    const __m256i s4 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), q8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(a->corr.data() + 8 * i),
                        _mm256_mullo_epi32(s4, _mm256_set1_epi32(-offset)));
  }
  HalfCorrections(a);
}

void QuantDotRowsVnni(const Matrix& w, size_t n0, size_t n1, const QuantActs& a, float* y,
                      size_t ldy) {
  switch (*w.quant) {
    case QuantType::kQ8_0:
      DotRows<DecQ8_0>(w, n0, n1, a, y, ldy);
      return;
    case QuantType::kQ4_0:
      DotRows<DecQ4_0>(w, n0, n1, a, y, ldy);
      return;
    case QuantType::kQ4_K:
      DotRows<DecQ4_K>(w, n0, n1, a, y, ldy);
      return;
    case QuantType::kQ6_K:
      DotRows<DecQ6_K>(w, n0, n1, a, y, ldy);
      return;
    case QuantType::kMlx4:
      DotRows<DecMlx<4>>(w, n0, n1, a, y, ldy);
      return;
    case QuantType::kMlx8:
      DotRows<DecMlx<8>>(w, n0, n1, a, y, ldy);
      return;
  }
}

#pragma GCC pop_options

}  // namespace meshlm::kernels::x86
