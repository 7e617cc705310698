// The one view of a weight matrix that loaders, kernels and shards share, and its slices.
//
// Goals: one struct for every stored form of a matrix (f32/f16/bf16 elements, GGUF
// blocks, MLX words with their scales and biases, the packed layout of tensor/quant.h),
// read in place by the kernels with no conversion per call; one family of row and
// column slices for tensor-parallel shards. Non-goals: ownership (a Matrix never owns
// its bytes) and general N-D tensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "base/dtype.h"
#include "base/status.h"

namespace meshlm {

// Defined with the block layouts in tensor/quant.h.
enum class QuantType : uint8_t;

/// A read-only view of a matrix [rows, cols], row-major. `data` points at row 0; rows are
/// `row_stride` BYTES apart (a column slice of a bigger matrix keeps the parent's stride).
///
/// Dense (quant unset): elements of `dtype` (f32, f16 or bf16).
/// Quantized (quant set; dtype unused): a row is GGUF blocks or MLX packed uint32 words.
/// For MLX types `scales` and `biases` are [rows, cols / group_size] of `scale_dtype`
/// (f32, f16 or bf16), rows `scale_stride` elements apart.
/// Packed (tensor/quant.h, kPackRows rows a group): `row_stride` is then the bytes of one
/// group, and row r lies in group r / kPackRows.
///
/// The fields up to `packed` are in the order of aggregate initialization that quantized
/// views are written with: {type, data, rows, cols, row_stride, ...}.
struct Matrix {
  std::optional<QuantType> quant;
  const uint8_t* data = nullptr;
  size_t rows = 0;
  size_t cols = 0;
  size_t row_stride = 0;
  const void* scales = nullptr;
  const void* biases = nullptr;
  DType scale_dtype = DType::kF16;
  size_t group_size = 0;
  size_t scale_stride = 0;
  bool packed = false;
  DType dtype = DType::kF32;
};

/// A dense or GGUF-block matrix whose rows lie back to back (row_stride = RowBytes).
Matrix ContiguousMatrix(const uint8_t* data, DType dtype, std::optional<QuantType> quant,
                        size_t rows, size_t cols);

/// Bytes of one row's `cols` weights as stored: elements, GGUF blocks or MLX words (without
/// scales and biases). Not for packed matrices, whose rows are interleaved.
size_t RowBytes(const Matrix& m);

/// Bytes a matmul reads from m: its rows (or packed groups), plus MLX scales and biases.
size_t MatrixBytes(const Matrix& m);

/// Rows [row0, row0 + nrows) of m: a view (packed matrices on whole groups of kPackRows).
/// The range must lie inside m (checked: a caller's bug otherwise).
Matrix SliceRows(const Matrix& m, size_t row0, size_t nrows);

/// Columns [col0, col0 + ncols) of m, for tensor-parallel shards: a view with the parent's
/// row stride. Quantized matrices split only on block (GGUF) or group (MLX) boundaries,
/// and the error then names the multiple that would work; packed matrices have no column
/// slices.
Result<Matrix> SliceColumns(const Matrix& m, size_t col0, size_t ncols);

}  // namespace meshlm
