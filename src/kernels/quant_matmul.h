// Matmul and embedding lookup for quantized weights (GGUF Q8_0/Q4_0/Q4_K/Q6_K, MLX affine
// 4/8-bit), with activations quantized to int8 on the fly.
//
// y: [T, N] = x: [T, K] · w: [N, K]ᵀ, as kernels::MatMul. x is quantized per block of 32
// (one f32 scale d = max|x| / 127 per block, round to nearest even) so that every weight
// block meets its activation block in an integer dot product: exact int32 sums, scaled
// once per block. Weights are read where they lie (mmap'd GGUF blocks or MLX words).
//
// Two implementations with the same activation quantization, so they agree up to the
// order of f32 sums: a portable one (plain C++), and an x86 one using AVX512-VNNI
// vpdpbusd on 256-bit vectors (Zen 4 splits 512-bit ops in two, so 256 bits lose nothing
// and match the 32-weight blocks), chosen at run time when the CPU has it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/thread_pool.h"
#include "kernels/kernels.h"
#include "tensor/quant.h"

namespace meshlm::kernels {

/// y: [T, N] = x: [T, K] · w: [N, K]ᵀ (+ bias: [N] if not null), w.cols == K. Parallel
/// over rows of w on the pool. y must not alias x. Not reentrant for one calling thread
/// (uses thread-local scratch for the quantized activations).
void QuantMatMul(const float* x, size_t T, const QuantWeight& w, const float* bias, float* y,
                 ThreadPool& pool);

/// out: [T, D] = rows ids[t] of table: [V, D], dequantized to f32. ids must be < V.
void QuantEmbeddingLookup(const QuantWeight& table, const int32_t* ids, size_t T, float* out);

/// The QuantWeight view of a quantized kernels::Weight (w.quant must be set).
QuantWeight ToQuantWeight(const Weight& w);
/// Rows [begin, begin + n) of any weight (dense or quantized): a view.
Weight SliceWeightRows(const Weight& w, size_t begin, size_t n);
/// Columns [begin, begin + n) of any weight: a view with the parent's row stride. For
/// quantized weights the range must fall on block (GGUF) or group (MLX) boundaries; the
/// error says which multiple would work.
Result<Weight> SliceWeightCols(const Weight& w, size_t begin, size_t n);
/// Bytes a matmul reads from w (blocks, or packed words plus scales and biases).
size_t WeightBytes(const Weight& w);

/// Whether the kernels in use read weights faster in the packed layout of tensor/quant.h
/// (the x86 VNNI and AVX2 paths: about 2× for prompts, and decode nearer the memory
/// bound). The portable path reads both layouts.
bool PackedLayoutHelps();
/// Bytes PackWeight writes for w: 0 when w cannot be packed (not Q8_0, Q4_0, Q4_K, Q6_K
/// or MLX 4-bit with 16-bit scales, already packed, or rows not a multiple of kPackRows). Column
/// slices pack to a compact copy.
size_t PackedWeightBytes(const Weight& w);
/// w (PackedWeightBytes(w) > 0) in the packed layout at out, which must hold
/// PackedWeightBytes(w) bytes on a 64-byte boundary: the view of out.
Weight PackWeight(const Weight& w, uint8_t* out);

/// Implementations compiled in and supported by this CPU, best first ("avx512vnni",
/// "portable").
std::vector<std::string> QuantPaths();
/// Forces one of QuantPaths() for tests and benchmarks; "" restores the automatic choice.
/// Returns false for an unknown or unsupported name.
bool SetQuantPath(const std::string& name);
/// The implementation QuantMatMul uses now.
std::string CurrentQuantPath();

}  // namespace meshlm::kernels
