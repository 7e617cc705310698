// Quantized matmul with AVX512-VNNI for Q8_0, Q4_0, Q4_K, Q6_K and MLX 4-bit weights in the packed
// layout (tensor/quant.h): 16 rows per group, one 4-byte word of each row per 64-byte
// vector.
//
// One vpdpbusd of a weight vector against one activation word broadcast to all lanes
// (an embedded-broadcast memory operand, no shuffle) adds 4 products to each of 16 rows,
// so each lane is one row from start to end: no sums across lanes, no scale permutes. A
// block of 32 weights is 8 of them; its int32 sums start from the activation block's
// -offset · Σ q (QuantActs::bcorr), which removes the unsigned zero point exactly, then
// one conversion and one FMA by d_w · d_x per block and token (MLX and Q4_K: one more for
// the bias times the activation block's sum). A register tile of 16
// rows × up to 8 tokens reuses each weight vector for every token of the tile; decode
// (one token) reads the group's bytes in a single sequential stream.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/quant_matmul_internal.h"

namespace meshlm::kernels::x86 {

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,f16c,fma,avx2")

namespace {

constexpr size_t kMaxTile = 8;
// The weight stream is prefetched this many bytes ahead: without it, one token ran at
// 45-50 tok/s on qwen3-0.6b Q4_0 with 1 thread, with it 59-77 (4 KiB and 8 KiB alike;
// 1 KiB 63, 2 KiB 68), Q8_0 32-36 -> 40. The hardware prefetchers alone keep too few
// lines in flight for one core's stream.
constexpr size_t kAhead = 4096;

inline int32_t LoadWord(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Rows of group `grp` (16 rows, nb blocks) against tokens [t0, t0 + TT) of a; results to
// y[t * ldy + n0 + r].
#include "kernels/x86/quant_packed_kinds-inl.h"

// 16 scales (or biases) at p as f32: 16-bit, or f32 for the K types.
template <Kind kKind>
inline __m512 LoadParams(const uint8_t* p) {
  if constexpr (kKind == kKindQ4K || kKind == kKindQ6K) return _mm512_load_ps(p);
  const __m256i h = _mm256_load_si256(reinterpret_cast<const __m256i*>(p));
  if constexpr (kKind == kKindMlx4BF16) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  } else {
    return _mm512_cvtph_ps(h);
  }
}

template <Kind kKind, size_t TT>
void GroupTile(const uint8_t* grp, const QuantActs& a, size_t t0, float* y, size_t ldy, size_t n0) {
  using Tr = KindTraits<kKind>;
  constexpr bool kQ8 = Tr::kQ8, kQ6 = Tr::kQ6;
  constexpr bool kBias = Tr::kBias;
  constexpr size_t kQB = Tr::kQB, kPB = Tr::kPB, kPair = Tr::kPair;
  constexpr int kChains = kQ8 ? (TT == 1 ? 4 : TT <= 3 ? 2 : 1) : (TT == 1 ? 4 : 2);
  const size_t K = a.K, nb = a.nb;
  __m512 acc[TT];
  for (size_t t = 0; t < TT; ++t) acc[t] = _mm512_setzero_ps();
  for (size_t b = 0; b < nb; ++b) {
    const uint8_t* pair = grp + b / 2 * kPair;
    const __m512 dw = LoadParams<kKind>(pair + kPB * (b % 2));
    const uint8_t* q = pair + 2 * kPB + (b % 2) * kQB;
    if (t0 == 0) {
      // The first token tile streams the group from memory (later tiles find it in
      // cache): its share of the stream, kPB + kQB bytes (rounded up) from its quants on.
      // Batched decode (8 tokens) gained as much as one token: 232-294 -> 312-315 tok/s.
      for (size_t j = 0; j < kQB + kPB; j += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(q + kAhead + j), _MM_HINT_T0);
      }
    }
    // Q4_0: w[j] the low nibbles (weights 4j..4j+3), w[4 + j] the high nibbles left in
    // place, i.e. 16 × the weights 16+4j..: their dots come out 16× too large, exactly,
    // and one shift per block undoes it instead of one per vector.
    __m512i w[8];
    if constexpr (kQ8 || kQ6) {
      for (int j = 0; j < 8; ++j) w[j] = _mm512_load_si512(q + 64 * j);
    } else {
      for (int j = 0; j < 4; ++j) {
        const __m512i v = _mm512_load_si512(q + 64 * j);
        w[j] = _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
        w[4 + j] = _mm512_and_si512(v, _mm512_set1_epi8(static_cast<char>(0xF0)));
      }
    }
    for (size_t t = 0; t < TT; ++t) {
      const size_t tb = (t0 + t) * nb + b;
      const int8_t* x = a.q.data() + (t0 + t) * K + 32 * b;
      // The block's 8 vpdpbusd in kChains independent chains (4-bit and Q6_K: the two
      // halves apart, which their sums need). More chains for few tokens measured within
      // noise for one token (45.1-45.5 against 45.5-46.3 tok/s, before the prefetch).
      __m512i c[kChains];
      for (int k = 1; k < kChains; ++k) c[k] = _mm512_setzero_si512();
      if constexpr (kQ6) {  // a scale and a zero-point term per half
        c[0] = _mm512_set1_epi32(a.hcorr[2 * tb]);
        c[kChains / 2] = _mm512_set1_epi32(a.hcorr[2 * tb + 1]);
      } else {
        c[0] = _mm512_set1_epi32(a.bcorr[tb]);
      }
      for (int j = 0; j < 8; ++j) {
        const int k = kQ8 ? j % kChains : (j / 4) * (kChains / 2) + j % (kChains / 2);
        c[k] = _mm512_dpbusd_epi32(c[k], w[j], _mm512_set1_epi32(LoadWord(x + 4 * j)));
      }
      __m512i s;
      if constexpr (kQ6) {
        constexpr int h = kChains / 2;
        for (int i = 1; i < h; ++i) {
          c[0] = _mm512_add_epi32(c[0], c[i]);
          c[h] = _mm512_add_epi32(c[h], c[h + i]);
        }
        const __m512 dx = _mm512_set1_ps(a.d[tb]);
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(c[h]),
                                 _mm512_mul_ps(LoadParams<kKind>(pair + kPB * (b % 2) + 64), dx),
                                 acc[t]);
        s = c[0];  // the first half, scaled by dw below
      } else if constexpr (kQ8) {
        for (int k = kChains / 2; k > 0; k /= 2) {
          for (int i = 0; i < k; ++i) c[i] = _mm512_add_epi32(c[i], c[i + k]);
        }
        s = c[0];
      } else {
        constexpr int h = kChains / 2;  // chains [0, h) low nibbles, [h, kChains) high
        for (int i = 1; i < h; ++i) {
          c[0] = _mm512_add_epi32(c[0], c[i]);
          c[h] = _mm512_add_epi32(c[h], c[h + i]);
        }
        s = _mm512_add_epi32(c[0], _mm512_srai_epi32(c[h], 4));
      }
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_set1_ps(a.d[tb])),
                               acc[t]);
      if constexpr (kBias) {  // + bias · Σ x of the block
        acc[t] = _mm512_fmadd_ps(LoadParams<kKind>(pair + kPB * (b % 2) + kPB / 2),
                                 _mm512_set1_ps(a.sum[tb]), acc[t]);
      }
    }
  }
  for (size_t t = 0; t < TT; ++t) _mm512_storeu_ps(y + (t0 + t) * ldy + n0, acc[t]);
}

template <Kind kKind>
void Groups(const Matrix& w, size_t g0, size_t g1, const QuantActs& a, float* y, size_t ldy) {
  for (size_t g = g0; g < g1; ++g) {
    const uint8_t* grp = w.data + g * w.row_stride;
    const size_t n0 = g * kPackRows;
    size_t t = 0;
    for (; t + kMaxTile <= a.T; t += kMaxTile) GroupTile<kKind, kMaxTile>(grp, a, t, y, ldy, n0);
    switch (a.T - t) {
      case 7:
        GroupTile<kKind, 7>(grp, a, t, y, ldy, n0);
        break;
      case 6:
        GroupTile<kKind, 6>(grp, a, t, y, ldy, n0);
        break;
      case 5:
        GroupTile<kKind, 5>(grp, a, t, y, ldy, n0);
        break;
      case 4:
        GroupTile<kKind, 4>(grp, a, t, y, ldy, n0);
        break;
      case 3:
        GroupTile<kKind, 3>(grp, a, t, y, ldy, n0);
        break;
      case 2:
        GroupTile<kKind, 2>(grp, a, t, y, ldy, n0);
        break;
      case 1:
        GroupTile<kKind, 1>(grp, a, t, y, ldy, n0);
        break;
      default:
        break;
    }
  }
}

}  // namespace

void QuantDotGroupsVnni(const Matrix& w, size_t g0, size_t g1, const QuantActs& a, float* y,
                        size_t ldy) {
  WithKind(w, [&](auto kind) { Groups<kind.value>(w, g0, g1, a, y, ldy); });
}

#pragma GCC pop_options

}  // namespace meshlm::kernels::x86
