// MatMul for bf16 weights with AVX512_BF16 (vdpbf16ps): the prefill path on Zen 4 and
// Sapphire Rapids. Only this file uses the instructions, each function marked with a
// target attribute so that the rest of the binary runs on any x86-64.
//
// vdpbf16ps adds the products of 16 pairs of bf16 into 16 f32 lanes: 32 multiply-adds
// per instruction, twice an f32 FMA. Lanes run along N: a panel of kPanelN weight rows is
// repacked per call as [K/2][kPanelN] pairs (w[n, 2p], w[n, 2p+1]), and each pair of x
// values (x[t, 2p], x[t, 2p+1]), rounded to bf16 once per call, is broadcast against it.
// A kTileT × kPanelN register tile then needs no horizontal sums, and each weight vector
// loaded serves kTileT rows of x. Repacking reads the weights once per call, which is
// small next to the T·N·K multiply-adds when T is large (the only case this path serves).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/matmul_internal.h"

// GCC 12 flags the deliberately undefined vectors inside its own AVX-512 intrinsics as
// uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#define MESHLM_TARGET_AVX512BF16 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))

namespace meshlm::kernels::x86 {
namespace {

// 8 rows of x × 48 columns of w = 24 accumulators, + 3 weight vectors + 1 broadcast = 28
// of the 32 zmm registers. Per pair of K: 3 loads and 8 broadcasts feed 24 vdpbf16ps.
constexpr size_t kTileT = 8;
constexpr size_t kPanelN = 48;
constexpr size_t kVecsN = kPanelN / 16;
constexpr size_t kBlockK = 32;  // bf16 per zmm: the unit of conversion and packing
constexpr size_t kMinRowsForPrefetch = 64;

MESHLM_TARGET_AVX512BF16 inline __mmask16 FirstN16(size_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
}

// x: [T, K] f32 rows [t0, t1) → xb: [T, Kp] bf16 (round to nearest even), zeros in [K, Kp).
MESHLM_TARGET_AVX512BF16 void ConvertRows(const float* x, size_t K, size_t Kp, size_t t0, size_t t1,
                                          uint16_t* xb) {
  for (size_t t = t0; t < t1; ++t) {
    const float* row = x + t * K;
    uint16_t* out = xb + t * Kp;
    for (size_t k = 0; k < Kp; k += kBlockK) {
      const size_t left = K > k ? K - k : 0;
      const __m512 lo = _mm512_maskz_loadu_ps(FirstN16(left), row + k);
      const __m512 hi = _mm512_maskz_loadu_ps(FirstN16(left > 16 ? left - 16 : 0), row + k + 16);
      const __m512bh packed = _mm512_cvtne2ps_pbh(hi, lo);
      _mm512_storeu_si512(out + k, reinterpret_cast<const __m512i&>(packed));
    }
  }
}

// Transposes 16 vectors of 16 dwords in place: r[i][j] → r[j][i].
MESHLM_TARGET_AVX512BF16 inline void Transpose16x16(__m512i* r) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // u[4i + c], 128-bit lane L: rows 4i .. 4i+3 of column 4L + c.
  for (int i = 0; i < 4; ++i) {
    u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512i a0 = _mm512_shuffle_i32x4(u[c], u[4 + c], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512i a1 = _mm512_shuffle_i32x4(u[c], u[4 + c], _MM_SHUFFLE(3, 2, 3, 2));
    const __m512i b0 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512i b1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(3, 2, 3, 2));
    r[0 + c] = _mm512_shuffle_i32x4(a0, b0, _MM_SHUFFLE(2, 0, 2, 0));
    r[4 + c] = _mm512_shuffle_i32x4(a0, b0, _MM_SHUFFLE(3, 1, 3, 1));
    r[8 + c] = _mm512_shuffle_i32x4(a1, b1, _MM_SHUFFLE(2, 0, 2, 0));
    r[12 + c] = _mm512_shuffle_i32x4(a1, b1, _MM_SHUFFLE(3, 1, 3, 1));
  }
}

// w: rows [0, rows) of [rows ≤ kPanelN, K] bf16, rows w_stride apart → panel:
// [Kp/2][kPanelN] uint32, each a pair (w[n, 2p], w[n, 2p+1]); zeros past K and past rows.
MESHLM_TARGET_AVX512BF16 void PackPanel(const uint16_t* w, size_t w_stride, size_t rows, size_t K,
                                        size_t Kp, uint32_t* panel) {
  for (size_t k = 0; k < Kp; k += kBlockK) {
    const size_t left = K > k ? K - k : 0;
    const __mmask32 m = left >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << left) - 1);
    for (size_t g = 0; g < kVecsN; ++g) {
      __m512i r[16];
      for (size_t i = 0; i < 16; ++i) {
        const size_t n = g * 16 + i;
        r[i] =
            n < rows ? _mm512_maskz_loadu_epi16(m, w + n * w_stride + k) : _mm512_setzero_si512();
      }
      Transpose16x16(r);
      uint32_t* out = panel + (k / 2) * kPanelN + g * 16;
      for (size_t p = 0; p < 16; ++p) _mm512_storeu_si512(out + p * kPanelN, r[p]);
    }
  }
}

// xb: [TR, Kp] bf16; panel: [Kp/2][kPanelN]; y: [TR, cols] at y[t * y_stride + j] for the
// first `cols` ≤ kPanelN columns; bias: [cols] or null.
template <size_t TR>
MESHLM_TARGET_AVX512BF16 void PanelTile(const uint16_t* xb, size_t Kp, const uint32_t* panel,
                                        const float* bias, float* y, size_t y_stride, size_t cols) {
  __m512 acc[TR][kVecsN];
  for (size_t t = 0; t < TR; ++t) {
    for (size_t j = 0; j < kVecsN; ++j) acc[t][j] = _mm512_setzero_ps();
  }
  const size_t pairs = Kp / 2;
  const auto* x32 = reinterpret_cast<const int32_t*>(xb);
  const size_t x_stride = Kp / 2;
  for (size_t p = 0; p < pairs; ++p) {
    __m512bh wv[kVecsN];
    for (size_t j = 0; j < kVecsN; ++j) {
      const __m512i v = _mm512_loadu_si512(panel + p * kPanelN + j * 16);
      wv[j] = reinterpret_cast<const __m512bh&>(v);
    }
    for (size_t t = 0; t < TR; ++t) {
      const __m512i xv = _mm512_set1_epi32(x32[t * x_stride + p]);
      const __m512bh xbh = reinterpret_cast<const __m512bh&>(xv);
      for (size_t j = 0; j < kVecsN; ++j) acc[t][j] = _mm512_dpbf16_ps(acc[t][j], xbh, wv[j]);
    }
  }
  for (size_t j = 0; j < kVecsN; ++j) {
    const size_t c0 = j * 16;
    if (c0 >= cols) break;
    const __mmask16 m = FirstN16(cols - c0);
    const __m512 b = bias != nullptr ? _mm512_maskz_loadu_ps(m, bias + c0) : _mm512_setzero_ps();
    for (size_t t = 0; t < TR; ++t) {
      _mm512_mask_storeu_ps(y + t * y_stride + c0, m, _mm512_add_ps(acc[t][j], b));
    }
  }
}

// The last T % kTileT rows of x against one panel.
MESHLM_TARGET_AVX512BF16 void PanelTileRemainder(size_t rows, const uint16_t* xb, size_t Kp,
                                                 const uint32_t* panel, const float* bias, float* y,
                                                 size_t y_stride, size_t cols) {
  switch (rows) {
    case 7:
      return PanelTile<7>(xb, Kp, panel, bias, y, y_stride, cols);
    case 6:
      return PanelTile<6>(xb, Kp, panel, bias, y, y_stride, cols);
    case 5:
      return PanelTile<5>(xb, Kp, panel, bias, y, y_stride, cols);
    case 4:
      return PanelTile<4>(xb, Kp, panel, bias, y, y_stride, cols);
    case 3:
      return PanelTile<3>(xb, Kp, panel, bias, y, y_stride, cols);
    case 2:
      return PanelTile<2>(xb, Kp, panel, bias, y, y_stride, cols);
    case 1:
      return PanelTile<1>(xb, Kp, panel, bias, y, y_stride, cols);
    default:
      return;
  }
}

// Prefetches weight rows [n0, n1) into L2 in `steps` equal slices of cache lines, at most
// kMaxLinesPerStep per slice.
class NextPanelPrefetcher {
 public:
  NextPanelPrefetcher(const uint16_t* w, size_t w_stride, size_t K, size_t n0, size_t n1,
                      size_t steps)
      : w_(w), w_stride_(w_stride), n0_(n0), lines_per_row_((K * 2 + 63) / 64) {
    const size_t lines = n1 > n0 ? (n1 - n0) * lines_per_row_ : 0;
    // More in flight at once than this only queues behind the loads of the current panel
    // (measured slower for T=16 and 32).
    constexpr size_t kMaxLinesPerStep = 128;
    per_step_ = std::min(kMaxLinesPerStep, (lines + steps - 1) / std::max<size_t>(steps, 1));
    end_ = lines;
  }

  void Step() {
    const size_t stop = std::min(end_, next_ + per_step_);
    for (; next_ < stop; ++next_) {
      const size_t row = next_ / lines_per_row_, line = next_ % lines_per_row_;
      const auto* p = reinterpret_cast<const char*>(w_ + (n0_ + row) * w_stride_) + line * 64;
      _mm_prefetch(p, _MM_HINT_T1);
    }
  }

 private:
  const uint16_t* w_;
  size_t w_stride_, n0_, lines_per_row_;
  size_t per_step_ = 0, end_ = 0, next_ = 0;
};

}  // namespace

void MatMulBF16Dot(const float* x, size_t T, const Matrix& w, const float* bias, float* y,
                   ThreadPool& pool) {
  const size_t K = w.cols, N = w.rows;
  const size_t Kp = (K + kBlockK - 1) / kBlockK * kBlockK;
  // Reused across calls: a fresh multi-MiB allocation per call would be mmap'd and
  // page-faulted every time. Owned by the calling thread, read by the workers.
  thread_local std::vector<uint16_t> xb_storage;
  if (xb_storage.size() < T * Kp) xb_storage.resize(T * Kp);
  uint16_t* xb = xb_storage.data();
  pool.ParallelFor(T, 1, [&](size_t t0, size_t t1, size_t) { ConvertRows(x, K, Kp, t0, t1, xb); });

  const auto* wd = reinterpret_cast<const uint16_t*>(w.data);
  const size_t w_stride = w.row_stride / sizeof(uint16_t);  // in elements
  pool.ParallelFor(N, kPanelN, [&](size_t n0, size_t n1, size_t) {
    thread_local std::vector<uint32_t> panel;
    if (panel.size() < Kp / 2 * kPanelN) panel.resize(Kp / 2 * kPanelN);
    for (size_t n = n0; n < n1; n += kPanelN) {
      const size_t cols = std::min(kPanelN, n1 - n);
      PackPanel(wd + n * w_stride, w_stride, cols, K, Kp, panel.data());
      const float* bn = bias != nullptr ? bias + n : nullptr;
      // The next panel's weights come from DRAM; fetching them into L2 a slice per tile,
      // while this panel computes, saved 6% at T=128 but cost 5% at T=16, where there is
      // too little compute to hide it behind.
      const size_t next_end = T >= kMinRowsForPrefetch ? std::min(n1, n + 2 * kPanelN) : 0;
      NextPanelPrefetcher next(wd, w_stride, K, n + kPanelN, next_end, (T + kTileT - 1) / kTileT);
      size_t t = 0;
      for (; t + kTileT <= T; t += kTileT) {
        next.Step();
        PanelTile<kTileT>(xb + t * Kp, Kp, panel.data(), bn, y + t * N + n, N, cols);
      }
      PanelTileRemainder(T - t, xb + t * Kp, Kp, panel.data(), bn, y + t * N + n, N, cols);
    }
  });
}

}  // namespace meshlm::kernels::x86
