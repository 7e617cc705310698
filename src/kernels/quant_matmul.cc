// Quantized matmul: activation quantization, the portable kernel, and the choice of path.
#include "kernels/quant_matmul.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "base/check.h"
#include "kernels/kernels.h"
#include "kernels/quant_matmul_internal.h"

namespace meshlm::kernels {
namespace {

enum Path : int { kAuto = 0, kPortable = 1, kVnni = 2, kAvx2 = 3 };
std::atomic<int> g_path{kAuto};

bool UseVnni() {
  const int p = g_path.load(std::memory_order_relaxed);
  if (p == kPortable || p == kAvx2 || !x86::QuantVnniSupported()) return false;
  if (p == kVnni) return true;
  // Follow a forced lower Highway target (tests of the portable code run the whole model
  // that way): VNNI belongs to the AVX-512 level.
  return CurrentTarget().rfind("AVX3", 0) == 0;
}

// The AVX2 kernels, on CPUs without VNNI (or when forced).
bool Avx2Path() {
  const int p = g_path.load(std::memory_order_relaxed);
  if (p == kPortable || p == kVnni || !x86::QuantAvx2Supported()) return false;
  if (p == kAvx2) return true;
  // As above: a forced Highway target below AVX2 means the portable code is under test.
  const std::string target = CurrentTarget();
  return !UseVnni() && (target.rfind("AVX", 0) == 0);
}

// ... for the layouts they read.
bool UseAvx2(const Matrix& w) { return x86::QuantAvx2Handles(w) && Avx2Path(); }

// A weight row unpacked for the portable kernel: integer quants v: [K] in the activation
// order, a scale per 16 weights sc: [K/16] and a term per 32 weights mn: [K/32] that
// multiplies the activation block sum (the Q4_K min, the MLX bias).
struct RowInts {
  std::vector<int16_t> v;
  std::vector<float> sc;
  std::vector<float> mn;
};

void UnpackRow(const Matrix& w, size_t n, RowInts* r) {
  const QuantType type = *w.quant;
  const size_t K = w.cols;
  r->v.resize(K);
  r->sc.resize(K / 16);
  r->mn.assign(K / 32, 0.0f);
  const uint8_t* row = w.data + n * w.row_stride;
  int16_t* v = r->v.data();
  float* sc = r->sc.data();
  if (w.packed && (type == QuantType::kQ4_K || type == QuantType::kMlx4)) {
    // Nibbles in the order the activations of the type are quantized in (MLX: even then
    // odd elements), a scale and a bias per 32 weights.
    uint8_t nib[16];
    for (size_t b = 0; b < K / 32; ++b) {
      ReadNibbleBlock(w, n, b, nib, &sc[2 * b], &r->mn[b]);
      sc[2 * b + 1] = sc[2 * b];
      for (int i = 0; i < 16; ++i) {
        v[32 * b + i] = nib[i] & 0xF;
        v[32 * b + 16 + i] = nib[i] >> 4;
      }
    }
    return;
  }
  switch (type) {
    case QuantType::kQ8_0:
    case QuantType::kQ4_0:
      for (size_t b = 0; b < K / 32; ++b) {
        if (type == QuantType::kQ8_0) {
          BlockQ8_0 blk;
          ReadBlock(w, n, b, reinterpret_cast<uint8_t*>(&blk));
          for (int i = 0; i < 32; ++i) v[32 * b + i] = blk.qs[i];
          sc[2 * b] = sc[2 * b + 1] = F16ToF32(blk.d);
        } else {
          BlockQ4_0 blk;
          ReadBlock(w, n, b, reinterpret_cast<uint8_t*>(&blk));
          for (int i = 0; i < 16; ++i) {
            v[32 * b + i] = (blk.qs[i] & 0xF) - 8;
            v[32 * b + 16 + i] = (blk.qs[i] >> 4) - 8;
          }
          sc[2 * b] = sc[2 * b + 1] = F16ToF32(blk.d);
        }
      }
      return;
    case QuantType::kQ4_K:
      for (size_t s = 0; s < K / 256; ++s) {
        BlockQ4_K blk;
        std::memcpy(&blk, row + s * sizeof(blk), sizeof(blk));
        const float d = F16ToF32(blk.d), dmin = F16ToF32(blk.dmin);
        for (int j = 0; j < 8; ++j) {
          int scale, m;
          Q4KScaleMin(blk.scales, j, &scale, &m);
          const int shift = 4 * (j % 2);
          for (int i = 0; i < 32; ++i) {
            v[256 * s + 32 * j + i] = (blk.qs[32 * (j / 2) + i] >> shift) & 0xF;
          }
          sc[16 * s + 2 * j] = sc[16 * s + 2 * j + 1] = d * scale;
          r->mn[8 * s + j] = -dmin * m;
        }
      }
      return;
    case QuantType::kQ6_K:
      if (w.packed) {
        uint8_t q[32];
        for (size_t b = 0; b < K / 32; ++b) {
          ReadQ6KBlock(w, n, b, q, &sc[2 * b]);
          for (int i = 0; i < 32; ++i) v[32 * b + i] = static_cast<int16_t>(q[i] - 32);
        }
        return;
      }
      for (size_t s = 0; s < K / 256; ++s) {
        BlockQ6_K blk;
        std::memcpy(&blk, row + s * sizeof(blk), sizeof(blk));
        const float d = F16ToF32(blk.d);
        for (int h = 0; h < 2; ++h) {
          const uint8_t* ql = blk.ql + 64 * h;
          const uint8_t* qh = blk.qh + 32 * h;
          int16_t* out = v + 256 * s + 128 * h;
          for (int l = 0; l < 32; ++l) {
            out[l] = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
            out[l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            out[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            out[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
          }
        }
        for (int j = 0; j < 16; ++j) sc[16 * s + j] = d * blk.scales[j];
      }
      return;
    case QuantType::kMlx4:
    case QuantType::kMlx8: {
      const size_t g0 = n * w.scale_stride;
      for (size_t b = 0; b < K / 32; ++b) {
        const uint8_t* p = row + b * (type == QuantType::kMlx4 ? 16 : 32);
        if (type == QuantType::kMlx4) {
          for (int j = 0; j < 16; ++j) {
            v[32 * b + j] = p[j] & 0xF;      // element 2j
            v[32 * b + 16 + j] = p[j] >> 4;  // element 2j + 1
          }
        } else {
          for (int i = 0; i < 32; ++i) v[32 * b + i] = p[i];
        }
        const size_t g = g0 + b * 32 / w.group_size;
        sc[2 * b] = sc[2 * b + 1] = LoadScale(w.scales, w.scale_dtype, g);
        r->mn[b] = LoadScale(w.biases, w.scale_dtype, g);
      }
      return;
    }
  }
}

// x: [T, w.cols] quantized the way the chosen path reads it.
void QuantizeFor(const float* x, size_t T, const Matrix& w, bool vnni, bool avx2, QuantActs* a) {
  const QuantType type = *w.quant;
  if (vnni) {
    x86::QuantizeActsVnni(x, T, w.cols, type, a);
  } else if (avx2 && type != QuantType::kMlx4) {
    x86::QuantizeActsAvx2(x, T, w.cols, type, a);
  } else {
    QuantizeActs(x, T, w.cols, type, a);
  }
}

// Packed groups [g0, g1) of w on the x86 path in use, into y: [T, w.rows].
void DotGroups(bool vnni, const Matrix& w, size_t g0, size_t g1, const QuantActs& a, float* y) {
  if (vnni) {
    x86::QuantDotGroupsVnni(w, g0, g1, a, y, w.rows);
  } else {
    x86::QuantDotGroupsAvx2(w, g0, g1, a, y, w.rows);
  }
}

}  // namespace

int ActOffset(QuantType t) {
  switch (t) {
    case QuantType::kQ8_0:
      return 128;
    case QuantType::kQ4_0:
      return 8;
    case QuantType::kQ6_K:
      return 32;
    default:
      return 0;
  }
}

void ResizeActs(size_t T, size_t K, QuantActs* a) {
  MESHLM_CHECK(K % kActBlock == 0, "K {} not a multiple of {}", K, kActBlock);
  const size_t nb = K / kActBlock;
  a->T = T;
  a->K = K;
  a->nb = nb;
  a->q.resize(T * K);
  a->d.resize(T * nb);
  a->sum.resize(T * nb);
  a->corr.resize(T * nb * 8);
  a->bcorr.resize(T * nb);
  a->hcorr.resize(T * nb * 2);
}

void HalfCorrections(QuantActs* a) {
  for (size_t i = 0; i < a->T * a->nb; ++i) {
    const int32_t* c = a->corr.data() + 8 * i;
    a->hcorr[2 * i] = c[0] + c[1] + c[2] + c[3];
    a->hcorr[2 * i + 1] = c[4] + c[5] + c[6] + c[7];
  }
}

void QuantizeActs(const float* x, size_t T, size_t K, QuantType t, QuantActs* a) {
  ResizeActs(T, K, a);
  const size_t nb = a->nb;
  const int offset = ActOffset(t);
  const bool evens_first = t == QuantType::kMlx4;
  for (size_t i = 0; i < T * nb; ++i) {
    const float* xb = x + i * kActBlock;
    float amax = 0;
    for (size_t k = 0; k < kActBlock; ++k) amax = std::max(amax, std::fabs(xb[k]));
    const float inv = amax > 0 ? 127.0f / amax : 0.0f;
    a->d[i] = amax / 127.0f;
    int8_t* q = a->q.data() + i * kActBlock;
    int32_t isum = 0;
    for (size_t k = 0; k < kActBlock; ++k) {
      const size_t pos = evens_first ? (k % 2) * 16 + k / 2 : k;
      q[pos] = static_cast<int8_t>(std::nearbyint(xb[k] * inv));
      isum += q[pos];
    }
    a->sum[i] = a->d[i] * static_cast<float>(isum);
    a->bcorr[i] = -offset * isum;
    for (size_t l = 0; l < 8; ++l) {
      a->corr[i * 8 + l] = -offset * (q[4 * l] + q[4 * l + 1] + q[4 * l + 2] + q[4 * l + 3]);
    }
  }
  HalfCorrections(a);
}

void QuantDotRowsPortable(const Matrix& w, size_t n0, size_t n1, const QuantActs& a, float* y,
                          size_t ldy) {
  RowInts r;
  const size_t K = w.cols, nb = K / 32;
  for (size_t n = n0; n < n1; ++n) {
    UnpackRow(w, n, &r);
    for (size_t t = 0; t < a.T; ++t) {
      const int8_t* q = a.q.data() + t * K;
      float acc = 0;
      for (size_t b = 0; b < nb; ++b) {
        int32_t s0 = 0, s1 = 0;
        for (int i = 0; i < 16; ++i) s0 += r.v[32 * b + i] * q[32 * b + i];
        for (int i = 16; i < 32; ++i) s1 += r.v[32 * b + i] * q[32 * b + i];
        acc += a.d[t * nb + b] * (r.sc[2 * b] * s0 + r.sc[2 * b + 1] * s1) +
               r.mn[b] * a.sum[t * nb + b];
      }
      y[t * ldy + n] = acc;
    }
  }
}

void QuantMatMul(const float* x, size_t T, const Matrix& w, const float* bias, float* y,
                 ThreadPool& pool) {
  MESHLM_CHECK(w.quant.has_value(), "[quant_matmul] matrix is not quantized");
  MESHLM_CHECK(w.cols % kActBlock == 0, "[quant_matmul] K {} not a multiple of 32", w.cols);
  if (T == 0 || w.rows == 0) return;
  // The workers must see this thread's buffer: a thread_local named inside the lambda
  // would be each worker's own.
  thread_local QuantActs scratch;
  const QuantActs& acts = scratch;
  const bool vnni = UseVnni();
  const bool avx2 = !vnni && UseAvx2(w);
  QuantizeFor(x, T, w, vnni, avx2, &scratch);
  const size_t N = w.rows;
  if ((vnni || avx2) && w.packed) {
    pool.ParallelFor(N / kPackRows, 1, [&](size_t begin, size_t end, size_t) {
      DotGroups(vnni, w, begin, end, acts, y);
    });
  } else {
    pool.ParallelFor(N, 4, [&](size_t begin, size_t end, size_t) {
      if (vnni) {
        x86::QuantDotRowsVnni(w, begin, end, acts, y, N);
      } else if (avx2) {
        x86::QuantDotRowsAvx2(w, begin, end, acts, y, N);
      } else {
        QuantDotRowsPortable(w, begin, end, acts, y, N);
      }
    });
  }
  if (bias != nullptr) {
    for (size_t t = 0; t < T; ++t) AddInPlace(y + t * N, bias, N);
  }
}

bool QuantMatMulMany(const MatMulJob* jobs, size_t n, ThreadPool& pool) {
  const bool vnni = UseVnni();
  for (size_t i = 0; i < n; ++i) {
    const Matrix& w = *jobs[i].w;
    if (!w.quant || !w.packed || w.cols % kActBlock != 0 || !(vnni || UseAvx2(w))) return false;
  }
  // One set of activations per distinct (x, T, K, type); a job names its set. The sets
  // live on this thread and are read by the workers through the reference below.
  thread_local std::vector<QuantActs> sets;
  std::vector<uint32_t> set_of(n);
  size_t used = 0;
  for (size_t i = 0; i < n; ++i) {
    const MatMulJob& j = jobs[i];
    size_t s = used;
    // Jobs that share x come next to each other: look back a few.
    for (size_t p = 1; p <= std::min<size_t>(i, 4); ++p) {
      const MatMulJob& o = jobs[i - p];
      if (o.x == j.x && o.T == j.T && o.w->cols == j.w->cols && *o.w->quant == *j.w->quant) {
        s = set_of[i - p];
        break;
      }
    }
    if (s == used) {
      if (sets.size() <= used) sets.resize(used + 1);
      if (j.T > 0) QuantizeFor(j.x, j.T, *j.w, vnni, !vnni, &sets[used]);
      ++used;
    }
    set_of[i] = static_cast<uint32_t>(s);
  }
  // Pieces of about equal work: a group of 16 rows costs its bytes once and its tokens'
  // multiply-adds, counted here as (T + 1) per group. Tasks are claimed in order, so the
  // threads stay balanced however uneven the jobs are.
  struct Piece {
    uint32_t job;
    uint32_t g0, g1;
  };
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) total += jobs[i].w->rows / kPackRows * (jobs[i].T + 1);
  const size_t threads = pool.num_threads();
  const size_t target = std::max<size_t>(1, total / (threads == 1 ? 1 : threads * 8));
  std::vector<Piece> pieces;
  for (size_t i = 0; i < n; ++i) {
    const size_t groups = jobs[i].w->rows / kPackRows;
    if (jobs[i].T == 0 || groups == 0) continue;
    const size_t cost = groups * (jobs[i].T + 1);
    const size_t parts = std::min(groups, (cost + target - 1) / target);
    for (size_t p = 0; p < parts; ++p) {
      pieces.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(groups * p / parts),
                        static_cast<uint32_t>(groups * (p + 1) / parts)});
    }
  }
  const std::vector<QuantActs>& acts = sets;
  pool.Run(pieces.size(), [&](size_t task, size_t) {
    const Piece& pc = pieces[task];
    const MatMulJob& j = jobs[pc.job];
    DotGroups(vnni, *j.w, pc.g0, pc.g1, acts[set_of[pc.job]], j.y);
  });
  return true;
}

void QuantEmbeddingLookup(const Matrix& table, const int32_t* ids, size_t T, float* out) {
  for (size_t t = 0; t < T; ++t) {
    DequantizeRow(table, static_cast<size_t>(ids[t]), out + t * table.cols);
  }
}

bool PackedLayoutHelps() { return UseVnni() || Avx2Path(); }

size_t PackedWeightBytes(const Matrix& w) {
  return CanPack(w) ? w.rows / kPackRows * PackedGroupBytes(*w.quant, w.cols) : 0;
}

Matrix PackWeight(const Matrix& w, uint8_t* out) {
  MESHLM_CHECK(PackedWeightBytes(w) > 0 && reinterpret_cast<uintptr_t>(out) % 64 == 0,
               "[quant_matmul] weight cannot be packed");
  return PackRows(w, out);
}

std::vector<std::string> QuantPaths() {
  std::vector<std::string> paths;
  if (x86::QuantVnniSupported()) paths.emplace_back("avx512vnni");
  if (x86::QuantAvx2Supported()) paths.emplace_back("avx2");
  paths.emplace_back("portable");
  return paths;
}

bool SetQuantPath(const std::string& name) {
  if (name.empty()) {
    g_path.store(kAuto);
  } else if (name == "portable") {
    g_path.store(kPortable);
  } else if (name == "avx512vnni" && x86::QuantVnniSupported()) {
    g_path.store(kVnni);
  } else if (name == "avx2" && x86::QuantAvx2Supported()) {
    g_path.store(kAvx2);
  } else {
    return false;
  }
  return true;
}

std::string CurrentQuantPath() {
  if (UseVnni()) return "avx512vnni";
  const int p = g_path.load(std::memory_order_relaxed);
  if (x86::QuantAvx2Supported() && p != kPortable &&
      (p == kAvx2 || CurrentTarget().rfind("AVX", 0) == 0)) {
    return "avx2";  // every packed type, and Q8_0 and Q4_0 in the file layout; else portable
  }
  return "portable";
}

}  // namespace meshlm::kernels
