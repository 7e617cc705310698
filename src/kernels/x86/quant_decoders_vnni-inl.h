// The weight-row decoders of quant_matmul_vnni.cc: for each quantized type, the unsigned
// quants, per-lane scales and zero-point terms of one row, block by block. Part of that
// file (included once, inside its anonymous namespace, after its AVX-512 target pragma);
// include it nowhere else.
#pragma once

inline float HalfToFloat(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

inline __m256i Nibbles16(const uint8_t* p) {
  // 16 bytes → 32 quants: low nibbles in bytes 0..15, high nibbles in 16..31.
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i m = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(x, m);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(x, 4), m);
  return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

// Each decoder reads one weight row in steps of a super-block (kSub blocks of 32), and
// gives per block: the unsigned quants, the per-lane weight scale and the term that
// multiplies the activation block sum.
struct DecQ8_0 {
  static constexpr size_t kSub = 1;
  static constexpr bool kHasMin = false;
  const uint8_t* p;
  void Prepare(const Matrix& w, size_t n, size_t s) {
    p = w.data + n * w.row_stride + s * sizeof(BlockQ8_0);
  }
  __m256i Quants(size_t) const {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2));
    return _mm256_xor_si256(q, _mm256_set1_epi8(static_cast<char>(0x80)));
  }
  __m256 Scale(size_t) const { return _mm256_set1_ps(HalfToFloat(p)); }
  float Min(size_t) const { return 0; }
};

struct DecQ4_0 {
  static constexpr size_t kSub = 1;
  static constexpr bool kHasMin = false;
  const uint8_t* p;
  void Prepare(const Matrix& w, size_t n, size_t s) {
    p = w.data + n * w.row_stride + s * sizeof(BlockQ4_0);
  }
  __m256i Quants(size_t) const { return Nibbles16(p + 2); }
  __m256 Scale(size_t) const { return _mm256_set1_ps(HalfToFloat(p)); }
  float Min(size_t) const { return 0; }
};

struct DecQ4_K {
  static constexpr size_t kSub = 8;
  static constexpr bool kHasMin = true;
  const uint8_t* qs;
  float sc[8], mn[8];
  void Prepare(const Matrix& w, size_t n, size_t s) {
    const uint8_t* p = w.data + n * w.row_stride + s * sizeof(BlockQ4_K);
    const float d = HalfToFloat(p), dmin = HalfToFloat(p + 2);
    for (int j = 0; j < 8; ++j) {
      int scale, m;
      Q4KScaleMin(p + 4, j, &scale, &m);
      sc[j] = d * scale;
      mn[j] = -dmin * m;
    }
    qs = p + 16;
  }
  __m256i Quants(size_t j) const {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * (j / 2)));
    const __m256i s = (j % 2) ? _mm256_srli_epi16(x, 4) : x;
    return _mm256_and_si256(s, _mm256_set1_epi8(0x0F));
  }
  __m256 Scale(size_t j) const { return _mm256_set1_ps(sc[j]); }
  float Min(size_t j) const { return mn[j]; }
};

struct DecQ6_K {
  static constexpr size_t kSub = 8;
  static constexpr bool kHasMin = false;
  const uint8_t* p;
  float d;
  void Prepare(const Matrix& w, size_t n, size_t s) {
    p = w.data + n * w.row_stride + s * sizeof(BlockQ6_K);
    d = HalfToFloat(p + offsetof(BlockQ6_K, d));
  }
  __m256i Quants(size_t j) const {
    // Block j of 32 is part k = j % 4 of half j / 4 (see BlockQ6_K).
    const size_t h = j / 4, k = j % 4;
    const __m256i ql =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 64 * h + 32 * (k % 2)));
    const __m256i qh =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + offsetof(BlockQ6_K, qh) + 32 * h));
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30);
    const __m256i lo =
        k < 2 ? _mm256_and_si256(ql, m4) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4);
    __m256i hi;
    switch (k) {
      case 0:
        hi = _mm256_slli_epi16(qh, 4);
        break;
      case 1:
        hi = _mm256_slli_epi16(qh, 2);
        break;
      case 2:
        hi = qh;
        break;
      default:
        hi = _mm256_srli_epi16(qh, 2);
        break;
    }
    return _mm256_or_si256(lo, _mm256_and_si256(hi, m2));
  }
  __m256 Scale(size_t j) const {
    const int8_t* sc = reinterpret_cast<const int8_t*>(p + offsetof(BlockQ6_K, scales));
    return _mm256_set_m128(_mm_set1_ps(d * sc[2 * j + 1]), _mm_set1_ps(d * sc[2 * j]));
  }
  float Min(size_t) const { return 0; }
};

template <int kBits>
struct DecMlx {
  static constexpr size_t kSub = 1;
  static constexpr bool kHasMin = true;
  const uint8_t* p;
  float scale, bias;
  void Prepare(const Matrix& w, size_t n, size_t b) {
    p = w.data + n * w.row_stride + b * 4 * kBits;
    // Group sizes are 32, 64 or 128: blocks per group is a power of two.
    const size_t g = n * w.scale_stride + (b >> (w.group_size == 32   ? 0
                                                 : w.group_size == 64 ? 1
                                                                      : 2));
    scale = Load(w.scales, w.scale_dtype, g);
    bias = Load(w.biases, w.scale_dtype, g);
  }
  static float Load(const void* p, DType t, size_t i) {
    if (t == DType::kBF16) {
      uint32_t bits = static_cast<uint32_t>(static_cast<const uint16_t*>(p)[i]) << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    }
    if (t == DType::kF16) return _cvtsh_ss(static_cast<const uint16_t*>(p)[i]);
    return static_cast<const float*>(p)[i];
  }
  __m256i Quants(size_t) const {
    // 4-bit: even elements in the low nibbles; the activations are stored evens first.
    if constexpr (kBits == 4) return Nibbles16(p);
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  __m256 Scale(size_t) const { return _mm256_set1_ps(scale); }
  float Min(size_t) const { return bias; }
};
