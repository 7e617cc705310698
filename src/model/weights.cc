// Weight lookup and validation against the config.
#include "model/weights.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <iterator>
#include <set>
#include <thread>

#include "base/progress.h"
#include "kernels/kernels.h"
#include "kernels/quant_matmul.h"
#include "model/mlx_quant.h"

namespace meshlm::model {
namespace {

Result<const TensorInfo*> GetChecked(const TensorStore& store, const std::string& name,
                                     std::vector<int64_t> shape) {
  MESHLM_ASSIGN_OR_RETURN(const TensorInfo* t, store.Get(name));
  if (t->shape != shape) {
    return Error("[model] tensor '{}' in '{}' has shape [{}] but config.json implies [{}]", name,
                 t->file, fmt::join(t->shape, ", "), fmt::join(shape, ", "));
  }
  if (!t->quant && t->dtype != DType::kF32 && t->dtype != DType::kF16 && t->dtype != DType::kBF16) {
    return Error("[model] tensor '{}' in '{}' has dtype {}; supported: F32, F16, BF16", name,
                 t->file, DTypeName(t->dtype));
  }
  return t;
}

Result<Matrix> GetMatrix(const TensorStore& store, const std::string& name, int64_t rows,
                         int64_t cols) {
  MESHLM_ASSIGN_OR_RETURN(const TensorInfo* packed, store.Get(name));
  if (packed->dtype == DType::kU32) return GetMlxMatrix(store, *packed, rows, cols);
  MESHLM_ASSIGN_OR_RETURN(const TensorInfo* t, GetChecked(store, name, {rows, cols}));
  // Elements or GGUF blocks.
  return ContiguousMatrix(t->data, t->dtype, t->quant, static_cast<size_t>(rows),
                          static_cast<size_t>(cols));
}

// Small vectors (norms, biases) are converted to f32 once at load; `part` selects a slice.
Result<std::vector<float>> GetVector(const TensorStore& store, const std::string& name, int64_t n,
                                     Range part = {}) {
  MESHLM_ASSIGN_OR_RETURN(const TensorInfo* t, GetChecked(store, name, {n}));
  if (part.end == 0) part = {0, static_cast<size_t>(n)};
  std::vector<float> v(part.size());
  kernels::ConvertToF32(t->data + part.begin * DTypeSize(t->dtype), t->dtype, part.size(),
                        v.data());
  return v;
}

// This shard's columns [c.begin, c.end) of w (rows keep the full stride), with the
// tensor's name in the error when they fall off its quantized blocks or groups.
Result<Matrix> ShardColumns(const Matrix& w, Range c, const std::string& name) {
  auto s = SliceColumns(w, c.begin, c.size());
  if (!s.ok()) return s.status().With(fmt::format("[model] tensor '{}'", name));
  return s;
}

// Drops the mapped pages under the rows of w (a view into a file map) from this
// process's memory; they are read again from the file if touched.
void DropPages(const Matrix& w) {
  const uint8_t* src = w.data;
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(src) & ~(page - 1);
  const uintptr_t end =
      reinterpret_cast<uintptr_t>(src + (w.rows - 1) * w.row_stride + RowBytes(w));
  ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

// A column slice of a matrix (f32/f16/bf16 or GGUF blocks), copied into memory the shard
// owns. A column slice touches every page of its rows, so left as a view it would fault
// in the whole matrix, and its short strided rows stream slower; the copy is made once
// and the source pages are dropped from the map (madvise), so a shard's resident memory
// is its share of the weights. Row slices stay views (contiguous), and so do MLX slices
// (their scales and biases are separate arrays).
Matrix Compact(const Matrix& w, std::vector<std::vector<uint8_t>>* owned) {
  if (w.packed || w.rows == 0 || (w.quant && IsMlx(*w.quant))) return w;
  const size_t row = RowBytes(w);  // of the slice; rows start w.row_stride apart
  if (row == w.row_stride) return w;
  owned->emplace_back(w.rows * row);
  uint8_t* dst = owned->back().data();
  for (size_t r = 0; r < w.rows; ++r) std::memcpy(dst + r * row, w.data + r * w.row_stride, row);
  DropPages(w);
  Matrix out = w;
  out.data = dst;
  out.row_stride = row;
  return out;
}

// The MoE module of a layer: Mixtral checkpoints name it block_sparse_moe, the others mlp.
std::string MoeModule(const TensorStore& store, const std::string& layer_prefix) {
  const std::string mixtral = layer_prefix + "block_sparse_moe.";
  return store.Find(mixtral + "gate.weight") != nullptr ? mixtral : layer_prefix + "mlp.";
}

// The experts' matrices of one kind (gate, up or down) stacked in one tensor
// [E, rows, cols] (GGUF *_exps, MLX switch_mlp), as one [E·rows, cols] matrix.
Result<Matrix> GetStacked(const TensorStore& store, const TensorInfo& t, int64_t E, int64_t rows,
                          int64_t cols) {
  auto flat = [&](const TensorInfo& x) {
    TensorInfo f = x;
    f.shape = {x.shape[0] * x.shape[1], x.shape[2]};
    return f;
  };
  if (t.shape.size() != 3 || t.shape[0] != E || t.shape[1] != rows) {
    return Error(
        "[model] stacked expert tensor '{}' in '{}' has shape [{}] but config.json "
        "implies [{}, {}, {}] (num_experts={})",
        t.name, t.file, fmt::join(t.shape, ", "), E, rows,
        t.dtype == DType::kU32 ? std::string("packed words") : std::to_string(cols), E);
  }
  if (t.dtype == DType::kU32) {  // MLX: weight words with scales and biases [E, rows, groups]
    const std::string module = t.name.substr(0, t.name.size() - std::string(".weight").size());
    MESHLM_ASSIGN_OR_RETURN(const TensorInfo* sc, store.Get(module + ".scales"));
    MESHLM_ASSIGN_OR_RETURN(const TensorInfo* bi, store.Get(module + ".biases"));
    for (const TensorInfo* x : {sc, bi}) {
      if (x->shape.size() != 3 || x->shape[0] != E || x->shape[1] != rows) {
        return Error("[model] '{}' in '{}' has shape [{}]; expected [{}, {}, groups]", x->name,
                     x->file, fmt::join(x->shape, ", "), E, rows);
      }
    }
    return GetMlxMatrix(flat(t), flat(*sc), flat(*bi), E * rows, cols);
  }
  if (t.shape[2] != cols) {
    return Error(
        "[model] stacked expert tensor '{}' in '{}' has shape [{}] but config.json "
        "implies [{}, {}, {}]",
        t.name, t.file, fmt::join(t.shape, ", "), E, rows, cols);
  }
  if (!t.quant && t.dtype != DType::kF32 && t.dtype != DType::kF16 && t.dtype != DType::kBF16) {
    return Error("[model] tensor '{}' in '{}' has dtype {}; supported: F32, F16, BF16", t.name,
                 t.file, DTypeName(t.dtype));
  }
  return ContiguousMatrix(t.data, t.dtype, t.quant, static_cast<size_t>(E * rows),
                          static_cast<size_t>(cols));
}

// Expert e's matrix of one kind: per-expert tensors "experts.{e}.{name}.weight" (Hugging
// Face; Mixtral's w1/w3/w2) or rows of the stacked "switch_mlp.{name}.weight".
class ExpertSource {
 public:
  static Result<ExpertSource> Open(const TensorStore& store, const std::string& module,
                                   const char* hf, const char* mixtral, int64_t E, int64_t rows,
                                   int64_t cols) {
    ExpertSource src;
    src.rows_ = rows;
    src.cols_ = cols;
    const std::string stacked = module + "switch_mlp." + hf + ".weight";
    src.stacked_name_ = stacked;
    if (const TensorInfo* t = store.Find(stacked)) {
      MESHLM_ASSIGN_OR_RETURN(src.stacked_, GetStacked(store, *t, E, rows, cols));
      src.is_stacked_ = true;
      return src;
    }
    const bool mix = store.Find(module + "experts.0." + mixtral + ".weight") != nullptr;
    src.per_expert_ = module + "experts.{}." + (mix ? mixtral : hf) + ".weight";
    const std::string beyond = fmt::format(fmt::runtime(src.per_expert_), E);
    if (store.Find(beyond) != nullptr) {
      return Error("[model] tensor '{}' exists in '{}' but config.json says num_experts={}", beyond,
                   store.dir(), E);
    }
    return src;
  }
  Result<Matrix> Get(const TensorStore& store, size_t e) const {
    if (is_stacked_) return SliceRows(stacked_, e * rows_, rows_);
    return GetMatrix(store, fmt::format(fmt::runtime(per_expert_), e), rows_, cols_);
  }
  std::string Name(size_t e) const {
    return is_stacked_ ? fmt::format("{} (expert {})", stacked_name_, e)
                       : fmt::format(fmt::runtime(per_expert_), e);
  }

 private:
  bool is_stacked_ = false;
  Matrix stacked_;
  std::string per_expert_, stacked_name_;
  int64_t rows_ = 0, cols_ = 0;
};

// The memory this process owns (tensors read into memory, compact copies) as sorted
// [begin, end) ranges: a matrix there is not in a file map. Built once per pass, so
// that a model of many thousand expert tensors is not searched once per matrix.
class OwnedRanges {
 public:
  OwnedRanges(const TensorStore& store, const ModelWeights& w) {
    for (const auto& [name, t] : store.tensors()) {
      if (!t.mapped) ranges_.emplace_back(t.data, t.data + t.nbytes);
    }
    for (const std::vector<uint8_t>& o : w.owned) {  // compact copies (never dropped)
      ranges_.emplace_back(o.data(), o.data() + o.size());
    }
    std::sort(ranges_.begin(), ranges_.end());
  }
  bool Contains(const void* p) const {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), b,
                               [](const uint8_t* x, const auto& r) { return x < r.first; });
    return it != ranges_.begin() && b < std::prev(it)->second;
  }

 private:
  std::vector<std::pair<const uint8_t*, const uint8_t*>> ranges_;
};

std::vector<Matrix*> AllMatrices(ModelWeights* w) {
  std::vector<Matrix*> ms;
  for (LayerWeights& l : w->layers) ForEachMatrix(l, [&](Matrix& m, bool) { ms.push_back(&m); });
  ms.push_back(&w->lm_head);
  return ms;
}

// Repacks every packable matrix of w into one huge-page buffer (kernels::PackWeight),
// and drops the source pages of those that lie in a file map.
Status PackMatrices(const TensorStore& store, ModelWeights* w, bool show_progress) {
  const std::vector<Matrix*> ms = AllMatrices(w);
  size_t total = 0;
  for (const Matrix* m : ms) total += kernels::PackedWeightBytes(*m);
  if (total == 0) return OkStatus();
  MESHLM_ASSIGN_OR_RETURN(w->packed, HugePageBuffer::Allocate(total));
  std::vector<std::pair<Matrix*, size_t>> jobs;  // matrix, offset in the buffer
  size_t off = 0;
  for (Matrix* m : ms) {
    const size_t n = kernels::PackedWeightBytes(*m);
    if (n == 0) continue;
    jobs.emplace_back(m, off);
    off += n;
  }
  const OwnedRanges owned(store, *w);
  Progress progress("packing", total, show_progress);
  // The copy is bound by first touches of the new memory (the kernel zeroes each page),
  // which cores take in parallel: matrices are dealt out to one thread per core.
  auto pack = [&](size_t first, size_t step) {
    for (size_t i = first; i < jobs.size(); i += step) {
      const Matrix src = *jobs[i].first;
      *jobs[i].first = kernels::PackWeight(src, w->packed->data() + jobs[i].second);
      if (!owned.Contains(src.data)) DropPages(src);
      progress.Add(kernels::PackedWeightBytes(src));
    }
  };
  const size_t threads = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(pack, t, threads);
  pack(0, threads);
  for (std::thread& t : pool) t.join();
  return OkStatus();
}

std::atomic<uint8_t> page_in_sink{0};

// Reads in the pages of every matrix still mapped from the file (the unpacked ones), so
// that loading is done at load time: left to the first forward pass, the page faults
// would be counted as prompt time. The embedding stays lazy unless it is also the LM
// head: a lookup reads only the rows of its tokens.
void PageIn(const TensorStore& store, ModelWeights* w, bool show_progress) {
  const OwnedRanges owned(store, *w);
  std::vector<std::pair<const uint8_t*, size_t>> spans;
  std::set<const uint8_t*> seen;  // a tied LM head is the embedding
  size_t total = 0;
  for (const Matrix* m : AllMatrices(w)) {
    if (m->packed || m->rows == 0 || m->data == nullptr || owned.Contains(m->data)) continue;
    if (!seen.insert(m->data).second) continue;
    const size_t bytes = (m->rows - 1) * m->row_stride + RowBytes(*m);
    spans.emplace_back(m->data, bytes);
    total += bytes;
  }
  Progress progress("reading", total, show_progress);
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  for (const auto& [data, bytes] : spans) {
    const uintptr_t begin = reinterpret_cast<uintptr_t>(data) & ~(page - 1);
    const uintptr_t end = reinterpret_cast<uintptr_t>(data) + bytes;
    ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_WILLNEED);
    // One read per page faults it in; in 64 MiB steps so the bar moves.
    constexpr uintptr_t kStep = uintptr_t{64} << 20;
    for (uintptr_t a = begin; a < end; a += kStep) {
      const uintptr_t stop = std::min(end, a + kStep);
      uint8_t sink = 0;
      for (uintptr_t p = a; p < stop; p += page) sink ^= *reinterpret_cast<volatile uint8_t*>(p);
      page_in_sink.fetch_xor(sink, std::memory_order_relaxed);  // keeps the reads
      progress.Add(std::min(stop, end) - std::max(a, reinterpret_cast<uintptr_t>(data)));
    }
  }
}

// Layer `p`'s router and this shard's experts: E/ep of them, each with Fe/tp columns.
Result<std::unique_ptr<MoeWeights>> LoadMoe(const ModelConfig& c, const TensorStore& store,
                                            const std::string& p, const ShardSpec& shard) {
  const int64_t D = c.hidden_size, E = c.num_experts, Fe = c.moe_intermediate_size;
  auto moe = std::make_unique<MoeWeights>();
  const std::string module = MoeModule(store, p);
  MESHLM_ASSIGN_OR_RETURN(moe->router, GetMatrix(store, module + "gate.weight", E, D));
  MESHLM_ASSIGN_OR_RETURN(auto gate,
                          ExpertSource::Open(store, module, "gate_proj", "w1", E, Fe, D));
  MESHLM_ASSIGN_OR_RETURN(auto up, ExpertSource::Open(store, module, "up_proj", "w3", E, Fe, D));
  MESHLM_ASSIGN_OR_RETURN(auto down,
                          ExpertSource::Open(store, module, "down_proj", "w2", E, D, Fe));
  const Range mine = SplitEven(E, shard.ep_size, shard.ep_rank);
  const Range f_part = SplitEven(Fe, shard.tp_size, shard.tp_rank);
  moe->expert_begin = mine.begin;
  for (size_t e = mine.begin; e < mine.end; ++e) {
    ExpertWeights ew;
    MESHLM_ASSIGN_OR_RETURN(ew.gate, gate.Get(store, e));
    MESHLM_ASSIGN_OR_RETURN(ew.up, up.Get(store, e));
    MESHLM_ASSIGN_OR_RETURN(ew.down, down.Get(store, e));
    ew.gate = SliceRows(ew.gate, f_part.begin, f_part.size());
    ew.up = SliceRows(ew.up, f_part.begin, f_part.size());
    MESHLM_ASSIGN_OR_RETURN(ew.down, ShardColumns(ew.down, f_part, down.Name(e)));
    moe->experts.push_back(ew);
  }
  return moe;
}

}  // namespace

Result<ModelWeights> LoadWeights(const ModelConfig& c, const TensorStore& store,
                                 const ShardSpec& shard, bool show_progress) {
  ModelWeights w;
  const int64_t D = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const int64_t q_dim = c.num_heads * c.head_dim, kv_dim = c.num_heads_kv * c.head_dim;
  const size_t parts = shard.dense_size(), r = shard.dense_rank(), Dh = c.head_dim;
  // This rank's heads, KV heads and FFN columns, as element ranges.
  const Range heads = SplitEven(c.num_heads, parts, r);
  const Range kv_heads = SplitEven(c.num_heads_kv, parts, r);
  const Range q_part{heads.begin * Dh, heads.end * Dh};
  const Range kv_part{kv_heads.begin * Dh, kv_heads.end * Dh};
  const Range f_part = SplitEven(F, parts, r);
  const bool pack = kernels::PackedLayoutHelps();
  MESHLM_ASSIGN_OR_RETURN(w.embed, GetMatrix(store, "model.embed_tokens.weight", V, D));
  w.layers.resize(shard.layer_end - shard.layer_begin);
  for (size_t l = shard.layer_begin; l < shard.layer_end; ++l) {
    LayerWeights& lw = w.layers[l - shard.layer_begin];
    const std::string p = fmt::format("model.layers.{}.", l);
    MESHLM_ASSIGN_OR_RETURN(lw.attn_norm, GetVector(store, p + "input_layernorm.weight", D));
    MESHLM_ASSIGN_OR_RETURN(lw.ffn_norm,
                            GetVector(store, p + "post_attention_layernorm.weight", D));
    MESHLM_ASSIGN_OR_RETURN(lw.wq, GetMatrix(store, p + "self_attn.q_proj.weight", q_dim, D));
    MESHLM_ASSIGN_OR_RETURN(lw.wk, GetMatrix(store, p + "self_attn.k_proj.weight", kv_dim, D));
    MESHLM_ASSIGN_OR_RETURN(lw.wv, GetMatrix(store, p + "self_attn.v_proj.weight", kv_dim, D));
    MESHLM_ASSIGN_OR_RETURN(lw.wo, GetMatrix(store, p + "self_attn.o_proj.weight", D, q_dim));
    lw.wq = SliceRows(lw.wq, q_part.begin, q_part.size());
    lw.wk = SliceRows(lw.wk, kv_part.begin, kv_part.size());
    lw.wv = SliceRows(lw.wv, kv_part.begin, kv_part.size());
    MESHLM_ASSIGN_OR_RETURN(lw.wo, ShardColumns(lw.wo, q_part, p + "self_attn.o_proj.weight"));
    if (c.attention_bias) {
      MESHLM_ASSIGN_OR_RETURN(lw.bq, GetVector(store, p + "self_attn.q_proj.bias", q_dim, q_part));
      MESHLM_ASSIGN_OR_RETURN(lw.bk,
                              GetVector(store, p + "self_attn.k_proj.bias", kv_dim, kv_part));
      MESHLM_ASSIGN_OR_RETURN(lw.bv,
                              GetVector(store, p + "self_attn.v_proj.bias", kv_dim, kv_part));
    }
    if (c.qk_norm) {
      MESHLM_ASSIGN_OR_RETURN(lw.q_norm,
                              GetVector(store, p + "self_attn.q_norm.weight", c.head_dim));
      MESHLM_ASSIGN_OR_RETURN(lw.k_norm,
                              GetVector(store, p + "self_attn.k_norm.weight", c.head_dim));
    }
    if (IsMoeLayer(c, l)) {
      MESHLM_ASSIGN_OR_RETURN(lw.moe, LoadMoe(c, store, p, shard));
    } else {
      MESHLM_ASSIGN_OR_RETURN(lw.w_gate, GetMatrix(store, p + "mlp.gate_proj.weight", F, D));
      MESHLM_ASSIGN_OR_RETURN(lw.w_up, GetMatrix(store, p + "mlp.up_proj.weight", F, D));
      MESHLM_ASSIGN_OR_RETURN(lw.w_down, GetMatrix(store, p + "mlp.down_proj.weight", D, F));
      lw.w_gate = SliceRows(lw.w_gate, f_part.begin, f_part.size());
      lw.w_up = SliceRows(lw.w_up, f_part.begin, f_part.size());
      MESHLM_ASSIGN_OR_RETURN(lw.w_down,
                              ShardColumns(lw.w_down, f_part, p + "mlp.down_proj.weight"));
    }
    // The column slices (o_proj, down_proj) get compact copies; row slices stay views, and
    // so do matrices about to be packed, since packing copies them anyway.
    ForEachMatrix(lw, [&](Matrix& m, bool) {
      if (!(pack && kernels::PackedWeightBytes(m) > 0)) m = Compact(m, &w.owned);
    });
  }
  MESHLM_ASSIGN_OR_RETURN(w.final_norm, GetVector(store, "model.norm.weight", D));
  if (store.Find("lm_head.weight") != nullptr) {
    MESHLM_ASSIGN_OR_RETURN(w.lm_head, GetMatrix(store, "lm_head.weight", V, D));
  } else if (c.tie_word_embeddings) {
    w.lm_head = w.embed;
  } else {
    return Error(
        "[model] tensor 'lm_head.weight' not found in '{}' and tie_word_embeddings is "
        "false in config.json",
        store.dir());
  }
  const Range vocab = SplitEven(V, parts, r);
  w.lm_head = SliceRows(w.lm_head, vocab.begin, vocab.size());
  if (pack) MESHLM_RETURN_IF_ERROR(PackMatrices(store, &w, show_progress));
  PageIn(store, &w, show_progress);
  return w;
}

}  // namespace meshlm::model
