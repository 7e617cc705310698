// Matmul and embedding lookup for quantized weights (GGUF Q8_0/Q4_0/Q4_K/Q6_K, MLX affine
// 4/8-bit), with activations quantized to int8 on the fly.
//
// y: [T, N] = x: [T, K] · w: [N, K]ᵀ, as kernels::MatMul. x is quantized per block of 32
// (one f32 scale d = max|x| / 127 per block, round to nearest even) so that every weight
// block meets its activation block in an integer dot product: exact int32 sums, scaled
// once per block. Weights are read where they lie (mmap'd GGUF blocks or MLX words), or
// in the packed layout of tensor/quant.h that Q8_0, Q4_0, Q4_K, Q6_K and MLX 4-bit
// matrices are copied into at load when the x86 kernels are in use (PackedLayoutHelps).
//
// Implementations with the same activation quantization, so they agree up to the order
// of f32 sums: a portable one (plain C++) for every type and layout; an x86 one using
// AVX512-VNNI vpdpbusd on 256-bit vectors (Zen 4 splits 512-bit ops in two, so 256 bits
// lose nothing and match the 32-weight blocks); and an AVX2 one for CPUs without VNNI
// (every packed type, Q8_0 and Q4_0 in the file layout). The best the CPU has is chosen
// at run time.
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

/// y: [T, N] = x: [T, K] · w: [N, K]ᵀ (+ bias: [N] if not null), w.cols == K, w.quant
/// set. Parallel over rows of w on the pool. y must not alias x. Not reentrant for one
/// calling thread (uses thread-local scratch for the quantized activations).
void QuantMatMul(const float* x, size_t T, const Matrix& w, const float* bias, float* y,
                 ThreadPool& pool);

/// MatMulMany's single dispatch: true if it ran the jobs (every weight quantized, packed
/// and read by the x86 path in use), false if it did nothing.
bool QuantMatMulMany(const MatMulJob* jobs, size_t n, ThreadPool& pool);

/// out: [T, D] = rows ids[t] of table: [V, D], dequantized to f32. ids must be < V.
void QuantEmbeddingLookup(const Matrix& table, const int32_t* ids, size_t T, float* out);

/// Whether the kernels in use read weights faster in the packed layout of tensor/quant.h
/// (the x86 VNNI and AVX2 paths: about 2× for prompts, and decode nearer the memory
/// bound). The portable path reads both layouts.
bool PackedLayoutHelps();
/// Bytes PackWeight writes for w: 0 when w cannot be packed (dense, not Q8_0, Q4_0, Q4_K,
/// Q6_K or MLX 4-bit with 16-bit scales, already packed, or rows not a multiple of
/// kPackRows). Column slices pack to a compact copy.
size_t PackedWeightBytes(const Matrix& w);
/// w (PackedWeightBytes(w) > 0) in the packed layout at out, which must hold
/// PackedWeightBytes(w) bytes on a 64-byte boundary: the view of out.
Matrix PackWeight(const Matrix& w, uint8_t* out);

/// Implementations compiled in and supported by this CPU, best first ("avx512vnni",
/// "avx2", "portable").
std::vector<std::string> QuantPaths();
/// Forces one of QuantPaths() for tests and benchmarks; "" restores the automatic choice.
/// Returns false for an unknown or unsupported name.
bool SetQuantPath(const std::string& name);
/// The implementation QuantMatMul uses now.
std::string CurrentQuantPath();

}  // namespace meshlm::kernels
