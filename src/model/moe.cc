// Mixture-of-experts routing and the grouped expert FFN.
#include "model/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/kernels.h"

namespace meshlm::model {
void Route(const float* logits, size_t T, size_t E, size_t K, bool norm_topk_prob, Routing* out) {
  out->k = K;
  out->expert.resize(T * K);
  out->weight.resize(T * K);
  std::vector<float> p(E);
  std::vector<int32_t> idx(E);
  for (size_t t = 0; t < T; ++t) {
    // Softmax in f32 over all experts, as Hugging Face computes the routing weights.
    const float* l = logits + t * E;
    const float mx = *std::max_element(l, l + E);
    float sum = 0;
    for (size_t e = 0; e < E; ++e) sum += p[e] = std::exp(l[e] - mx);
    for (size_t e = 0; e < E; ++e) p[e] /= sum;
    for (size_t e = 0; e < E; ++e) idx[e] = static_cast<int32_t>(e);
    std::partial_sort(idx.begin(), idx.begin() + K, idx.end(),
                      [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    float top = 0;
    for (size_t j = 0; j < K; ++j) top += p[idx[j]];
    for (size_t j = 0; j < K; ++j) {
      out->expert[t * K + j] = idx[j];
      out->weight[t * K + j] = norm_topk_prob ? p[idx[j]] / top : p[idx[j]];
    }
  }
}

void MoeForward(const ModelConfig& c, const MoeWeights& w, const float* xn, size_t T, float* out,
                MoeScratch* s, ThreadPool& pool) {
  const size_t D = c.hidden_size, E = c.num_experts, K = c.num_experts_per_tok;
  // Router logits: [T, E], every expert's, on every rank.
  float* logits = GrowTo(s->logits, T * E);
  kernels::MatMul(xn, T, w.router, nullptr, logits, pool);
  Route(logits, T, E, K, c.norm_topk_prob, &s->routing);
  const Routing& r = s->routing;

  // Counting sort of the (token, slot) pairs by the experts this shard holds.
  const size_t first = w.expert_begin, held = w.experts.size();
  std::vector<uint32_t> start(held + 1, 0);
  for (size_t i = 0; i < T * K; ++i) {
    const size_t e = static_cast<size_t>(r.expert[i]);
    if (e >= first && e < first + held) ++start[e - first + 1];
  }
  for (size_t e = 0; e < held; ++e) start[e + 1] += start[e];
  s->order.resize(start[held]);
  std::vector<uint32_t> fill(start.begin(), start.end() - 1);
  for (size_t i = 0; i < T * K; ++i) {
    const size_t e = static_cast<size_t>(r.expert[i]);
    if (e >= first && e < first + held) s->order[fill[e - first]++] = static_cast<uint32_t>(i);
  }

  // The rows of the tokens routed to each chosen expert, one block per expert in expert
  // order: xs: [M, D] with M = start[held]; gate and up: [M, F] at each expert's offset.
  const size_t M = start[held];
  float* xs = GrowTo(s->xs, M * D);
  for (size_t i = 0; i < M; ++i) {
    std::memcpy(xs + i * D, xn + (s->order[i] / K) * D, D * sizeof(float));
  }
  std::vector<size_t> off(held + 1, 0);  // offsets into gate/up in floats
  for (size_t e = 0; e < held; ++e) {
    off[e + 1] = off[e] + (start[e + 1] - start[e]) * w.experts[e].gate.rows;
  }
  float* gate = GrowTo(s->gate, off[held]);
  float* up = GrowTo(s->up, off[held]);
  float* ys = GrowTo(s->ys, M * D);
  // All chosen experts' gate and up in one dispatch, then all their downs in another.
  std::vector<kernels::MatMulJob> jobs;
  for (size_t e = 0; e < held; ++e) {
    const size_t n = start[e + 1] - start[e];
    if (n == 0) continue;
    const float* x = xs + start[e] * D;
    jobs.push_back({x, n, &w.experts[e].gate, gate + off[e]});
    jobs.push_back({x, n, &w.experts[e].up, up + off[e]});
  }
  kernels::MatMulMany(jobs.data(), jobs.size(), pool);
  kernels::SiluMul(gate, up, off[held], gate);
  jobs.clear();
  for (size_t e = 0; e < held; ++e) {
    const size_t n = start[e + 1] - start[e];
    if (n > 0) jobs.push_back({gate + off[e], n, &w.experts[e].down, ys + start[e] * D});
  }
  kernels::MatMulMany(jobs.data(), jobs.size(), pool);

  std::memset(out, 0, T * D * sizeof(float));
  for (size_t i = 0; i < M; ++i) {
    const uint32_t slot = s->order[i];
    const float g = r.weight[slot];
    float* o = out + (slot / K) * D;
    const float* y = ys + i * D;
    for (size_t d = 0; d < D; ++d) o[d] += g * y[d];
  }
}

}  // namespace meshlm::model
