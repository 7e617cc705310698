// QuantMatMul on every compiled path and weight type against dequantize-then-f64 matmul.
#include "kernels/quant_matmul.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "base/aligned_vector.h"
#include "base/thread_pool.h"
#include "kernels/kernels.h"
#include "kernels/quant_matmul_internal.h"

namespace meshlm::kernels {
namespace {

struct QuantMatrix {
  std::vector<uint8_t> bytes;
  std::vector<uint16_t> scales, biases;   // MLX, f16 or bf16 bits
  std::vector<float> scales32, biases32;  // MLX f32
  Matrix w;
  std::vector<float> deq;  // [rows, cols] the dequantized values
};

// A random rows × cols matrix of type t; GGUF rows padded to `pad_blocks` extra blocks so
// that row_stride > row bytes.
QuantMatrix MakeMatrix(std::mt19937& rng, QuantType t, size_t rows, size_t cols, size_t gs,
                       DType scale_dtype, size_t pad_blocks) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(rows * cols);
  for (float& f : x) f = dist(rng);
  QuantMatrix m;
  m.w.quant = t;
  m.w.rows = rows;
  m.w.cols = cols;
  if (!IsMlx(t)) {
    m.w.row_stride = QuantRowBytes(t, cols) + pad_blocks * QuantBlockBytes(t);
    m.bytes.assign(rows * m.w.row_stride, 0xEE);
    for (size_t r = 0; r < rows; ++r) {
      QuantizeRowGguf(t, x.data() + r * cols, cols, m.bytes.data() + r * m.w.row_stride);
    }
  } else {
    const int bits = MlxBits(t);
    m.w.row_stride = cols * bits / 8;
    m.bytes.resize(rows * m.w.row_stride);
    m.scales32.resize(rows * cols / gs);
    m.biases32.resize(rows * cols / gs);
    for (size_t r = 0; r < rows; ++r) {
      QuantizeRowMlx(bits, gs, x.data() + r * cols, cols,
                     reinterpret_cast<uint32_t*>(m.bytes.data() + r * m.w.row_stride),
                     m.scales32.data() + r * cols / gs, m.biases32.data() + r * cols / gs);
    }
    m.w.group_size = gs;
    m.w.scale_stride = cols / gs;
    m.w.scale_dtype = scale_dtype;
    if (scale_dtype == DType::kF32) {
      m.w.scales = m.scales32.data();
      m.w.biases = m.biases32.data();
    } else {
      for (size_t i = 0; i < m.scales32.size(); ++i) {
        const bool h = scale_dtype == DType::kF16;
        m.scales.push_back(h ? F32ToF16(m.scales32[i]) : F32ToBF16(m.scales32[i]));
        m.biases.push_back(h ? F32ToF16(m.biases32[i]) : F32ToBF16(m.biases32[i]));
      }
      m.w.scales = m.scales.data();
      m.w.biases = m.biases.data();
    }
  }
  m.w.data = m.bytes.data();
  EXPECT_TRUE(ValidateQuantMatrix(m.w, "test").ok());
  m.deq.resize(rows * cols);
  for (size_t r = 0; r < rows; ++r) DequantizeRow(m.w, r, m.deq.data() + r * cols);
  return m;
}

struct Case {
  QuantType type;
  size_t T, N, K, gs;
  DType scale_dtype;
  bool packed = false;  // in the packed layout (N a multiple of 16)
};

// The result may differ from Σ x·w only by the int8 rounding of x: at most half a step
// (max|x| of the block / 254) per element, times |w|, plus f32 rounding.
void Check(const Case& c, ThreadPool& pool, std::mt19937& rng, std::vector<float>* out) {
  SCOPED_TRACE(::testing::Message() << QuantTypeName(c.type) << " T=" << c.T << " N=" << c.N
                                    << " K=" << c.K << " gs=" << c.gs << " path "
                                    << CurrentQuantPath() << " threads " << pool.num_threads());
  const QuantMatrix m = MakeMatrix(rng, c.type, c.N, c.K, c.gs, c.scale_dtype, c.T % 2);
  Matrix w = m.w;
  AlignedVector<uint8_t> packed;
  if (c.packed) {
    packed.assign(c.N / kPackRows * PackedGroupBytes(c.type, c.K),
                  0xEE);               // no byte left unset is read
    w = PackRows(m.w, packed.data());  // from rows with padding when T is odd
  }
  std::uniform_real_distribution<float> ud(-2.0f, 2.0f);
  std::vector<float> x(c.T * c.K), bias(c.N);
  for (float& f : x) f = ud(rng);
  for (float& f : bias) f = ud(rng);
  std::vector<float> y(c.T * c.N, std::nanf(""));
  const bool with_bias = c.N % 2 == 1;
  QuantMatMul(x.data(), c.T, w, with_bias ? bias.data() : nullptr, y.data(), pool);
  int bad = 0;
  for (size_t t = 0; t < c.T; ++t) {
    for (size_t n = 0; n < c.N; ++n) {
      double ref = with_bias ? bias[n] : 0.0, bound = 0, mag = std::fabs(ref);
      for (size_t k0 = 0; k0 < c.K; k0 += 32) {
        double amax = 0;
        for (size_t k = k0; k < k0 + 32; ++k)
          amax = std::max(amax, std::fabs(double(x[t * c.K + k])));
        for (size_t k = k0; k < k0 + 32; ++k) {
          const double wv = m.deq[n * c.K + k];
          ref += wv * x[t * c.K + k];
          mag += std::fabs(wv * x[t * c.K + k]);
          bound += std::fabs(wv) * amax / 254.0;
        }
      }
      const double tol = bound * 1.001 + 1e-5 * mag;
      const float got = y[t * c.N + n];
      if (!(std::fabs(got - ref) <= tol) && ++bad <= 5) {
        ADD_FAILURE() << "y[" << t << "," << n << "] = " << got << ", reference " << ref
                      << ", tolerance " << tol;
      }
    }
  }
  *out = y;
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (size_t T : {1, 3, 4, 9}) {
    for (size_t N : {1, 5, 12}) {
      cases.push_back({QuantType::kQ8_0, T, N, 96, 0, DType::kF16});
      cases.push_back({QuantType::kQ4_0, T, N, 160, 0, DType::kF16});
      cases.push_back({QuantType::kQ4_K, T, N, 512, 0, DType::kF16});
      cases.push_back({QuantType::kQ6_K, T, N, 768, 0, DType::kF16});
      for (size_t gs : {32, 64, 128}) {
        cases.push_back({QuantType::kMlx4, T, N, 256, gs, T == 3 ? DType::kF32 : DType::kBF16});
        cases.push_back({QuantType::kMlx8, T, N, 384, gs, T == 1 ? DType::kF16 : DType::kBF16});
      }
    }
  }
  // Q8_0 and Q4_0 decode takes 16 blocks per step, then pairs, then one block: rows of
  // exactly 16 blocks and of 2 × 16 + 5.
  for (size_t T : {1, 2, 3}) {
    for (size_t K : {512, 1184}) {
      cases.push_back({QuantType::kQ8_0, T, 5, K, 0, DType::kF16});
      cases.push_back({QuantType::kQ4_0, T, 5, K, 0, DType::kF16});
    }
  }
  // Packed matrices: register tiles of 8 (VNNI) or 2 (AVX2) tokens and every remainder,
  // scale planes that need padding (3 blocks) or not (32), one group or several.
  for (size_t T : {1, 2, 3, 4, 5, 6, 7, 8, 9, 19}) {
    for (size_t K : {96, 1024, 1184}) {
      const size_t N = T % 2 == 0 ? 16 : 48;
      cases.push_back({QuantType::kQ8_0, T, N, K, 0, DType::kF16, true});
      cases.push_back({QuantType::kQ4_0, T, N + 16, K, 0, DType::kF16, true});
      for (size_t gs : {32, 64, 128}) {
        if (K % gs != 0) continue;
        cases.push_back(
            {QuantType::kMlx4, T, N, K, gs, gs == 64 ? DType::kF16 : DType::kBF16, true});
      }
      if (K % 256 == 0) {
        cases.push_back({QuantType::kQ4_K, T, N, K, 0, DType::kF16, true});
        cases.push_back({QuantType::kQ6_K, T, N + 16, K, 0, DType::kF16, true});
      }
    }
  }
  // Tensor-parallel shard shapes of a small model: 4 and 12 blocks per row.
  for (size_t T : {1, 2, 7}) {
    for (size_t K : {128, 384})
      cases.push_back({QuantType::kQ4_0, T, 256, K, 0, DType::kF16, true});
  }
  return cases;
}

TEST(QuantMatMul, EveryPathAndTypeMatchesDequantizedReference) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  for (size_t threads : {1, 2}) {
    ThreadPool pool(threads);
    const std::vector<Case> cases = Cases();
    std::vector<std::vector<float>> first(cases.size());
    for (const std::string& path : QuantPaths()) {
      ASSERT_TRUE(SetQuantPath(path));
      ASSERT_EQ(CurrentQuantPath(), path);
      std::mt19937 rng(seed);  // the same data on every path
      for (size_t i = 0; i < cases.size(); ++i) {
        std::vector<float> y;
        Check(cases[i], pool, rng, &y);
        if (first[i].empty()) {
          first[i] = y;
          continue;
        }
        // Paths share the activation quantization and sum integers exactly; only the
        // order of f32 sums differs.
        for (size_t j = 0; j < y.size(); ++j) {
          ASSERT_NEAR(y[j], first[i][j], 1e-4 * (1 + std::fabs(first[i][j])))
              << QuantTypeName(cases[i].type) << " path " << path << " element " << j;
        }
      }
    }
    SetQuantPath("");
  }
}

// Row t of a quantized matmul is the same bits whatever T is and wherever t sits among
// the rows (every register tile and remainder), on every path, packed and in the file's
// row layout: activations are quantized per row, block sums are integers, and each row's
// f32 sum runs over the blocks in one order.
TEST(QuantMatMul, RowsDoNotDependOnTheBatch) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  ThreadPool pool(2);
  const size_t N = 32, K = 512, kMaxT = 40;
  std::uniform_real_distribution<float> ud(-2.0f, 2.0f);
  for (const std::string& path : QuantPaths()) {
    ASSERT_TRUE(SetQuantPath(path));
    for (int kind = 0; kind < 10; ++kind) {
      // Each type packed, then in the file's row layout (the kernels for unpacked rows).
      const QuantType type = std::array{QuantType::kQ8_0, QuantType::kQ4_0, QuantType::kQ4_K,
                                        QuantType::kQ6_K, QuantType::kMlx4}[kind % 5];
      const bool pack = kind < 5;
      const QuantMatrix m = MakeMatrix(rng, pack || kind != 9 ? type : QuantType::kMlx8, N, K, 64,
                                       DType::kF16, 0);
      if (pack) ASSERT_TRUE(CanPack(m.w));
      AlignedVector<uint8_t> packed(N / kPackRows * PackedGroupBytes(type, K), 0xEE);
      const Matrix w = pack ? PackRows(m.w, packed.data()) : m.w;
      std::vector<float> x(kMaxT * K);
      for (float& f : x) f = ud(rng);
      std::vector<float> alone(kMaxT * N);
      for (size_t t = 0; t < kMaxT; ++t) {
        MatMul(x.data() + t * K, 1, w, nullptr, alone.data() + t * N, pool);
      }
      for (size_t T : {2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 40}) {
        const size_t first = (T * 5) % (kMaxT - T + 1);
        std::vector<float> y(T * N, std::nanf(""));
        MatMul(x.data() + first * K, T, w, nullptr, y.data(), pool);
        for (size_t i = 0; i < T * N; ++i) {
          ASSERT_EQ(std::memcmp(&y[i], &alone[first * N + i], sizeof(float)), 0)
              << path << " " << QuantTypeName(*w.quant) << (pack ? " packed" : " rows")
              << " T=" << T << " row " << first + i / N
              << " col " << i % N << ": " << y[i] << " in the batch, " << alone[first * N + i]
              << " alone";
        }
      }
    }
  }
  SetQuantPath("");
}

// MatMulMany gives every job's MatMul bit for bit: the experts of a MoE layer as jobs
// (gate and up sharing x, some with no tokens, then the downs), packed and not, on every
// path. On the x86 paths packed jobs must take the single dispatch.
TEST(MatMulMany, EqualsEachMatMulOnEveryPath) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> ud(-2.0f, 2.0f);
  std::uniform_int_distribution<size_t> tokens(0, 5);
  for (QuantType t : {QuantType::kQ8_0, QuantType::kQ4_0, QuantType::kQ4_K, QuantType::kQ6_K,
                      QuantType::kMlx4}) {
    for (bool pack : {true, false}) {
      const size_t E = 6, F = 48, D = 256, gs = t == QuantType::kMlx4 ? 64 : 0;
      std::vector<QuantMatrix> mats;
      std::vector<AlignedVector<uint8_t>> packed(3 * E);
      std::vector<Matrix> ws(3 * E);
      for (size_t i = 0; i < 3 * E; ++i) {
        const bool down = i % 3 == 2;
        // Downs read 64 columns, or 256 for the K kinds' whole blocks.
        const bool k_kind = t == QuantType::kQ4_K || t == QuantType::kQ6_K;
        const size_t K = down && !k_kind ? 64 : D;
        mats.push_back(MakeMatrix(rng, t, down ? D : F + 16 * (i % 3), K, gs, DType::kBF16, 0));
        ws[i] = mats.back().w;
        // Pack all but one matrix when packing, so a mixed set is covered too.
        if (pack && i != 4) {
          packed[i].assign(PackedWeightBytes(ws[i]), 0xEE);
          ws[i] = PackWeight(ws[i], packed[i].data());
        }
      }
      std::vector<std::vector<float>> xs(3 * E), many(3 * E), each(3 * E);
      std::vector<MatMulJob> jobs;
      for (size_t e = 0; e < E; ++e) {
        const size_t T = e == 1 ? 0 : tokens(rng);
        for (size_t j = 0; j < 3; ++j) {
          const size_t i = 3 * e + j;
          xs[i].resize(T * ws[i].cols);
          for (float& f : xs[i]) f = ud(rng);
          if (j == 1 && ws[i].cols == ws[i - 1].cols) xs[i] = xs[i - 1];  // up shares gate's x
          many[i].assign(T * ws[i].rows, std::nanf(""));
          each[i] = many[i];
        }
        for (size_t j = 0; j < 3; ++j) {
          const size_t i = 3 * e + j;
          // Gate and up pass the same pointer, as MoeForward does.
          const float* x = j == 1 && ws[i].cols == ws[i - 1].cols ? xs[i - 1].data() : xs[i].data();
          jobs.push_back({x, T, &ws[i], many[i].data()});
        }
      }
      for (const std::string& path : QuantPaths()) {
        ASSERT_TRUE(SetQuantPath(path));
        for (size_t threads : {1, 2}) {
          SCOPED_TRACE(::testing::Message() << QuantTypeName(t) << " packed " << pack << " path "
                                            << path << " threads " << threads);
          ThreadPool pool(threads);
          EXPECT_FALSE(QuantMatMulMany(jobs.data(), jobs.size(), pool))
              << "a set with a matrix in the file layout must not take the single dispatch";
          for (auto& v : many) std::fill(v.begin(), v.end(), std::nanf(""));
          MatMulMany(jobs.data(), jobs.size(), pool);
          for (size_t i = 0; i < jobs.size(); ++i) {
            MatMul(jobs[i].x, jobs[i].T, *jobs[i].w, nullptr, each[i].data(), pool);
            ASSERT_EQ(0, std::memcmp(many[i].data(), each[i].data(), many[i].size() * 4))
                << "job " << i << " T " << jobs[i].T;
          }
          // Without the unpacked one, the x86 paths run the jobs in one dispatch.
          if (pack) {
            std::vector<MatMulJob> rest;
            for (size_t i = 0; i < jobs.size(); ++i) {
              if (i != 4) rest.push_back(jobs[i]);
            }
            for (auto& v : many) std::fill(v.begin(), v.end(), std::nanf(""));
            const bool single = QuantMatMulMany(rest.data(), rest.size(), pool);
            EXPECT_EQ(single, path != "portable");
            if (!single) MatMulMany(rest.data(), rest.size(), pool);
            for (size_t i = 0; i < jobs.size(); ++i) {
              if (i == 4) continue;
              ASSERT_EQ(0, std::memcmp(many[i].data(), each[i].data(), many[i].size() * 4))
                  << "job " << i << " T " << jobs[i].T << " single dispatch " << single;
            }
          }
        }
      }
      SetQuantPath("");
    }
  }
}

// The x86 activation quantizer must give the bytes of the portable one, so that both
// paths compute the same integer dot products.
// The x86 activation quantizers give the portable quantizer's bytes exactly: blocks with
// ties between two steps and all-zero blocks included.
void ExpectSameActs(
    const std::function<void(const float*, size_t, size_t, QuantType, QuantActs*)>& quantize,
    const std::vector<QuantType>& types) {
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<float> ud(-3.0f, 3.0f);
  for (QuantType t : types) {
    const size_t T = 3, K = 256;
    std::vector<float> x(T * K);
    for (float& f : x) f = ud(rng);
    // Ties: values exactly between two steps of a block whose max is 127.
    for (size_t k = 0; k < 32; ++k) x[k] = (k == 0) ? 127.0f : static_cast<float>(k) + 0.5f;
    for (size_t k = 32; k < 64; ++k) x[k] = 0.0f;  // an all-zero block
    QuantActs a, b;
    QuantizeActs(x.data(), T, K, t, &a);
    quantize(x.data(), T, K, t, &b);
    EXPECT_EQ(a.q, b.q) << QuantTypeName(t);
    EXPECT_EQ(a.d, b.d) << QuantTypeName(t);
    EXPECT_EQ(a.sum, b.sum) << QuantTypeName(t);
    EXPECT_EQ(a.corr, b.corr) << QuantTypeName(t);
    EXPECT_EQ(a.bcorr, b.bcorr) << QuantTypeName(t);
  }
}

TEST(QuantMatMul, ActivationQuantizersAgreeExactly) {
  if (!x86::QuantVnniSupported()) GTEST_SKIP() << "no AVX512-VNNI";
  ExpectSameActs([](const float* x, size_t T, size_t K, QuantType t,
                    QuantActs* a) { x86::QuantizeActsVnni(x, T, K, t, a); },
                 {QuantType::kQ8_0, QuantType::kQ4_0, QuantType::kQ4_K, QuantType::kQ6_K,
                  QuantType::kMlx4, QuantType::kMlx8});
}

TEST(QuantMatMul, Avx2ActivationQuantizerAgreesExactly) {
  if (!x86::QuantAvx2Supported()) GTEST_SKIP() << "no AVX2";
  ExpectSameActs(x86::QuantizeActsAvx2, {QuantType::kQ8_0, QuantType::kQ4_0, QuantType::kQ4_K,
                                         QuantType::kQ6_K, QuantType::kMlx8});
}

// The packed layout holds the same blocks: every block reads back byte for byte, rows
// dequantize alike, whole groups slice as rows do, and column slices are refused.
TEST(QuantPacked, SameBlocksAsTheRows) {
  std::mt19937 rng(std::random_device{}());
  for (QuantType t : {QuantType::kQ8_0, QuantType::kQ4_0}) {
    for (size_t K : {32, 96, 1024}) {
      SCOPED_TRACE(::testing::Message() << QuantTypeName(t) << " K=" << K);
      const QuantMatrix m = MakeMatrix(rng, t, 48, K, 0, DType::kF16, 1);
      ASSERT_TRUE(CanPack(m.w));
      EXPECT_FALSE(CanPack(SliceRows(m.w, 0, 40)));
      const size_t gb = PackedGroupBytes(t, K);
      EXPECT_EQ(gb % 64, 0u);
      EXPECT_GE(gb, 16 * QuantRowBytes(t, K));
      AlignedVector<uint8_t> buf(3 * gb, 0xEE);
      const Matrix p = PackRows(m.w, buf.data());
      ASSERT_TRUE(p.packed);
      EXPECT_FALSE(CanPack(p));
      std::vector<uint8_t> a(QuantBlockBytes(t)), b(QuantBlockBytes(t));
      for (size_t r = 0; r < 48; ++r) {
        for (size_t blk = 0; blk < K / 32; ++blk) {
          ReadBlock(m.w, r, blk, a.data());
          ReadBlock(p, r, blk, b.data());
          ASSERT_EQ(a, b) << "row " << r << " block " << blk;
        }
      }
      std::vector<float> x(K), y(K);
      const Matrix tail = SliceRows(p, 16, 32);
      for (size_t r = 0; r < 32; ++r) {
        DequantizeRow(tail, r, y.data());
        DequantizeRow(m.w, 16 + r, x.data());
        ASSERT_EQ(x, y) << "row " << r;
      }
      auto cols = SliceColumns(p, 0, 32);
      ASSERT_FALSE(cols.ok());
      EXPECT_NE(cols.status().message().find("packed"), std::string::npos);
    }
  }
  // Q4_K: the sub-blocks' values, reordered into nibble pairs 16 apart; Q6_K: the 6-bit
  // values as bytes with a scale per 16.
  for (QuantType t : {QuantType::kQ4_K, QuantType::kQ6_K}) {
    SCOPED_TRACE(QuantTypeName(t));
    const size_t K = 768;
    const QuantMatrix m = MakeMatrix(rng, t, 32, K, 0, DType::kF16, 1);
    ASSERT_TRUE(CanPack(m.w));
    AlignedVector<uint8_t> buf(2 * PackedGroupBytes(t, K), 0xEE);
    const Matrix p = PackRows(m.w, buf.data());
    std::vector<float> y(K);
    for (size_t r = 0; r < 32; ++r) {
      DequantizeRow(p, r, y.data());
      for (size_t k = 0; k < K; ++k) {
        ASSERT_NEAR(y[k], m.deq[r * K + k], 1e-6 * (1 + std::fabs(m.deq[r * K + k])))
            << "row " << r << " column " << k;
      }
    }
  }
  // MLX 4-bit: the nibbles and each block's group scale and bias; f32 scales stay unpacked.
  for (size_t gs : {32, 64, 128}) {
    SCOPED_TRACE(::testing::Message() << "MLX4 gs=" << gs);
    const size_t K = 384;
    const QuantMatrix m = MakeMatrix(rng, QuantType::kMlx4, 32, K, gs, DType::kBF16, 0);
    ASSERT_TRUE(CanPack(m.w));
    EXPECT_FALSE(CanPack(MakeMatrix(rng, QuantType::kMlx4, 32, K, gs, DType::kF32, 0).w));
    AlignedVector<uint8_t> buf(2 * PackedGroupBytes(QuantType::kMlx4, K));
    const Matrix p = PackRows(m.w, buf.data());
    uint8_t na[16], nb[16];
    float sa, sb, ba, bb;
    for (size_t r = 0; r < 32; ++r) {
      for (size_t blk = 0; blk < K / 32; ++blk) {
        ReadNibbleBlock(m.w, r, blk, na, &sa, &ba);
        ReadNibbleBlock(p, r, blk, nb, &sb, &bb);
        ASSERT_EQ(0, std::memcmp(na, nb, 16)) << "row " << r << " block " << blk;
        ASSERT_EQ(sa, sb);
        ASSERT_EQ(ba, bb);
      }
      std::vector<float> y(K);
      DequantizeRow(p, r, y.data());
      for (size_t k = 0; k < K; ++k) ASSERT_EQ(y[k], m.deq[r * K + k]) << "row " << r;
    }
  }
}

TEST(QuantMatMul, PathsListedAndSelectable) {
  const auto paths = QuantPaths();
  ASSERT_FALSE(paths.empty());
  EXPECT_EQ(paths.back(), "portable");
  EXPECT_FALSE(SetQuantPath("no-such-path"));
  EXPECT_TRUE(SetQuantPath(""));
}

TEST(QuantEmbeddingLookup, RowsEqualDequantizedRows) {
  std::mt19937 rng(std::random_device{}());
  for (QuantType t : {QuantType::kQ8_0, QuantType::kQ4_K, QuantType::kQ6_K, QuantType::kMlx4}) {
    const QuantMatrix m = MakeMatrix(rng, t, 17, 256, 64, DType::kBF16, 0);
    const std::vector<int32_t> ids = {16, 0, 3, 3, 9};
    std::vector<float> out(ids.size() * 256);
    QuantEmbeddingLookup(m.w, ids.data(), ids.size(), out.data());
    for (size_t i = 0; i < ids.size(); ++i) {
      for (size_t k = 0; k < 256; ++k) {
        ASSERT_EQ(out[i * 256 + k], m.deq[ids[i] * 256 + k]) << QuantTypeName(t);
      }
    }
  }
}

// kernels::MatMul and EmbeddingLookup route quantized matrices here, and slices of a
// matrix (tensor-parallel shards) equal the same slices of the dequantized matrix.
TEST(QuantMatMul, WeightRoutingAndSlices) {
  std::mt19937 rng(std::random_device{}());
  ThreadPool pool(2);
  for (QuantType t : {QuantType::kQ4_K, QuantType::kMlx4}) {
    const size_t N = 8, K = 512, gs = 64;
    const QuantMatrix m = MakeMatrix(rng, t, N, K, gs, DType::kF16, 0);
    Matrix w;
    w.data = m.bytes.data();
    w.rows = N;
    w.cols = K;
    w.row_stride = QuantRowBytes(t, K);
    w.quant = t;
    w.scales = m.w.scales;
    w.biases = m.w.biases;
    w.scale_dtype = m.w.scale_dtype;
    w.group_size = gs;
    w.scale_stride = K / gs;
    std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
    std::vector<float> x(2 * 256);
    for (float& f : x) f = ud(rng);
    // Rows 2..5, columns 256..511.
    const Matrix rows = SliceRows(w, 2, 4);
    auto part = SliceColumns(rows, 256, 256);
    ASSERT_TRUE(part.ok()) << part.status().message();
    EXPECT_EQ(MatrixBytes(*part),
              4 * QuantRowBytes(t, 256) + (IsMlx(t) ? 2 * 4 * (256 / gs) * 2 : 0));
    std::vector<float> y(2 * 4), ref(2 * 4);
    MatMul(x.data(), 2, *part, nullptr, y.data(), pool);
    for (size_t tt = 0; tt < 2; ++tt) {
      for (size_t n = 0; n < 4; ++n) {
        double acc = 0, bound = 0;
        for (size_t k = 0; k < 256; ++k) {
          const double wv = m.deq[(2 + n) * K + 256 + k];
          acc += wv * x[tt * 256 + k];
          bound += std::fabs(wv) * 1.0 / 254;  // |x| <= 1
        }
        EXPECT_NEAR(y[tt * 4 + n], acc, bound) << QuantTypeName(t);
      }
    }
    std::vector<float> row(256);
    const int32_t id = 3;
    EmbeddingLookup(*part, &id, 1, row.data());
    for (size_t k = 0; k < 256; ++k) ASSERT_EQ(row[k], m.deq[5 * K + 256 + k]);
    auto bad = SliceColumns(w, 32, 256);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.status().message().find("multiples of"), std::string::npos)
        << bad.status().message();
  }
}

}  // namespace
}  // namespace meshlm::kernels
