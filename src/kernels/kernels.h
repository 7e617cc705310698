// Kernels for the forward pass: matmul per weight type, norms, rope, attention,
// activations, softmax, embedding lookup.
//
// All activations are f32, row-major. Weights are used where they lie (mmap'd) in
// their stored dtype. Every function dispatches once to the best SIMD target Highway
// finds at run time (or to the target forced with SetTarget, for tests).
//
// Matmul orientation (stated once, used everywhere): a weight W is stored as
// Hugging Face stores nn.Linear, [N out, K in] row-major, and y = x · Wᵀ.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "base/thread_pool.h"
#include "tensor/matrix.h"
#include "tensor/quant.h"

namespace meshlm::kernels {

/// y: [T, N] = x: [T, K] · w: [N, K]ᵀ (+ bias: [N], if not null).
/// w (tensor/matrix.h) is f32, f16 or bf16 (rows a whole number of elements apart), or
/// quantized (kernels/quant_matmul.h), read as it lies. Parallel over the thread pool. y
/// must not alias x.
void MatMul(const float* x, size_t T, const Matrix& w, const float* bias, float* y,
            ThreadPool& pool);

/// One product of MatMulMany: y: [T, w->rows] = x: [T, w->cols] · w->ᵀ (no bias).
struct MatMulJob {
  const float* x;
  size_t T;
  const Matrix* w;
  float* y;
};

/// Every job's MatMul, with results equal to calling MatMul on each (bit for bit). When
/// all weights are packed quantized matrices (tensor/quant.h) on an x86 path, the jobs run
/// as one dispatch on the pool, split in pieces of about equal work, so many small
/// products (the chosen experts of a MoE layer) do not each pay for waking the pool and
/// for its tail; activations that jobs share (same x, T and type) are quantized once.
/// Otherwise the jobs run one after another. No y may alias any x.
void MatMulMany(const MatMulJob* jobs, size_t n, ThreadPool& pool);

/// out[t, :] = x[t, :] / sqrt(mean(x[t, :]²) + eps) * weight, for t < rows; row length n.
/// out may alias x.
void RmsNorm(const float* x, const float* weight, size_t rows, size_t n, float eps, float* out);

/// cos/sin: [T, half] with angle positions[t] * inv_freq[i].
void RopeTable(const int32_t* positions, size_t T, const float* inv_freq, size_t half,
               float* cos_out, float* sin_out);

/// Rotates x: [T, num_heads, head_dim] in place in the "rotate half" layout Hugging Face
/// Llama uses: element i pairs with i + head_dim/2. cos/sin: [T, head_dim/2].
void ApplyRope(float* x, size_t T, size_t num_heads, size_t head_dim, const float* cos,
               const float* sin);

/// Causal attention of one sequence with grouped KV heads.
/// q: [T, H, Dh] for positions pos0 .. pos0+T-1; k, v: [S, Hk, Dh] cache rows for
/// positions 0 .. pos0+T-1 (rows kv_stride floats apart, kv_stride >= Hk*Dh);
/// out: [T, H, Dh]. Query head h reads KV head h / (H / Hk). Scores scaled by `scale`.
void Attention(const float* q, size_t T, size_t pos0, size_t H, size_t Hk, size_t Dh,
               const float* k, const float* v, size_t kv_stride, float scale, float* out,
               ThreadPool& pool);

/// out[i] = silu(gate[i]) * up[i]; out may alias gate or up.
void SiluMul(const float* gate, const float* up, size_t n, float* out);

/// y[i] += x[i].
void AddInPlace(float* y, const float* x, size_t n);

/// In-place softmax of x: [n].
void Softmax(float* x, size_t n);

/// out: [T, D] = rows ids[t] of table: [V, D] (f32/f16/bf16 or quantized), as f32.
/// ids must be < V (checked by the caller).
void EmbeddingLookup(const Matrix& table, const int32_t* ids, size_t T, float* out);

/// Converts n elements of src (f32/f16/bf16) to f32.
void ConvertToF32(const void* src, DType dtype, size_t n, float* out);

/// The Highway targets compiled into this binary and supported by this CPU, by name.
std::vector<std::string> SupportedTargets();
/// Forces the named target (as listed by SupportedTargets) for all kernels; "" restores
/// automatic choice. For tests and benchmarks.
bool SetTarget(const std::string& name);
/// The target the kernels currently use.
std::string CurrentTarget();
/// Enables or disables (the default) the x86 AVX512_BF16 dot-product path that MatMul can
/// use for bf16 weights when T is large; it also needs an AVX-512 target and a CPU with
/// AVX512_BF16. That path rounds x to bf16 (about 3 significant digits per product, f32
/// sums), so its rows differ from those of the other kernels: with it, a sequence's
/// results would depend on how many rows share its step. Off, MatMul's row t is the
/// same bits for any T. Returns whether the path is available. For tests and benchmarks.
bool SetNativeBf16(bool enable);

}  // namespace meshlm::kernels
