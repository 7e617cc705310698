// MLX affine-quantized matrices in a Hugging Face folder: a packed uint32 `weight` with
// its `scales` and `biases`, checked against each other and viewed in place.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"
#include "model/safetensors.h"
#include "tensor/matrix.h"

namespace meshlm::model {

/// The quantized matrix [rows, cols] whose packed words are `packed` (U32,
/// [rows, cols * bits / 32]); its scales and biases are the tensors of the same module
/// ("….scales", "….biases", [rows, cols / group_size], f32/f16/bf16). Bits (4 or 8) and
/// group size (32, 64 or 128) follow from the shapes, so per-layer settings need no
/// config lookup; shapes that fit no such pair are an error naming the tensors.
Result<Matrix> GetMlxMatrix(const TensorStore& store, const TensorInfo& packed, int64_t rows,
                            int64_t cols);

/// The same with the scales and biases given: for stacked expert tensors ([E, rows, …]
/// viewed as [E·rows, …]), whose reshaped infos are not in the store.
Result<Matrix> GetMlxMatrix(const TensorInfo& packed, const TensorInfo& scales,
                            const TensorInfo& biases, int64_t rows, int64_t cols);

}  // namespace meshlm::model
