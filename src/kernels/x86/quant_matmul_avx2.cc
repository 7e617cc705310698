// Quantized matmul with AVX2 for CPUs without AVX512-VNNI (AMD Zen 2/3, Intel before Ice
// Lake): Q8_0 and Q4_0 weights in their file layout against int8 activation blocks. Only
// this file uses the instructions; everything in it is compiled for that level by the
// pragma below and is called only after QuantAvx2Supported().
//
// vpmaddubsw multiplies unsigned bytes by signed bytes: a Q8_0 block w is used as |w|
// against sign(w) · x (the pairwise int16 sums stay below 2 · 128 · 127 < 2^15), and Q4_0
// nibbles u as they are, the zero point 8 taken off with the activation block's sum. vpmaddwd with
// ones widens the 16 pair sums to 8 int32, which are converted once per block and scaled by d_w ·
// d_x. A register tile of NR weight rows × TR tokens decodes each weight block once for every token
// of the tile (prefill) and loads each activation block once for every row.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/quant_matmul_internal.h"

namespace meshlm::kernels::x86 {

bool QuantAvx2Supported() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                         __builtin_cpu_supports("f16c");
  return ok;
}

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace {

#define MESHLM_ALWAYS_INLINE inline __attribute__((always_inline))

// Bytes of one 32-weight block: an f16 scale, then the quants.
template <bool kQ4>
constexpr size_t kBlockBytes = kQ4 ? 18 : 34;

// Q4_0: the unsigned nibbles u (weights 0-15 low, 16-31 high; w = u - 8). Q8_0: w.
template <bool kQ4>
MESHLM_ALWAYS_INLINE __m256i LoadQuants(const uint8_t* blk) {
  if constexpr (kQ4) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
    const __m256i m = _mm256_set1_epi8(0x0F);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(x, 4), x), m);
  } else {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
  }
}

MESHLM_ALWAYS_INLINE float LoadScale(const uint8_t* blk) {
  uint16_t h;
  std::memcpy(&h, blk, 2);
  return _cvtsh_ss(h);
}

// 8 int32 partial sums of Σ w · q over one block. Q8_0: |w| against sign(w) · q. Q4_0:
// the nibbles u (at most 15, so the pair sums cannot saturate) against q; `corr` =
// -8 · Σ q / 8 per lane removes the zero point exactly.
template <bool kQ4>
MESHLM_ALWAYS_INLINE __m256i BlockDot(__m256i w, __m256i q, __m256i corr) {
  if constexpr (kQ4) {
    const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(w, q), _mm256_set1_epi16(1));
    return _mm256_add_epi32(p, corr);
  } else {
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(q, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
  }
}

inline float HorizontalSum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 h = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
}

// y[(t0 + t) * ldy + n0 + r] for r < NR, t < TR: rows n0.. of w against tokens t0.. of a.
template <bool kQ4, size_t NR, size_t TR>
void Tile(const Matrix& w, size_t n0, size_t t0, const QuantActs& a, float* y, size_t ldy) {
  const size_t K = a.K, nb = a.nb;
  __m256 acc[NR][TR];
  for (size_t r = 0; r < NR; ++r) {
    for (size_t t = 0; t < TR; ++t) acc[r][t] = _mm256_setzero_ps();
  }
  const uint8_t* rows[NR];
  for (size_t r = 0; r < NR; ++r) rows[r] = w.data + (n0 + r) * w.row_stride;
  const int8_t* q0 = a.q.data() + t0 * K;
  const float* d0 = a.d.data() + t0 * nb;
  const int32_t* c0 = a.bcorr.data() + t0 * nb;
  // The next tile's rows, which follow these in memory, are fetched while these are read:
  // one decode step streams many small expert matrices, too short for the hardware
  // prefetcher to reach full speed on each.
  const size_t ahead = NR * w.row_stride;
  for (size_t b = 0; b < nb; ++b) {
    __m256i wq[NR];
    float dw[NR];
    for (size_t r = 0; r < NR; ++r) {
      const uint8_t* blk = rows[r] + b * kBlockBytes<kQ4>;
      _mm_prefetch(reinterpret_cast<const char*>(blk + ahead), _MM_HINT_T0);
      wq[r] = LoadQuants<kQ4>(blk);
      dw[r] = LoadScale(blk);
    }
    for (size_t t = 0; t < TR; ++t) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q0 + t * K + 32 * b));
      // bcorr = -8 · Σ q: a multiple of 8, so the shift divides exactly.
      const __m256i corr = _mm256_set1_epi32(kQ4 ? c0[t * nb + b] >> 3 : 0);
      const __m256 dx = _mm256_set1_ps(d0[t * nb + b]);
      for (size_t r = 0; r < NR; ++r) {
        const __m256 s = _mm256_cvtepi32_ps(BlockDot<kQ4>(wq[r], q, corr));
        acc[r][t] = _mm256_fmadd_ps(_mm256_mul_ps(s, dx), _mm256_set1_ps(dw[r]), acc[r][t]);
      }
    }
  }
  for (size_t r = 0; r < NR; ++r) {
    for (size_t t = 0; t < TR; ++t) y[(t0 + t) * ldy + n0 + r] = HorizontalSum(acc[r][t]);
  }
}

// Rows [n0, n1) against tokens [t0, t0 + TR): NR rows at a time, then one at a time.
template <bool kQ4, size_t NR, size_t TR>
void RowsOfTile(const Matrix& w, size_t n0, size_t n1, size_t t0, const QuantActs& a, float* y,
                size_t ldy) {
  size_t n = n0;
  for (; n + NR <= n1; n += NR) Tile<kQ4, NR, TR>(w, n, t0, a, y, ldy);
  for (; n < n1; ++n) Tile<kQ4, 1, TR>(w, n, t0, a, y, ldy);
}

template <bool kQ4>
void Rows(const Matrix& w, size_t n0, size_t n1, const QuantActs& a, float* y, size_t ldy) {
  // One token (decode): 4 rows share nothing but the activation loads, and keep 4
  // independent chains. Several tokens: 2 rows × 4 tokens reuse each decoded block 4 times
  // within the 16 vector registers.
  size_t t = 0;
  if (a.T == 1) {
    RowsOfTile<kQ4, 4, 1>(w, n0, n1, 0, a, y, ldy);
    return;
  }
  for (; t + 4 <= a.T; t += 4) RowsOfTile<kQ4, 2, 4>(w, n0, n1, t, a, y, ldy);
  switch (a.T - t) {
    case 3:
      RowsOfTile<kQ4, 2, 3>(w, n0, n1, t, a, y, ldy);
      break;
    case 2:
      RowsOfTile<kQ4, 2, 2>(w, n0, n1, t, a, y, ldy);
      break;
    case 1:
      RowsOfTile<kQ4, 4, 1>(w, n0, n1, t, a, y, ldy);
      break;
    default:
      break;
  }
}

}  // namespace

void QuantizeActsAvx2(const float* x, size_t T, size_t K, QuantType t, QuantActs* a) {
  ResizeActs(T, K, a);
  const int offset = ActOffset(t);
  const __m256 sign_mask = _mm256_set1_ps(-0.0f);
  for (size_t i = 0; i < T * a->nb; ++i) {
    const float* xb = x + i * kActBlock;
    __m256 v[4], m = _mm256_setzero_ps();
    for (int j = 0; j < 4; ++j) {
      v[j] = _mm256_loadu_ps(xb + 8 * j);
      m = _mm256_max_ps(m, _mm256_andnot_ps(sign_mask, v[j]));
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float amax = _mm_cvtss_f32(h);
    // The same scalar formulas as the portable quantizer, so the bytes are equal.
    const float inv = amax > 0 ? 127.0f / amax : 0.0f;
    a->d[i] = amax / 127.0f;
    const __m256 vinv = _mm256_set1_ps(inv);
    __m256i q32[4];
    for (int j = 0; j < 4; ++j) {
      q32[j] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[j], vinv),
                                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    // int32 -> int8 in order: packs interleave 128-bit lanes, the permute restores them.
    const __m256i p01 = _mm256_packs_epi32(q32[0], q32[1]);
    const __m256i p23 = _mm256_packs_epi32(q32[2], q32[3]);
    const __m256i p = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23),
                                                  _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    int8_t* q = a->q.data() + i * kActBlock;
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), p);
    // Sums of each 4 consecutive q, then of the block.
    const __m256i s4 =
        _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), p), _mm256_set1_epi16(1));
    int32_t sums[8];
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums), s4);
    int32_t isum = 0;
    for (int l = 0; l < 8; ++l) {
      isum += sums[l];
      a->corr[i * 8 + l] = -offset * sums[l];
    }
    a->sum[i] = a->d[i] * static_cast<float>(isum);
    a->bcorr[i] = -offset * isum;
  }
  HalfCorrections(a);
}

void QuantDotRowsAvx2(const Matrix& w, size_t n0, size_t n1, const QuantActs& a, float* y,
                      size_t ldy) {
  if (*w.quant == QuantType::kQ4_0) {
    Rows<true>(w, n0, n1, a, y, ldy);
  } else {
    Rows<false>(w, n0, n1, a, y, ldy);
  }
}

#pragma GCC pop_options

}  // namespace meshlm::kernels::x86
