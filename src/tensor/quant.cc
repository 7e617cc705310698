// The file layouts of quant.h (GGUF blocks, MLX words): reference quantizers and
// dequantizers, sizes and checks. The packed layout is in quant_packed.cc.
#include "tensor/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/check.h"

namespace meshlm {
namespace {

inline uint16_t F16(float f) { return F32ToF16(f); }
inline float FromF16(uint16_t h) { return F16ToF32(h); }

void QuantizeQ8_0(const float* x, BlockQ8_0* b) {
  float amax = 0;
  for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / 127.0f;
  b->d = F16(d);
  const float inv = d > 0 ? 1.0f / d : 0.0f;
  for (int i = 0; i < 32; ++i) {
    b->qs[i] = static_cast<int8_t>(std::clamp(std::nearbyint(x[i] * inv), -127.0f, 127.0f));
  }
}

void QuantizeQ4_0(const float* x, BlockQ4_0* b) {
  // The value of largest magnitude maps to -8, so that its sign keeps the full range.
  float amax = 0, vmax = 0;
  for (int i = 0; i < 32; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      vmax = x[i];
    }
  }
  const float d = vmax / -8.0f;
  b->d = F16(d);
  const float inv = d != 0 ? 1.0f / d : 0.0f;
  auto q = [&](float v) {
    return static_cast<uint8_t>(std::clamp(std::nearbyint(v * inv) + 8.0f, 0.0f, 15.0f));
  };
  for (int j = 0; j < 16; ++j) b->qs[j] = q(x[j]) | (q(x[j + 16]) << 4);
}

void SetQ4KScaleMin(uint8_t* s, int j, int sc, int m) {
  if (j < 4) {
    s[j] = (s[j] & 0xC0) | sc;
    s[j + 4] = (s[j + 4] & 0xC0) | m;
  } else {
    s[j + 4] = static_cast<uint8_t>((sc & 0xF) | ((m & 0xF) << 4));
    s[j - 4] = (s[j - 4] & 0x3F) | ((sc >> 4) << 6);
    s[j] = (s[j] & 0x3F) | ((m >> 4) << 6);
  }
}

void QuantizeQ4_K(const float* x, BlockQ4_K* b) {
  // Per sub-block: w ≈ scale * q - min with min = -lowest value (≥ 0), scale = range / 15.
  float scale[8], minv[8], max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    float lo = 0, hi = 0;
    for (int i = 0; i < 32; ++i) {
      lo = std::min(lo, x[32 * j + i]);
      hi = std::max(hi, x[32 * j + i]);
    }
    scale[j] = (hi - lo) / 15.0f;
    minv[j] = -lo;
    max_scale = std::max(max_scale, scale[j]);
    max_min = std::max(max_min, minv[j]);
  }
  const float d = max_scale / 63.0f, dmin = max_min / 63.0f;
  b->d = F16(d);
  b->dmin = F16(dmin);
  const float dq = FromF16(b->d), dminq = FromF16(b->dmin);
  std::memset(b->scales, 0, sizeof(b->scales));
  for (int j = 0; j < 8; ++j) {
    const int sc = d > 0 ? std::clamp(static_cast<int>(std::nearbyint(scale[j] / d)), 0, 63) : 0;
    const int m =
        dmin > 0 ? std::clamp(static_cast<int>(std::nearbyint(minv[j] / dmin)), 0, 63) : 0;
    SetQ4KScaleMin(b->scales, j, sc, m);
    const float s = dq * sc, mn = dminq * m;
    for (int i = 0; i < 32; ++i) {
      const float v = s > 0 ? std::nearbyint((x[32 * j + i] + mn) / s) : 0.0f;
      const uint8_t q = static_cast<uint8_t>(std::clamp(v, 0.0f, 15.0f));
      uint8_t& byte = b->qs[32 * (j / 2) + i];
      byte = (j % 2 == 0) ? static_cast<uint8_t>((byte & 0xF0) | q)
                          : static_cast<uint8_t>((byte & 0x0F) | (q << 4));
    }
  }
}

void QuantizeQ6_K(const float* x, BlockQ6_K* b) {
  float sub[16], max_abs = 0;
  for (int j = 0; j < 16; ++j) {
    float amax = 0;
    for (int i = 0; i < 16; ++i) amax = std::max(amax, std::fabs(x[16 * j + i]));
    sub[j] = amax / 31.0f;
    max_abs = std::max(max_abs, sub[j]);
  }
  const float d = max_abs / 127.0f;
  b->d = F16(d);
  const float dq = FromF16(b->d);
  uint8_t q[256];
  for (int j = 0; j < 16; ++j) {
    const int sc = d > 0 ? std::clamp(static_cast<int>(std::nearbyint(sub[j] / d)), -128, 127) : 0;
    b->scales[j] = static_cast<int8_t>(sc);
    const float s = dq * sc;
    for (int i = 0; i < 16; ++i) {
      const float v = s != 0 ? std::nearbyint(x[16 * j + i] / s) : 0.0f;
      q[16 * j + i] = static_cast<uint8_t>(std::clamp(v, -32.0f, 31.0f) + 32.0f);
    }
  }
  std::memset(b->ql, 0, sizeof(b->ql));
  std::memset(b->qh, 0, sizeof(b->qh));
  for (int h = 0; h < 2; ++h) {
    uint8_t* ql = b->ql + 64 * h;
    uint8_t* qh = b->qh + 32 * h;
    const uint8_t* qq = q + 128 * h;
    for (int l = 0; l < 32; ++l) {
      ql[l] = (qq[l] & 0xF) | ((qq[l + 64] & 0xF) << 4);
      ql[l + 32] = (qq[l + 32] & 0xF) | ((qq[l + 96] & 0xF) << 4);
      qh[l] = static_cast<uint8_t>((qq[l] >> 4) | ((qq[l + 32] >> 4) << 2) |
                                   ((qq[l + 64] >> 4) << 4) | ((qq[l + 96] >> 4) << 6));
    }
  }
}

void DequantizeQ4_K(const BlockQ4_K* b, float* y) {
  const float d = FromF16(b->d), dmin = FromF16(b->dmin);
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    Q4KScaleMin(b->scales, j, &sc, &m);
    const uint8_t* q = b->qs + 32 * (j / 2);
    const int shift = (j % 2) * 4;
    for (int i = 0; i < 32; ++i) y[32 * j + i] = d * sc * ((q[i] >> shift) & 0xF) - dmin * m;
  }
}

void DequantizeQ6_K(const BlockQ6_K* b, float* y) {
  const float d = FromF16(b->d);
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = b->ql + 64 * h;
    const uint8_t* qh = b->qh + 32 * h;
    const int8_t* sc = b->scales + 8 * h;
    float* out = y + 128 * h;
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      out[l] = d * sc[is] * q1;
      out[l + 32] = d * sc[is + 2] * q2;
      out[l + 64] = d * sc[is + 4] * q3;
      out[l + 96] = d * sc[is + 6] * q4;
    }
  }
}

}  // namespace

std::string_view QuantTypeName(QuantType t) {
  switch (t) {
    case QuantType::kQ8_0:
      return "Q8_0";
    case QuantType::kQ4_0:
      return "Q4_0";
    case QuantType::kQ4_K:
      return "Q4_K";
    case QuantType::kQ6_K:
      return "Q6_K";
    case QuantType::kMlx4:
      return "MLX4";
    case QuantType::kMlx8:
      return "MLX8";
  }
  return "?";
}

size_t QuantBlockElems(QuantType t) {
  switch (t) {
    case QuantType::kQ8_0:
    case QuantType::kQ4_0:
      return 32;
    case QuantType::kQ4_K:
    case QuantType::kQ6_K:
      return 256;
    case QuantType::kMlx4:
      return 8;
    case QuantType::kMlx8:
      return 4;
  }
  return 0;
}

size_t QuantBlockBytes(QuantType t) {
  switch (t) {
    case QuantType::kQ8_0:
      return sizeof(BlockQ8_0);
    case QuantType::kQ4_0:
      return sizeof(BlockQ4_0);
    case QuantType::kQ4_K:
      return sizeof(BlockQ4_K);
    case QuantType::kQ6_K:
      return sizeof(BlockQ6_K);
    case QuantType::kMlx4:
    case QuantType::kMlx8:
      return 4;
  }
  return 0;
}

size_t QuantRowBytes(QuantType t, size_t cols) {
  MESHLM_CHECK(cols % QuantBlockElems(t) == 0, "{} cols {} not a block multiple", QuantTypeName(t),
               cols);
  return cols / QuantBlockElems(t) * QuantBlockBytes(t);
}

Status ValidateQuantMatrix(const Matrix& w, std::string_view what) {
  if (!w.quant) return Error("[quant] tensor '{}': not quantized", what);
  const QuantType type = *w.quant;
  const size_t be = QuantBlockElems(type);
  if (w.cols % be != 0) {
    return Error("[quant] tensor '{}': {} columns are not a multiple of the {} block of {}", what,
                 w.cols, QuantTypeName(type), be);
  }
  if (w.row_stride < QuantRowBytes(type, w.cols)) {
    return Error("[quant] tensor '{}': row stride {} bytes < row size {}", what, w.row_stride,
                 QuantRowBytes(type, w.cols));
  }
  if (w.data == nullptr && w.rows > 0) return Error("[quant] tensor '{}': no data", what);
  if (IsMlx(type)) {
    if (w.group_size != 32 && w.group_size != 64 && w.group_size != 128) {
      return Error("[quant] tensor '{}': group size {} unsupported (32, 64 or 128)", what,
                   w.group_size);
    }
    if (w.cols % w.group_size != 0) {
      return Error("[quant] tensor '{}': {} columns are not a multiple of group size {}", what,
                   w.cols, w.group_size);
    }
    if (w.scale_dtype != DType::kF32 && w.scale_dtype != DType::kF16 &&
        w.scale_dtype != DType::kBF16) {
      return Error("[quant] tensor '{}': scales of dtype {} unsupported", what,
                   DTypeName(w.scale_dtype));
    }
    if (w.scales == nullptr || w.biases == nullptr || w.scale_stride < w.cols / w.group_size) {
      return Error("[quant] tensor '{}': scales/biases missing or too short", what);
    }
  }
  return OkStatus();
}

void DequantizeRow(const Matrix& w, size_t r, float* out) {
  const QuantType type = *w.quant;
  if (w.packed && type == QuantType::kQ6_K) {
    uint8_t q[32];
    float sc[2];
    for (size_t b = 0; b < w.cols / 32; ++b) {
      ReadQ6KBlock(w, r, b, q, sc);
      for (size_t i = 0; i < 32; ++i) out[32 * b + i] = sc[i / 16] * (static_cast<int>(q[i]) - 32);
    }
    return;
  }
  if (w.packed && (type == QuantType::kMlx4 || type == QuantType::kQ4_K)) {
    uint8_t nib[16];
    float scale, bias;
    // MLX pairs neighbours in a byte, Q4_K weights 16 apart.
    const size_t lo_step = type == QuantType::kMlx4 ? 2 : 1, hi = type == QuantType::kMlx4 ? 1 : 16;
    for (size_t b = 0; b < w.cols / 32; ++b) {
      ReadNibbleBlock(w, r, b, nib, &scale, &bias);
      for (size_t i = 0; i < 16; ++i) {
        out[32 * b + lo_step * i] = scale * static_cast<float>(nib[i] & 0xF) + bias;
        out[32 * b + lo_step * i + hi] = scale * static_cast<float>(nib[i] >> 4) + bias;
      }
    }
    return;
  }
  if (w.packed) {
    uint8_t blk[sizeof(BlockQ8_0)];
    for (size_t b = 0; b < w.cols / 32; ++b) {
      ReadBlock(w, r, b, blk);
      DequantizeRowGguf(type, blk, 32, out + 32 * b);
    }
    return;
  }
  const uint8_t* row = w.data + r * w.row_stride;
  if (!IsMlx(type)) {
    DequantizeRowGguf(type, row, w.cols, out);
    return;
  }
  const size_t off = r * w.scale_stride;
  const int bits = MlxBits(type);
  const uint32_t mask = (1u << bits) - 1;
  const size_t per_word = 32 / bits;
  for (size_t i = 0; i < w.cols; ++i) {
    uint32_t word;
    std::memcpy(&word, row + i / per_word * 4, 4);
    const uint32_t q = (word >> (bits * (i % per_word))) & mask;
    const size_t g = off + i / w.group_size;
    out[i] = LoadScale(w.scales, w.scale_dtype, g) * static_cast<float>(q) +
             LoadScale(w.biases, w.scale_dtype, g);
  }
}

void QuantizeRowGguf(QuantType t, const float* x, size_t n, uint8_t* out) {
  const size_t be = QuantBlockElems(t), bb = QuantBlockBytes(t);
  MESHLM_CHECK(!IsMlx(t) && n % be == 0, "{} n={}", QuantTypeName(t), n);
  for (size_t i = 0; i < n / be; ++i) {
    void* b = out + i * bb;
    switch (t) {
      case QuantType::kQ8_0:
        QuantizeQ8_0(x + i * be, static_cast<BlockQ8_0*>(b));
        break;
      case QuantType::kQ4_0:
        QuantizeQ4_0(x + i * be, static_cast<BlockQ4_0*>(b));
        break;
      case QuantType::kQ4_K:
        QuantizeQ4_K(x + i * be, static_cast<BlockQ4_K*>(b));
        break;
      case QuantType::kQ6_K:
        QuantizeQ6_K(x + i * be, static_cast<BlockQ6_K*>(b));
        break;
      default:
        break;
    }
  }
}

void DequantizeRowGguf(QuantType t, const uint8_t* in, size_t n, float* out) {
  const size_t be = QuantBlockElems(t), bb = QuantBlockBytes(t);
  MESHLM_CHECK(!IsMlx(t) && n % be == 0, "{} n={}", QuantTypeName(t), n);
  for (size_t i = 0; i < n / be; ++i) {
    const uint8_t* p = in + i * bb;
    float* y = out + i * be;
    switch (t) {
      case QuantType::kQ8_0: {
        BlockQ8_0 b;
        std::memcpy(&b, p, sizeof(b));
        const float d = FromF16(b.d);
        for (int k = 0; k < 32; ++k) y[k] = d * b.qs[k];
        break;
      }
      case QuantType::kQ4_0: {
        BlockQ4_0 b;
        std::memcpy(&b, p, sizeof(b));
        const float d = FromF16(b.d);
        for (int k = 0; k < 16; ++k) {
          y[k] = d * ((b.qs[k] & 0xF) - 8);
          y[k + 16] = d * ((b.qs[k] >> 4) - 8);
        }
        break;
      }
      case QuantType::kQ4_K: {
        BlockQ4_K b;
        std::memcpy(&b, p, sizeof(b));
        DequantizeQ4_K(&b, y);
        break;
      }
      case QuantType::kQ6_K: {
        BlockQ6_K b;
        std::memcpy(&b, p, sizeof(b));
        DequantizeQ6_K(&b, y);
        break;
      }
      default:
        break;
    }
  }
}

void QuantizeRowMlx(int bits, size_t gs, const float* x, size_t n, uint32_t* packed, float* scales,
                    float* biases) {
  MESHLM_CHECK((bits == 4 || bits == 8) && gs > 0 && n % gs == 0, "bits {} gs {} n {}", bits, gs,
               n);
  const int levels = (1 << bits) - 1;
  const size_t per_word = 32 / bits;
  std::memset(packed, 0, n / per_word * 4);
  for (size_t g = 0; g < n / gs; ++g) {
    const float* v = x + g * gs;
    float lo = v[0], hi = v[0];
    for (size_t i = 1; i < gs; ++i) {
      lo = std::min(lo, v[i]);
      hi = std::max(hi, v[i]);
    }
    const float scale = (hi - lo) / levels;
    scales[g] = scale;
    biases[g] = lo;
    for (size_t i = 0; i < gs; ++i) {
      const float q = scale > 0 ? std::nearbyint((v[i] - lo) / scale) : 0.0f;
      const uint32_t qi = static_cast<uint32_t>(std::clamp(q, 0.0f, float(levels)));
      const size_t e = g * gs + i;
      packed[e / per_word] |= qi << (bits * (e % per_word));
    }
  }
}

}  // namespace meshlm
