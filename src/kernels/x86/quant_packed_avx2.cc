// Quantized matmul with AVX2 (no VNNI) for Q8_0, Q4_0, Q4_K, Q6_K and MLX 4-bit weights in
// the packed layout (tensor/quant.h): 16 rows per group, one 4-byte word of each row per
// 64-byte line, so one 32-byte vector holds a word of 8 rows.
//
// vpmaddubsw of such a vector against one activation word broadcast to every lane gives
// each row two int16 sums of 2 products, and each lane pair stays one row from start to
// end: no sums across lanes, no per-row scale loads, and a decode reads each group as one
// sequential stream. The 4-bit kinds' nibbles (at most 15) keep a whole block's 8 such
// sums in int16 (8 · 2 · 15 · 127 < 2^15) before one vpmaddwd widens them; Q6_K's values
// (at most 63) allow 2; Q8_0, stored as q ^ 0x80, is turned back into signed bytes and
// multiplied as |w| against sign(w) · x, one vpmaddwd per word. The int32 sums start from
// the activation block's -offset · Σ q (QuantActs), which removes the zero points of the
// unsigned kinds exactly; then one conversion and one FMA by d_w · d_x per block, row
// half and token (MLX and Q4_K: one more for the bias times the activation block's sum).
//
// A tile is one group's 16 rows (both 8-row halves at once, so each activation word is
// broadcast once for both) against 1 or 2 tokens, within the 16 vector registers.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/quant_matmul_internal.h"

namespace meshlm::kernels::x86 {

bool QuantAvx2Handles(const Matrix& w) {
  const QuantType t = *w.quant;
  if (w.packed) {
    return t == QuantType::kQ8_0 || t == QuantType::kQ4_0 || t == QuantType::kQ4_K ||
           t == QuantType::kQ6_K || t == QuantType::kMlx4;
  }
  return t == QuantType::kQ8_0 || t == QuantType::kQ4_0;
}

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace {

#define MESHLM_ALWAYS_INLINE inline __attribute__((always_inline))

// The weight stream is prefetched this many bytes ahead, as in the VNNI kernel: one core's
// hardware prefetchers alone keep too few lines in flight.
constexpr size_t kAhead = 4096;

#include "kernels/x86/quant_packed_kinds-inl.h"

// Keeps v in a register at this point in tiles of several tokens: without it GCC
// reassociates a block's chain of adds into a tree, computes every product first and
// spills them (72 stack accesses per block in the 2-token 4-bit tile, 20 with it; prefill
// 54 -> 60-66 GMAC/s on one thread). One token's tile has registers to spare.
template <size_t TT>
MESHLM_ALWAYS_INLINE void Pin(__m256i& v) {
  if constexpr (TT > 1) __asm__("" : "+x"(v));
}

MESHLM_ALWAYS_INLINE __m256i Word(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// The 8 scales (or biases) of row half h at p as f32: 16-bit, or f32 for the K kinds.
template <Kind kKind>
MESHLM_ALWAYS_INLINE __m256 LoadParams(const uint8_t* p, size_t h) {
  if constexpr (kKind == kKindQ4K || kKind == kKindQ6K) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p) + 8 * h);
  }
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * h));
  if constexpr (kKind == kKindMlx4BF16) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
  } else {
    return _mm256_cvtph_ps(v);
  }
}

MESHLM_ALWAYS_INLINE __m256i LoadQuants(const uint8_t* q, size_t j, size_t h) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * j + 32 * h));
}

// Rows n0..n0+15 (group `grp`, nb blocks) against tokens [t0, t0 + TT) of a; results to
// y[t * ldy + n0 + r].
template <Kind kKind, size_t TT>
void GroupTile(const uint8_t* grp, const QuantActs& a, size_t t0, float* y, size_t ldy, size_t n0) {
  using Tr = KindTraits<kKind>;
  constexpr bool kQ8 = Tr::kQ8, kQ6 = Tr::kQ6;
  constexpr bool kBias = Tr::kBias;
  constexpr size_t kQB = Tr::kQB, kPB = Tr::kPB, kPair = Tr::kPair;
  const size_t K = a.K, nb = a.nb;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[TT][2];
  for (size_t t = 0; t < TT; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
  for (size_t b = 0; b < nb; ++b) {
    const uint8_t* pair = grp + b / 2 * kPair;
    const uint8_t* params = pair + kPB * (b % 2);
    const uint8_t* q = pair + 2 * kPB + (b % 2) * kQB;
    if (t0 == 0) {
      for (size_t j = 0; j < kQB + kPB; j += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(q + kAhead + j), _MM_HINT_T0);
      }
    }
    const int8_t* x[TT];
    for (size_t t = 0; t < TT; ++t) x[t] = a.q.data() + (t0 + t) * K + 32 * b;
    // s[t][h]: int32 sums of row half h for token t (Q6_K: of the block's first 16
    // weights; s2 of the last 16).
    __m256i s[TT][2], s2[TT][2];
    if constexpr (kQ8) {
      for (size_t t = 0; t < TT; ++t) s[t][0] = s[t][1] = _mm256_setzero_si256();
      for (size_t j = 0; j < 8; ++j) {
        for (size_t h = 0; h < 2; ++h) {
          const __m256i w = _mm256_xor_si256(LoadQuants(q, j, h), _mm256_set1_epi8(-128));
          const __m256i aw = _mm256_abs_epi8(w);
          for (size_t t = 0; t < TT; ++t) {
            const __m256i p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(Word(x[t] + 4 * j), w));
            s[t][h] = _mm256_add_epi32(s[t][h], _mm256_madd_epi16(p, ones));
            Pin<TT>(s[t][h]);
          }
        }
      }
    } else if constexpr (kQ6) {
      for (size_t t = 0; t < TT; ++t) {
        const size_t tb = (t0 + t) * nb + b;
        s[t][0] = s[t][1] = _mm256_set1_epi32(a.hcorr[2 * tb]);
        s2[t][0] = s2[t][1] = _mm256_set1_epi32(a.hcorr[2 * tb + 1]);
      }
      for (size_t j = 0; j < 8; j += 2) {  // two words: 2 · 2 · 63 · 127 < 2^15
        for (size_t h = 0; h < 2; ++h) {
          const __m256i w0 = LoadQuants(q, j, h), w1 = LoadQuants(q, j + 1, h);
          for (size_t t = 0; t < TT; ++t) {
            const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(w0, Word(x[t] + 4 * j)),
                                               _mm256_maddubs_epi16(w1, Word(x[t] + 4 * j + 4)));
            __m256i& dst = j < 4 ? s[t][h] : s2[t][h];
            dst = _mm256_add_epi32(dst, _mm256_madd_epi16(p, ones));
            Pin<TT>(dst);
          }
        }
      }
    } else {
      // Word j's low nibbles are weights 4j.., its high nibbles weights 16 + 4j...
      __m256i p[TT][2];
      for (size_t t = 0; t < TT; ++t) p[t][0] = p[t][1] = _mm256_setzero_si256();
      const __m256i low = _mm256_set1_epi8(0x0F);
      for (size_t j = 0; j < 4; ++j) {
        for (size_t h = 0; h < 2; ++h) {
          const __m256i v = LoadQuants(q, j, h);
          const __m256i lo = _mm256_and_si256(v, low);
          const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
          for (size_t t = 0; t < TT; ++t) {
            p[t][h] = _mm256_add_epi16(p[t][h], _mm256_maddubs_epi16(lo, Word(x[t] + 4 * j)));
            Pin<TT>(p[t][h]);
            p[t][h] = _mm256_add_epi16(p[t][h], _mm256_maddubs_epi16(hi, Word(x[t] + 16 + 4 * j)));
            Pin<TT>(p[t][h]);
          }
        }
      }
      for (size_t t = 0; t < TT; ++t) {
        const __m256i corr = _mm256_set1_epi32(a.bcorr[(t0 + t) * nb + b]);
        for (size_t h = 0; h < 2; ++h) {
          s[t][h] = _mm256_add_epi32(_mm256_madd_epi16(p[t][h], ones), corr);
        }
      }
    }
    for (size_t h = 0; h < 2; ++h) {
      const __m256 dw = LoadParams<kKind>(params, h);
      for (size_t t = 0; t < TT; ++t) {
        const size_t tb = (t0 + t) * nb + b;
        const __m256 dx = _mm256_set1_ps(a.d[tb]);
        acc[t][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[t][h]), _mm256_mul_ps(dw, dx), acc[t][h]);
        if constexpr (kQ6) {  // the second 16 weights' scales follow the first's
          acc[t][h] =
              _mm256_fmadd_ps(_mm256_cvtepi32_ps(s2[t][h]),
                              _mm256_mul_ps(LoadParams<kKind>(params + 64, h), dx), acc[t][h]);
        }
        if constexpr (kBias) {  // + bias · Σ x of the block
          acc[t][h] = _mm256_fmadd_ps(LoadParams<kKind>(params + kPB / 2, h),
                                      _mm256_set1_ps(a.sum[tb]), acc[t][h]);
        }
      }
    }
  }
  for (size_t t = 0; t < TT; ++t) {
    for (size_t h = 0; h < 2; ++h) _mm256_storeu_ps(y + (t0 + t) * ldy + n0 + 8 * h, acc[t][h]);
  }
}

template <Kind kKind>
void Groups(const Matrix& w, size_t g0, size_t g1, const QuantActs& a, float* y, size_t ldy) {
  for (size_t g = g0; g < g1; ++g) {
    const uint8_t* grp = w.data + g * w.row_stride;
    const size_t n0 = g * kPackRows;
    size_t t = 0;
    for (; t + 2 <= a.T; t += 2) GroupTile<kKind, 2>(grp, a, t, y, ldy, n0);
    if (t < a.T) GroupTile<kKind, 1>(grp, a, t, y, ldy, n0);
  }
}

}  // namespace

void QuantDotGroupsAvx2(const Matrix& w, size_t g0, size_t g1, const QuantActs& a, float* y,
                        size_t ldy) {
  WithKind(w, [&](auto kind) { Groups<kind.value>(w, g0, g1, a, y, ldy); });
}

#pragma GCC pop_options

}  // namespace meshlm::kernels::x86
