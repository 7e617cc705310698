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

  std::memset(out, 0, T * D * sizeof(float));
  for (size_t e = 0; e < held; ++e) {
    const size_t n = start[e + 1] - start[e];
    if (n == 0) continue;
    const ExpertWeights& ew = w.experts[e];
    const size_t F = ew.gate.rows;
    const uint32_t* slots = s->order.data() + start[e];
    // xs: [n, D] the rows of the tokens routed to expert e; gate, up: [n, F]; ys: [n, D].
    float* xs = GrowTo(s->xs, n * D);
    for (size_t i = 0; i < n; ++i) {
      std::memcpy(xs + i * D, xn + (slots[i] / K) * D, D * sizeof(float));
    }
    float* gate = GrowTo(s->gate, n * F);
    float* up = GrowTo(s->up, n * F);
    float* ys = GrowTo(s->ys, n * D);
    kernels::MatMul(xs, n, ew.gate, nullptr, gate, pool);
    kernels::MatMul(xs, n, ew.up, nullptr, up, pool);
    kernels::SiluMul(gate, up, n * F, gate);
    kernels::MatMul(gate, n, ew.down, nullptr, ys, pool);
    for (size_t i = 0; i < n; ++i) {
      const float g = r.weight[slots[i]];
      float* o = out + (slots[i] / K) * D;
      const float* y = ys + i * D;
      for (size_t d = 0; d < D; ++d) o[d] += g * y[d];
    }
  }
}

}  // namespace meshlm::model
