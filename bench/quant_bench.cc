// quant_bench: quantized MatMul at the shapes of one Qwen3-0.6B / Llama-3.2-1B layer (or the
// matrices one token reads in a Qwen3-30B-A3B layer), per
// weight type and implementation, decode (T=1) and prefill (T=128), on 1 and 2 threads.
//
// Prints weight GB/s (decode is bound by memory bandwidth: compare with bench/stream) and
// GMAC/s (prefill is bound by arithmetic). Weights are cycled through copies larger than
// the L3 cache so that decode reads from DRAM as a real forward pass does.
// Usage: quant_bench [qwen3|llama|moe] [type ...] [--path=NAME] [--threads=N] [--T=N] [--packed]
//        (types: Q8_0 Q4_0 Q4_K Q6_K MLX4 MLX8; paths as kernels::QuantPaths())
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/aligned_vector.h"
#include "base/thread_pool.h"
#include "kernels/quant_matmul.h"

namespace meshlm::kernels {
namespace {

struct Shape {
  size_t N, K;
};

// A random matrix and the storage its view points into.
struct Stored {
  std::vector<uint8_t> bytes;
  AlignedVector<uint8_t> packed;  // the packed layout of bytes (--packed)
  std::vector<uint16_t> scales, biases;
  Matrix w;
};

// Optional filters from the command line ("" / 0 = all).
std::string g_path;
size_t g_threads = 0, g_T = 0;
bool g_packed = false;  // matrices in the packed layout, as a model loads them

Stored Make(QuantType t, Shape s, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 0.02f);
  Stored m;
  m.w.quant = t;
  m.w.rows = s.N;
  m.w.cols = s.K;
  m.w.row_stride = QuantRowBytes(t, s.K);
  m.bytes.resize(s.N * m.w.row_stride);
  std::vector<float> row(s.K);
  const size_t gs = 64;
  if (IsMlx(t)) {
    m.scales.resize(s.N * s.K / gs);
    m.biases.resize(s.N * s.K / gs);
  }
  std::vector<float> sc(s.K / gs), bi(s.K / gs);
  for (size_t r = 0; r < s.N; ++r) {
    for (float& f : row) f = nd(rng);
    if (IsMlx(t)) {
      QuantizeRowMlx(MlxBits(t), gs, row.data(), s.K,
                     reinterpret_cast<uint32_t*>(m.bytes.data() + r * m.w.row_stride), sc.data(),
                     bi.data());
      for (size_t g = 0; g < s.K / gs; ++g) {
        m.scales[r * s.K / gs + g] = F32ToBF16(sc[g]);
        m.biases[r * s.K / gs + g] = F32ToBF16(bi[g]);
      }
    } else {
      QuantizeRowGguf(t, row.data(), s.K, m.bytes.data() + r * m.w.row_stride);
    }
  }
  m.w.data = m.bytes.data();
  if (IsMlx(t)) {
    m.w.scales = m.scales.data();
    m.w.biases = m.biases.data();
    m.w.scale_dtype = DType::kBF16;
    m.w.group_size = gs;
    m.w.scale_stride = s.K / gs;
  }
  if (g_packed && CanPack(m.w)) {
    m.packed.resize(s.N / kPackRows * PackedGroupBytes(t, s.K));
    m.w = PackRows(m.w, m.packed.data());
    m.bytes = {};
  }
  return m;
}

double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void Run(QuantType t, const std::vector<Shape>& layer, const char* model) {
  std::mt19937 rng(1);
  // Enough copies of the layer to exceed a 32 MiB L3.
  std::vector<Stored> mats;
  size_t total = 0;
  while (total < (size_t{256} << 20)) {
    for (Shape s : layer) {
      mats.push_back(Make(t, s, rng));
      total += MatrixBytes(mats.back().w);
    }
  }
  size_t max_k = 0, max_n = 0, macs = 0;
  for (Shape s : layer) {
    max_k = std::max(max_k, s.K);
    max_n = std::max(max_n, s.N);
  }
  const size_t max_t = std::max<size_t>(128, g_T);
  std::vector<float> x(max_t * max_k), y(max_t * max_n);
  std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
  for (float& f : x) f = ud(rng);
  for (const std::string& path : QuantPaths()) {
    if (!g_path.empty() && path != g_path) continue;
    SetQuantPath(path);
    for (size_t threads : {1, 2}) {
      if (g_threads && threads != g_threads) continue;
      ThreadPool pool(threads);
      // --T=N measures that one count of tokens; by default decode and prefill.
      const std::vector<size_t> counts = g_T ? std::vector<size_t>{g_T} : std::vector<size_t>{1, 128};
      for (size_t T : counts) {
        const auto start = std::chrono::steady_clock::now();
        const double cpu0 = CpuSeconds();
        size_t bytes = 0;
        macs = 0;
        int reps = 0;
        double secs = 0;
        do {
          for (const Stored& m : mats) {
            QuantMatMul(x.data(), T, m.w, nullptr, y.data(), pool);
            bytes += MatrixBytes(m.w);
            macs += T * m.w.rows * m.w.cols;
          }
          ++reps;
          secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        } while (secs < (T <= 8 ? 1.0 : 3.0));
        // Per CPU-second figures: what one core gives when this process is not the only
        // one on the machine (wall time then includes waiting for a core).
        const double cpu = (CpuSeconds() - cpu0) / threads;
        std::printf(
            "%-6s %-5s %-10s threads %zu T=%-3zu  %7.1f GB/s  %7.1f GMAC/s   per CPU "
            "time: %7.1f GB/s %7.1f GMAC/s\n",
            model, std::string(QuantTypeName(t)).c_str(), path.c_str(), threads, T,
            bytes / secs / 1e9, macs / secs / 1e9, bytes / cpu / 1e9, macs / cpu / 1e9);
        std::fflush(stdout);
      }
    }
  }
  SetQuantPath("");
}

}  // namespace
}  // namespace meshlm::kernels

int main(int argc, char** argv) {
  using meshlm::QuantType;
  using meshlm::kernels::Shape;
  std::string model = argc > 1 ? argv[1] : "qwen3";
  // One layer's matmuls: q, k, v, o, gate, up, down as [N, K].
  const std::vector<Shape> qwen3 = {{2048, 1024}, {1024, 1024}, {1024, 1024}, {1024, 2048},
                                    {3072, 1024}, {3072, 1024}, {1024, 3072}};
  const std::vector<Shape> llama = {{2048, 2048}, {512, 2048},  {512, 2048}, {2048, 2048},
                                    {8192, 2048}, {8192, 2048}, {2048, 8192}};
  // Qwen3-30B-A3B: attention, then the gate, up and down of the 8 experts one token uses.
  std::vector<Shape> moe = {{4096, 2048}, {512, 2048}, {512, 2048}, {2048, 4096}};
  for (int e = 0; e < 8; ++e) moe.insert(moe.end(), {{768, 2048}, {768, 2048}, {2048, 768}});
  std::vector<QuantType> types;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--path=", 0) == 0) meshlm::kernels::g_path = a.substr(7);
    if (a.rfind("--threads=", 0) == 0) meshlm::kernels::g_threads = std::stoul(a.substr(10));
    if (a.rfind("--T=", 0) == 0) meshlm::kernels::g_T = std::stoul(a.substr(4));
    if (a == "--packed") meshlm::kernels::g_packed = true;
    for (QuantType t : {QuantType::kQ8_0, QuantType::kQ4_0, QuantType::kQ4_K, QuantType::kQ6_K,
                        QuantType::kMlx4, QuantType::kMlx8}) {
      if (argv[i] == meshlm::QuantTypeName(t)) types.push_back(t);
    }
  }
  if (types.empty()) types = {QuantType::kQ8_0, QuantType::kQ4_0, QuantType::kMlx4};
  for (QuantType t : types) {
    meshlm::kernels::Run(t, model == "llama" ? llama : model == "moe" ? moe : qwen3, model.c_str());
  }
  return 0;
}
