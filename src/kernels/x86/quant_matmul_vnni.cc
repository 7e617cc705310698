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
#define MESHLM_ALWAYS_INLINE_LAMBDA __attribute__((always_inline))

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
      if constexpr (Dec::kHasMin) macc[r][t] += dec[r].Min(j) * a.sum[tb];
    }
  }
}

// y[(t0 + t) * ldy + n0 + r] for r < NR, t < TR: rows n0.. of w against tokens t0.. of a.
// Small tiles alternate two sets of accumulators between blocks, so that consecutive
// blocks do not wait on one FMA chain (4 cycles each), which capped decode at 8 MACs per
// cycle.
template <class Dec, size_t NR, size_t TR>
void Tile(const Matrix& w, size_t n0, const QuantActs& a, size_t t0, float* y, size_t ldy) {
  constexpr bool kTwo = NR * TR <= 8;
  const size_t nb = a.nb;
  __m256 acc0[NR][TR], acc1[NR][TR];
  float macc[NR][TR];
  for (size_t r = 0; r < NR; ++r) {
    for (size_t t = 0; t < TR; ++t) {
      acc0[r][t] = acc1[r][t] = _mm256_setzero_ps();
      macc[r][t] = 0;
    }
  }
  auto& acc_odd = kTwo ? acc1 : acc0;
  Dec dec[NR];
  if constexpr (Dec::kSub == 1) {
    size_t s = 0;
    for (; s + 2 <= nb; s += 2) {
      for (size_t r = 0; r < NR; ++r) dec[r].Prepare(w, n0 + r, s);
      Block<Dec, NR, TR>(dec, 0, s, a, t0, acc0, macc);
      for (size_t r = 0; r < NR; ++r) dec[r].Prepare(w, n0 + r, s + 1);
      Block<Dec, NR, TR>(dec, 0, s + 1, a, t0, acc_odd, macc);
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
        Block<Dec, NR, TR>(dec, j + 1, s * Dec::kSub + j + 1, a, t0, acc_odd, macc);
      }
    }
  }
  for (size_t r = 0; r < NR; ++r) {
    for (size_t t = 0; t < TR; ++t) {
      const __m256 sum = kTwo ? _mm256_add_ps(acc0[r][t], acc1[r][t]) : acc0[r][t];
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

// Decode (T < 4) of one row for the one-block decoders: two blocks per 512-bit vector,
// which halves the instructions per block (Zen 4 issues a 512-bit operation as one
// micro-op). Measured gains were small (MLX 4-bit ~10%, GGUF within noise): 4-bit decode
// is bound by the shuffle ports (f16 scale conversion, lane inserts, the scale permute),
// which pairs do not relieve; Q4_0 and Q8_0 use it only for the blocks after RowChunks.
// Tokens t < TR of a, blocks [b_start, nb) of the row; `part` (the blocks before b_start)
// is added to each result.
template <class Dec, size_t TR>
void RowPairs(const Matrix& w, size_t n, const QuantActs& a, float* y, size_t ldy,
              size_t b_start = 0, const float* part = nullptr) {
  const size_t K = a.K, nb = a.nb;
  // Lanes 0-7 take the first block's scale, 8-15 the second's.
  const __m512i halves = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  __m512 acc[TR];
  float tail[TR], macc[TR], zacc[TR];  // zacc: Σ scale · block sum, times -offset at the end
  for (size_t t = 0; t < TR; ++t) {
    acc[t] = _mm512_setzero_ps();
    tail[t] = macc[t] = zacc[t] = 0;
  }
  Dec d0, d1;
  // Pair b of the row into accumulators `into` (two sets alternate, so that consecutive
  // pairs do not wait on one FMA chain).
  auto pair = [&](size_t b, __m512(&into)[TR]) MESHLM_ALWAYS_INLINE_LAMBDA {
    d0.Prepare(w, n, b);
    d1.Prepare(w, n, b + 1);
    const __m512i wq = Dec::Pair(d0, d1);
    const __m128 ws = _mm_setr_ps(d0.ScaleValue(), d1.ScaleValue(), 0.0f, 0.0f);
    for (size_t t = 0; t < TR; ++t) {
      const size_t tb = t * nb + b;
      const __m512i aq = _mm512_loadu_si512(a.q.data() + t * K + 32 * b);
      const __m128 da = _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(&a.d[tb])));
      const __m512 sc = _mm512_permutexvar_ps(halves, _mm512_castps128_ps512(_mm_mul_ps(ws, da)));
      // The zero point comes off in f32 through the block sums (4 bytes per block) rather
      // than through `corr` (32 bytes per block): the activation side of a decode row is
      // then 1.1 bytes per weight, not 2, and its loads were what bound this loop.
      const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq, aq);
      into[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), sc, into[t]);
      const float s0 = a.sum[tb], s1 = a.sum[tb + 1];
      if constexpr (Dec::kOffset != 0) {
        zacc[t] += d0.ScaleValue() * s0 + d1.ScaleValue() * s1;
      }
      if constexpr (Dec::kHasMin) macc[t] += d0.Min(0) * s0 + d1.Min(0) * s1;
    }
  };
  __m512 acc2[TR];
  for (size_t t = 0; t < TR; ++t) acc2[t] = _mm512_setzero_ps();
  size_t b = b_start;
  for (; b + 4 <= nb; b += 4) {
    pair(b, acc);
    pair(b + 2, acc2);
  }
  for (; b + 2 <= nb; b += 2) pair(b, acc);
  for (size_t t = 0; t < TR; ++t) acc[t] = _mm512_add_ps(acc[t], acc2[t]);
  if (b < nb) {  // an odd block count: the last block alone
    d0.Prepare(w, n, b);
    __m256 acc1[1][TR];
    float macc1[1][TR];
    for (size_t t = 0; t < TR; ++t) {
      acc1[0][t] = _mm256_setzero_ps();
      macc1[0][t] = 0;
    }
    Block<Dec, 1, TR>(&d0, 0, b, a, 0, acc1, macc1);
    for (size_t t = 0; t < TR; ++t) tail[t] = HorizontalSum(acc1[0][t]) + macc1[0][t];
  }
  for (size_t t = 0; t < TR; ++t) {
    y[t * ldy + n] = _mm512_reduce_add_ps(acc[t]) + tail[t] + macc[t] -
                     static_cast<float>(Dec::kOffset) * zacc[t] + (part ? part[t] : 0.0f);
  }
}

// Sums of 16 blocks' int32 partial dot products → one lane per block, block b in lane
// 4 * (b % 4) + b / 4, from q[i], 128-bit lane k: 4 partials of block 4i + k. The Q4_0
// decode computes its dots in this order directly; BlockSums16 gets there from pairs.
MESHLM_ALWAYS_INLINE __m512i QuadSums16(const __m512i (&q)[4]) {
  __m512i r[2];  // r[j], lane k: 2 partials of block 8j + k, then 2 of block 8j + 4 + k
  for (int j = 0; j < 2; ++j) {
    r[j] = _mm512_add_epi32(_mm512_unpacklo_epi64(q[2 * j], q[2 * j + 1]),
                            _mm512_unpackhi_epi64(q[2 * j], q[2 * j + 1]));
  }
  const __m512 r0 = _mm512_castsi512_ps(r[0]), r1 = _mm512_castsi512_ps(r[1]);
  // Lane k: blocks k, 4 + k, 8 + k, 12 + k.
  return _mm512_add_epi32(_mm512_castps_si512(_mm512_shuffle_ps(r0, r1, _MM_SHUFFLE(2, 0, 2, 0))),
                          _mm512_castps_si512(_mm512_shuffle_ps(r0, r1, _MM_SHUFFLE(3, 1, 3, 1))));
}

// As QuadSums16 from d: [8 pairs] (pair p: lanes 0-7 block 2p, 8-15 block 2p + 1). The
// whole tree is 14 shuffles for 16 blocks, where a scale vector per pair took 2 f16
// conversions, 2 inserts and a permute.
MESHLM_ALWAYS_INLINE __m512i BlockSums16(const __m512i (&d)[8]) {
  __m512i q[4];
  for (int i = 0; i < 4; ++i) {
    const __m512i x = _mm512_shuffle_i32x4(d[2 * i], d[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i z = _mm512_shuffle_i32x4(d[2 * i], d[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1));
    q[i] = _mm512_add_epi32(x, z);
  }
  return QuadSums16(q);
}

// The 16 nibble bytes of each of the 4 Q4_0 blocks at p, one block per 128-bit lane: one
// word permute of two loads that stay within the 72 bytes of the blocks.
MESHLM_ALWAYS_INLINE __m512i Nibbles4Blocks(const uint8_t* p) {
  // Lane k, word j: word 1 + 9k + j of the blocks; words from 32 on come from the second
  // load, which starts 8 bytes (4 words) further than 64.
  alignas(64) static constexpr uint16_t kIdx[32] = {1,  2,  3,  4,  5,  6,  7,  8,  10, 11, 12,
                                                    13, 14, 15, 16, 17, 19, 20, 21, 22, 23, 24,
                                                    25, 26, 28, 29, 30, 31, 60, 61, 62, 63};
  const __m512i lo = _mm512_loadu_si512(p), hi = _mm512_loadu_si512(p + 8);
  return _mm512_permutex2var_epi16(lo, _mm512_load_si512(kIdx), hi);
}

// The f16 scales at the start of 16 consecutive blocks of kStride bytes at p, as f32.
// Each 128-byte window holds the scales of kG blocks, picked out with one two-table word
// permute (vpermt2w); a 16-lane gather measured slower.
template <int kStride>
MESHLM_ALWAYS_INLINE __m512 Scales16(const uint8_t* p) {
  constexpr int kG = kStride == 18 ? 8 : 4;  // blocks per window: Q4_0, Q8_0
  static_assert(kStride == 18 || kStride == 34);
  // The windows' scales and loads stay within the 16 blocks.
  static_assert((kG - 1) * kStride + 2 <= 128 &&
                kG * kStride * (16 / kG - 1) + 128 <= 16 * kStride);
  constexpr uint16_t kW = kStride / 2;  // block stride in words
  // Word j of each window's result: the scale of block j % kG of the window.
  alignas(64) static constexpr uint16_t kIdx[32] = {
      0 * kW, 1 * kW, 2 * kW, 3 * kW, (4 % kG) * kW, (5 % kG) * kW, (6 % kG) * kW, (7 % kG) * kW,
      0 * kW, 1 * kW, 2 * kW, 3 * kW, (4 % kG) * kW, (5 % kG) * kW, (6 % kG) * kW, (7 % kG) * kW};
  const __m512i idx = _mm512_load_si512(kIdx);
  __m512i h = _mm512_setzero_si512();
  for (int g = 0; g < 16 / kG; ++g) {
    const uint8_t* wp = p + g * kG * kStride;
    const __m512i lo = _mm512_loadu_si512(wp), hi = _mm512_loadu_si512(wp + 64);
    const __mmask32 lanes = ((1u << kG) - 1) << (g * kG);
    h = _mm512_mask_blend_epi16(lanes, h, _mm512_permutex2var_epi16(lo, idx, hi));
  }
  return _mm512_cvtph_ps(_mm512_castsi512_si256(h));
}

// Decode (T < 4) of one row of Q4_0 or Q8_0 (blocks of a f16 scale then the quants), 16
// blocks (512 weights) per step: the 16 f16 scales come in with 2-4 word permutes and one
// conversion, each block's integer dot is summed exactly in int32 (QuadSums16), and the
// scales d_w · d_x, the zero-point term d_w · sum and the conversion to f32 are one vector
// operation each per 16 blocks instead of scalar work per block. Q4_0 unpacks 4 blocks per
// 512-bit vector against the activations in QuantActs::quads order, which saves the first
// level of the sum tree. Blocks past the last multiple of 16 go through RowPairs. Tokens
// t < TR of a, all of the row.
template <class Dec, size_t TR>
void RowChunks(const Matrix& w, size_t n, const QuantActs& a, float* y, size_t ldy) {
  constexpr int kStride = sizeof(typename Dec::Block);
  const size_t K = a.K, nb = a.nb;
  const uint8_t* row = w.data + n * w.row_stride;
  // Block b's lane of BlockSums16 → lane b (a 4 × 4 transpose).
  const __m512i to_block = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  __m512 acc[TR], zacc[TR];  // zacc: Σ d_w · block sum, times -offset at the end
  for (size_t t = 0; t < TR; ++t) acc[t] = zacc[t] = _mm512_setzero_ps();
  size_t b = 0;
  for (; b + 16 <= nb; b += 16) {
    const uint8_t* p = row + b * kStride;
    const __m512 dw = Scales16<kStride>(p);
    __m512i wq[8];
    if constexpr (Dec::kQuads) {
      // wq[2g], wq[2g + 1]: low and high nibbles of blocks 4g..4g + 3, a block per lane.
      for (int g = 0; g < 4; ++g) {
        const __m512i x = Nibbles4Blocks(p + 4 * g * kStride);
        const __m512i m = _mm512_set1_epi8(0x0F);
        wq[2 * g] = _mm512_and_si512(x, m);
        wq[2 * g + 1] = _mm512_and_si512(_mm512_srli_epi16(x, 4), m);
      }
    } else {
      for (int i = 0; i < 8; ++i) wq[i] = Dec::PairAt(p + 2 * i * kStride);
    }
    for (size_t t = 0; t < TR; ++t) {
      __m512i sums;
      if constexpr (Dec::kQuads) {
        const int8_t* aq = a.quads.data() + t * K + 32 * b;
        __m512i q[4];
        for (int g = 0; g < 4; ++g) {
          const __m512i lo = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq[2 * g],
                                                 _mm512_loadu_si512(aq + 128 * g));
          q[g] = _mm512_dpbusd_epi32(lo, wq[2 * g + 1], _mm512_loadu_si512(aq + 128 * g + 64));
        }
        sums = _mm512_permutexvar_epi32(to_block, QuadSums16(q));
      } else {
        const int8_t* aq = a.q.data() + t * K + 32 * b;
        __m512i dot[8];
        for (int i = 0; i < 8; ++i) {
          dot[i] =
              _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq[i], _mm512_loadu_si512(aq + 64 * i));
        }
        sums = _mm512_permutexvar_epi32(to_block, BlockSums16(dot));
      }
      const size_t tb = t * nb + b;
      const __m512 sc = _mm512_mul_ps(dw, _mm512_loadu_ps(a.d.data() + tb));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), sc, acc[t]);
      zacc[t] = _mm512_fmadd_ps(dw, _mm512_loadu_ps(a.sum.data() + tb), zacc[t]);
    }
  }
  float part[TR];
  for (size_t t = 0; t < TR; ++t) {
    part[t] = _mm512_reduce_add_ps(
        _mm512_fnmadd_ps(_mm512_set1_ps(static_cast<float>(Dec::kOffset)), zacc[t], acc[t]));
  }
  if (b < nb) {
    RowPairs<Dec, TR>(w, n, a, y, ldy, b, part);
  } else {
    for (size_t t = 0; t < TR; ++t) y[t * ldy + n] = part[t];
  }
}

template <class Dec>
void DotRows(const Matrix& w, size_t n0, size_t n1, const QuantActs& a, float* y, size_t ldy) {
  size_t n = n0;
  if constexpr (Dec::kChunks) {
    if (a.T < kMaxTileT) {
      for (; n < n1; ++n) {
        switch (a.T) {
          case 1:
            RowChunks<Dec, 1>(w, n, a, y, ldy);
            break;
          case 2:
            RowChunks<Dec, 2>(w, n, a, y, ldy);
            break;
          default:
            RowChunks<Dec, 3>(w, n, a, y, ldy);
            break;
        }
      }
      return;
    }
  }
  if constexpr (Dec::kSub == 1) {
    if (a.T < kMaxTileT) {
      for (; n < n1; ++n) {
        switch (a.T) {
          case 1:
            RowPairs<Dec, 1>(w, n, a, y, ldy);
            break;
          case 2:
            RowPairs<Dec, 2>(w, n, a, y, ldy);
            break;
          default:
            RowPairs<Dec, 3>(w, n, a, y, ldy);
            break;
        }
      }
      return;
    }
  }
  // Decode reads each weight once: one row at a time keeps a single sequential stream,
  // which the hardware prefetchers follow at full speed; several interleaved short rows
  // ran at a fraction of it. Prefill reuses each unpacked weight vector for 4 tokens.
  if (a.T >= kMaxTileT) {
    for (; n + kTileN <= n1; n += kTileN) Rows<Dec, kTileN>(w, n, a, y, ldy);
  }
  for (; n < n1; ++n) Rows<Dec, 1>(w, n, a, y, ldy);
}

}  // namespace

void QuantizeActsVnni(const float* x, size_t T, size_t K, QuantType t, bool packed, QuantActs* a) {
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
  if (t == QuantType::kQ4_0 && T < kMaxTileT && !packed) {
    // Each 4 blocks [b0 b1 b2 b3] of 32 as [b0..b3 bytes 0-15, b0..b3 bytes 16-31].
    a->quads.resize(T * K);
    for (size_t tok = 0; tok < T; ++tok) {
      for (size_t k = 0; k + 128 <= K; k += 128) {
        const int8_t* q = a->q.data() + tok * K + k;
        const __m512i x0 = _mm512_loadu_si512(q), x1 = _mm512_loadu_si512(q + 64);
        int8_t* o = a->quads.data() + tok * K + k;
        _mm512_storeu_si512(o, _mm512_shuffle_i32x4(x0, x1, _MM_SHUFFLE(2, 0, 2, 0)));
        _mm512_storeu_si512(o + 64, _mm512_shuffle_i32x4(x0, x1, _MM_SHUFFLE(3, 1, 3, 1)));
      }
    }
  }
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
