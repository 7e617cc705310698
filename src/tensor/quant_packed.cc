// The packed layout of quant.h: sizes, the repacking of file rows, and block readers.
#include "tensor/quant.h"

#include <cstring>

#include "base/check.h"

namespace meshlm {

size_t PackedGroupBytes(QuantType t, size_t cols) {
  return (cols / 32 + 1) / 2 * 2 * (PackedParamBytes(t) + PackedQuantBytes(t));
}

bool CanPack(const Matrix& w) {
  if (!w.quant) return false;
  const QuantType type = *w.quant;
  const bool mlx4 =
      type == QuantType::kMlx4 && (w.scale_dtype == DType::kF16 || w.scale_dtype == DType::kBF16);
  return (type == QuantType::kQ8_0 || type == QuantType::kQ4_0 || type == QuantType::kQ4_K ||
          type == QuantType::kQ6_K || mlx4) &&
         !w.packed && w.rows % kPackRows == 0 && w.cols % 32 == 0 && w.cols > 0;
}

Matrix PackRows(const Matrix& w, uint8_t* out) {
  MESHLM_CHECK(CanPack(w), "matrix [{}, {}] cannot be packed", w.rows, w.cols);
  const QuantType type = *w.quant;
  const size_t nb = w.cols / 32, qb = PackedQuantBytes(type), gb = PackedGroupBytes(type, w.cols);
  const size_t bb = QuantBlockBytes(type);
  const bool q8 = type == QuantType::kQ8_0;
  for (size_t g = 0; g < w.rows / kPackRows; ++g) {
    uint8_t* grp = out + g * gb;
    if (nb % 2 == 1) {  // the missing second block of the last pair
      std::memset(grp + PackedParamOffset(type, nb), 0, PackedParamBytes(type));
      std::memset(grp + PackedQuantOffset(type, nb), 0, qb);
    }
    for (size_t r = 0; r < kPackRows; ++r) {
      const size_t n = g * kPackRows + r;
      const uint8_t* row = w.data + n * w.row_stride;
      if (type == QuantType::kQ6_K) {
        for (size_t sb = 0; sb < w.cols / 256; ++sb) {
          BlockQ6_K blk;
          std::memcpy(&blk, row + sb * sizeof(blk), sizeof(blk));
          uint8_t u[256];  // the values 0..63, as DequantizeQ6_K reads them
          for (int h = 0; h < 2; ++h) {
            const uint8_t* ql = blk.ql + 64 * h;
            const uint8_t* qh = blk.qh + 32 * h;
            uint8_t* o = u + 128 * h;
            for (int l = 0; l < 32; ++l) {
              o[l] = static_cast<uint8_t>((ql[l] & 0xF) | ((qh[l] & 3) << 4));
              o[l + 32] = static_cast<uint8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4));
              o[l + 64] = static_cast<uint8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
              o[l + 96] = static_cast<uint8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
            }
          }
          const float d = F16ToF32(blk.d);
          for (int j = 0; j < 8; ++j) {
            const size_t b = 8 * sb + j;
            uint8_t* par = grp + PackedParamOffset(type, b) + 4 * r;
            for (int h = 0; h < 2; ++h) {
              const float scale = d * static_cast<float>(blk.scales[2 * j + h]);
              std::memcpy(par + 64 * h, &scale, 4);
            }
            uint8_t* q = grp + PackedQuantOffset(type, b) + 4 * r;
            for (size_t jj = 0; jj < 8; ++jj) std::memcpy(q + 64 * jj, u + 32 * j + 4 * jj, 4);
          }
        }
        continue;
      }
      if (type == QuantType::kQ4_K) {
        for (size_t sb = 0; sb < w.cols / 256; ++sb) {
          BlockQ4_K blk;
          std::memcpy(&blk, row + sb * sizeof(blk), sizeof(blk));
          const float d = F16ToF32(blk.d), dmin = F16ToF32(blk.dmin);
          for (int j = 0; j < 8; ++j) {
            const size_t b = 8 * sb + j;
            int sc, m;
            Q4KScaleMin(blk.scales, j, &sc, &m);
            const float scale = d * static_cast<float>(sc), bias = -(dmin * static_cast<float>(m));
            uint8_t* par = grp + PackedParamOffset(type, b) + 4 * r;
            std::memcpy(par, &scale, 4);
            std::memcpy(par + 64, &bias, 4);
            const uint8_t* qs = blk.qs + 32 * (j / 2);
            const int shift = 4 * (j % 2);
            uint8_t nib[16];
            for (int i = 0; i < 16; ++i) {
              nib[i] = static_cast<uint8_t>(((qs[i] >> shift) & 0xF) |
                                            (((qs[i + 16] >> shift) & 0xF) << 4));
            }
            uint8_t* q = grp + PackedQuantOffset(type, b) + 4 * r;
            for (size_t jj = 0; jj < 4; ++jj) std::memcpy(q + 64 * jj, nib + 4 * jj, 4);
          }
        }
        continue;
      }
      if (type == QuantType::kMlx4) {
        for (size_t b = 0; b < nb; ++b) {
          uint8_t* par = grp + PackedParamOffset(type, b) + 2 * r;
          const size_t gi = n * w.scale_stride + b * 32 / w.group_size;
          std::memcpy(par, static_cast<const uint8_t*>(w.scales) + 2 * gi, 2);
          std::memcpy(par + 32, static_cast<const uint8_t*>(w.biases) + 2 * gi, 2);
          uint8_t* q = grp + PackedQuantOffset(type, b) + 4 * r;
          for (size_t j = 0; j < 4; ++j) std::memcpy(q + 64 * j, row + 16 * b + 4 * j, 4);
        }
        continue;
      }
      for (size_t b = 0; b < nb; ++b) {
        const uint8_t* blk = row + b * bb;
        std::memcpy(grp + PackedParamOffset(type, b) + 2 * r, blk, 2);  // the f16 scale
        uint8_t* q = grp + PackedQuantOffset(type, b) + 4 * r;
        for (size_t j = 0; j < qb / 64; ++j) {
          uint32_t word;
          std::memcpy(&word, blk + 2 + 4 * j, 4);
          if (q8) word ^= 0x80808080u;
          std::memcpy(q + 64 * j, &word, 4);
        }
      }
    }
  }
  Matrix p = w;
  p.data = out;
  p.row_stride = gb;
  p.packed = true;
  return p;
}

void ReadBlock(const Matrix& w, size_t r, size_t b, uint8_t* out) {
  const QuantType type = *w.quant;
  const size_t bb = QuantBlockBytes(type);
  if (!w.packed) {
    std::memcpy(out, w.data + r * w.row_stride + b * bb, bb);
    return;
  }
  const size_t qb = PackedQuantBytes(type), lane = r % kPackRows;
  const uint8_t* grp = w.data + r / kPackRows * w.row_stride;
  std::memcpy(out, grp + PackedParamOffset(type, b) + 2 * lane, 2);
  const uint8_t* q = grp + PackedQuantOffset(type, b) + 4 * lane;
  const uint8_t flip = type == QuantType::kQ8_0 ? 0x80 : 0;
  for (size_t j = 0; j < qb / 64; ++j) {
    for (size_t i = 0; i < 4; ++i) out[2 + 4 * j + i] = q[64 * j + i] ^ flip;
  }
}

void ReadQ6KBlock(const Matrix& w, size_t r, size_t b, uint8_t* q, float* scales) {
  MESHLM_CHECK(w.packed && w.quant == QuantType::kQ6_K, "[quant] not a packed Q6_K matrix");
  const QuantType type = *w.quant;
  const size_t lane = r % kPackRows;
  const uint8_t* grp = w.data + r / kPackRows * w.row_stride;
  const uint8_t* par = grp + PackedParamOffset(type, b);
  std::memcpy(&scales[0], par + 4 * lane, 4);
  std::memcpy(&scales[1], par + 64 + 4 * lane, 4);
  const uint8_t* src = grp + PackedQuantOffset(type, b) + 4 * lane;
  for (size_t j = 0; j < 8; ++j) std::memcpy(q + 4 * j, src + 64 * j, 4);
}

void ReadNibbleBlock(const Matrix& w, size_t r, size_t b, uint8_t* nibbles, float* scale,
                     float* bias) {
  MESHLM_CHECK(w.quant == QuantType::kMlx4 || (w.packed && w.quant == QuantType::kQ4_K),
               "[quant] no nibble blocks in a {} matrix",
               w.quant ? QuantTypeName(*w.quant) : DTypeName(w.dtype));
  const QuantType type = *w.quant;
  if (!w.packed) {
    std::memcpy(nibbles, w.data + r * w.row_stride + 16 * b, 16);
    const size_t gi = r * w.scale_stride + b * 32 / w.group_size;
    *scale = LoadScale(w.scales, w.scale_dtype, gi);
    *bias = LoadScale(w.biases, w.scale_dtype, gi);
    return;
  }
  const size_t lane = r % kPackRows;
  const uint8_t* grp = w.data + r / kPackRows * w.row_stride;
  const uint8_t* par = grp + PackedParamOffset(type, b);
  if (type == QuantType::kQ4_K) {
    std::memcpy(scale, par + 4 * lane, 4);
    std::memcpy(bias, par + 64 + 4 * lane, 4);
  } else {
    *scale = LoadScale(par, w.scale_dtype, lane);
    *bias = LoadScale(par + 32, w.scale_dtype, lane);
  }
  const uint8_t* q = grp + PackedQuantOffset(type, b) + 4 * lane;
  for (size_t j = 0; j < 4; ++j) std::memcpy(nibbles + 4 * j, q + 64 * j, 4);
}

}  // namespace meshlm
