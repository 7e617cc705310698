// Quantized weight layouts (GGUF Q8_0, Q4_0, Q4_K, Q6_K; MLX affine 4/8-bit) and their
// reference quantizers and dequantizers.
//
// Goals: one place that states each block layout exactly as it lies in the files, so that
// loaders can view mmap'd bytes in place and kernels can read them without copies; scalar
// reference code that tests compare the fast kernels with. Non-goals: speed (see
// kernels/quant_matmul.h) and the search-based quantizers of other tools (ours are simple
// round-to-nearest with min/max scales; they only make test data).
//
// A quantized matrix is stored as rows; a row of `cols` weights is cols / block_elems
// blocks back to back (GGUF) or packed uint32 words plus per-group scales and biases in
// separate tensors (MLX). The functions below take that matrix as a Matrix view
// (tensor/matrix.h) with `quant` set.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "base/dtype.h"
#include "base/status.h"
#include "tensor/matrix.h"

namespace meshlm {

enum class QuantType : uint8_t {
  kQ8_0,  // 32 weights: f16 d, int8 q[32]; w = d * q
  kQ4_0,  // 32 weights: f16 d, 16 bytes of nibbles; w = d * (q - 8)
  kQ4_K,  // 256 weights in 8 sub-blocks of 32 with 6-bit scales and mins
  kQ6_K,  // 256 weights in 16 sub-blocks of 16 with int8 scales
  kMlx4,  // MLX affine, 4 bits: 8 weights per uint32, lowest bits first
  kMlx8,  // MLX affine, 8 bits: 4 weights per uint32, lowest bits first
};

std::string_view QuantTypeName(QuantType t);
/// Weights per block (GGUF) or per packed uint32 word (MLX).
size_t QuantBlockElems(QuantType t);
/// Bytes per block (GGUF) or per packed uint32 word (MLX: 4).
size_t QuantBlockBytes(QuantType t);
/// Bytes of a row of `cols` weights (the packed part only, for MLX); cols must be a
/// multiple of QuantBlockElems(t).
size_t QuantRowBytes(QuantType t, size_t cols);
inline bool IsMlx(QuantType t) { return t == QuantType::kMlx4 || t == QuantType::kMlx8; }
inline int MlxBits(QuantType t) { return t == QuantType::kMlx4 ? 4 : 8; }

// Block layouts, byte for byte as in GGUF files (little-endian, no padding).
struct BlockQ8_0 {
  uint16_t d;  // f16 scale
  int8_t qs[32];
};
struct BlockQ4_0 {
  uint16_t d;      // f16 scale
  uint8_t qs[16];  // byte j: weight j in the low nibble, weight j + 16 in the high nibble
};
// Sub-block j (32 weights): w = d * sc[j] * q - dmin * m[j], q in 0..15; sc and m are 6-bit
// values packed in `scales` (see Q4KScaleMin). qs: for sub-blocks 2i and 2i+1, 32 bytes
// whose low nibbles are sub-block 2i and high nibbles sub-block 2i+1.
struct BlockQ4_K {
  uint16_t d;     // f16 super-scale of the sub-block scales
  uint16_t dmin;  // f16 super-scale of the sub-block mins
  uint8_t scales[12];
  uint8_t qs[128];
};
// Each half of 128 weights uses 64 bytes of ql (low 4 bits), 32 bytes of qh (high 2 bits)
// and 8 scales. Within a half, for l in 0..31: weight l = ql[l] low | qh[l] bits 0-1,
// l + 32 = ql[l + 32] low | qh[l] bits 2-3, l + 64 = ql[l] high | qh[l] bits 4-5,
// l + 96 = ql[l + 32] high | qh[l] bits 6-7; w = d * scales[i / 16] * (q - 32).
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;  // f16
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ6_K) == 210);

/// The 6-bit scale and min of sub-block j (0..7) of a Q4_K block.
inline void Q4KScaleMin(const uint8_t* scales, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
    *m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

/// The packed layout, made at load time from Q8_0, Q4_0, Q4_K, Q6_K and MLX 4-bit (f16 or bf16
/// scales) matrices whose row count is a multiple of kPackRows, for the x86 kernels
/// (kernels/quant_matmul.h). Each 16 rows form a group of PackedGroupBytes(type, cols)
/// bytes (a multiple of 64), and a group is its blocks (32 columns each) in pairs: the
/// pair's parameters (PackedParamBytes(type) per block), then the first block's quants,
/// then the second's (PackedQuantBytes(type) each; an odd last block leaves the second
/// half zero). Parameters: Q8_0/Q4_0 16 f16 scales, one per row; MLX 4-bit the 16 scales
/// then the 16 biases of the rows' groups that hold the block, in the file's 16-bit dtype;
/// Q4_K the 16 f32 scales d · sc then the 16 f32 biases -dmin · m of the rows' sub-blocks
/// (w = scale · q + bias; 6 bits a weight where the file has 4.5, for exact values);
/// Q6_K the 16 f32 scales d · sc of the block's first 16 weights, then of its last 16.
/// Within a block's quants, 4-byte word j of row r lies at 64 * j + 4 * r. Q8_0 has 8
/// words of quants, stored unsigned (q ^ 0x80); Q4_0 and MLX 4-bit have their 16 nibble
/// bytes as 4 words, unchanged (Q4_0: the low nibble of byte i is weight i, the high
/// nibble weight i + 16; MLX: weights 2i and 2i + 1); Q4_K's are rebuilt in the Q4_0 order.
/// Q6_K has 8 words of its 6-bit values 0..63 as bytes (w = scale · (q - 32)). One 64-byte vector
/// thus holds one word of 16 rows, and one integer dot-product instruction against a broadcast
/// activation word advances 16 rows at once with no sums across lanes; a decode reads the
/// whole matrix as one sequential stream. The file's bytes, reordered (MLX scales and
/// biases repeated for each block of a group).
constexpr size_t kPackRows = 16;
/// Quant bytes per block and group: 512 (Q8_0, Q6_K) or 256 (Q4_0, Q4_K, MLX 4-bit).
inline size_t PackedQuantBytes(QuantType t) {
  return t == QuantType::kQ8_0 || t == QuantType::kQ6_K ? 512 : 256;
}
/// Parameter bytes per block and group: 32 (Q8_0, Q4_0), 64 (MLX 4-bit), 128 (Q4_K, Q6_K).
inline size_t PackedParamBytes(QuantType t) {
  return t == QuantType::kMlx4 ? 64 : t == QuantType::kQ4_K || t == QuantType::kQ6_K ? 128 : 32;
}
/// Offsets of block b's parameters and quants from the start of its group.
inline size_t PackedParamOffset(QuantType t, size_t b) {
  return b / 2 * 2 * (PackedParamBytes(t) + PackedQuantBytes(t)) + PackedParamBytes(t) * (b % 2);
}
inline size_t PackedQuantOffset(QuantType t, size_t b) {
  return b / 2 * 2 * (PackedParamBytes(t) + PackedQuantBytes(t)) + 2 * PackedParamBytes(t) +
         (b % 2) * PackedQuantBytes(t);
}
size_t PackedGroupBytes(QuantType t, size_t cols);
/// Whether w can be packed: Q8_0, Q4_0, Q4_K, Q6_K or MLX 4-bit with f16/bf16 scales, unpacked,
/// rows a multiple of kPackRows (never for a dense matrix).
bool CanPack(const Matrix& w);
/// Writes w (CanPack(w)) packed to out (rows / kPackRows * PackedGroupBytes bytes) and
/// returns the view of out.
Matrix PackRows(const Matrix& w, uint8_t* out);
/// The file bytes of block b of row r (QuantBlockBytes(*w.quant) of them) into out, from
/// the packed layout or in place: for code that reads a block at a time. GGUF types.
void ReadBlock(const Matrix& w, size_t r, size_t b, uint8_t* out);
/// As ReadBlock for MLX 4-bit, and for Q4_K when packed: the 16 nibble bytes of weights
/// 32b.. of row r (MLX: weights 2i and 2i + 1 in byte i; Q4_K: weights i and i + 16), and
/// w = scale · q + bias.
/// Block b of row r of a packed Q6_K matrix: its 32 values 0..63 and the scales of its
/// two halves (w = scale · (q - 32)).
void ReadQ6KBlock(const Matrix& w, size_t r, size_t b, uint8_t* q, float* scales);
void ReadNibbleBlock(const Matrix& w, size_t r, size_t b, uint8_t* nibbles, float* scale,
                     float* bias);

/// Checks a view's fields against each other (block multiples, strides, MLX group size
/// 32/64/128 and scale dtype); `what` names the tensor in the message.
Status ValidateQuantMatrix(const Matrix& w, std::string_view what);

/// out: [cols] f32 = row r of w, dequantized.
void DequantizeRow(const Matrix& w, size_t r, float* out);

/// Quantizes x: [n] (n a multiple of the block size) into GGUF blocks at out
/// (QuantRowBytes(t, n) bytes). Round to nearest with min/max scales.
void QuantizeRowGguf(QuantType t, const float* x, size_t n, uint8_t* out);
/// Dequantizes n weights of GGUF blocks.
void DequantizeRowGguf(QuantType t, const uint8_t* in, size_t n, float* out);

/// MLX affine quantization of x: [n] with `bits` 4 or 8 and group size gs (n % gs == 0):
/// packed: [n * bits / 32] words, scales/biases: [n / gs] f32 with w = scale * q + bias.
void QuantizeRowMlx(int bits, size_t gs, const float* x, size_t n, uint32_t* packed, float* scales,
                    float* biases);

/// One element of a scale/bias array of dtype f32, f16 or bf16.
inline float LoadScale(const void* p, DType t, size_t i) {
  switch (t) {
    case DType::kF16:
      return F16ToF32(static_cast<const uint16_t*>(p)[i]);
    case DType::kBF16:
      return BF16ToF32(static_cast<const uint16_t*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}

}  // namespace meshlm
