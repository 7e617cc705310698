// Attention of kernels.h, one instantiation per Highway target; parallel over query rows,
// or over ranges of KV heads for decode.
#include <algorithm>
#include <vector>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/attention.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must come after foreach_target.h.
#include "kernels/attention-inl.h"
#include "kernels/kernels.h"

HWY_BEFORE_NAMESPACE();
namespace meshlm::kernels::HWY_NAMESPACE {

// q: [T, H, Dh]; k, v: [pos0 + T, Hk, Dh] rows kv_stride apart; out: [T, H, Dh].
void AttentionTarget(const float* q, size_t T, size_t pos0, size_t H, size_t Hk, size_t Dh,
                     const float* k, const float* v, size_t kv_stride, float scale, float* out,
                     ThreadPool& pool) {
  const size_t S_max = pos0 + T;
  const size_t group = H / Hk;
  // Tasks are query rows; with fewer rows than threads (decode), each row is split into
  // one contiguous range of KV heads per thread instead.
  const size_t threads = pool.num_threads();
  const size_t blocks = T >= 2 * threads ? 1 : std::min(Hk, threads);
  const size_t heads_per_block = (Hk + blocks - 1) / blocks;
  const size_t scratch_per_thread = heads_per_block * group * (S_max + 1);
  std::vector<float> scratch(threads * scratch_per_thread);
  pool.Run(T * blocks, [&](size_t task, size_t thread) {
    const size_t t = task / blocks;
    const size_t h0 = task % blocks * heads_per_block;
    const size_t h1 = std::min(Hk, h0 + heads_per_block);
    if (h0 >= h1) return;
    const size_t row = (t * H + h0 * group) * Dh;
    AttendHeads(q + row, (h1 - h0) * group, group, pos0 + t + 1, k + h0 * Dh, v + h0 * Dh,
                kv_stride, Dh, scale, scratch.data() + thread * scratch_per_thread, out + row);
  });
}

}  // namespace meshlm::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "base/check.h"

namespace meshlm::kernels {

HWY_EXPORT(AttentionTarget);

void Attention(const float* q, size_t T, size_t pos0, size_t H, size_t Hk, size_t Dh,
               const float* k, const float* v, size_t kv_stride, float scale, float* out,
               ThreadPool& pool) {
  MESHLM_CHECK(Hk > 0 && H % Hk == 0, "[attention] H={} not a multiple of Hk={}", H, Hk);
  MESHLM_CHECK(kv_stride >= Hk * Dh, "[attention] kv_stride {} < Hk*Dh {}", kv_stride, Hk * Dh);
  if (T == 0) return;
  HWY_DYNAMIC_DISPATCH(AttentionTarget)(q, T, pos0, H, Hk, Dh, k, v, kv_stride, scale, out, pool);
}

}  // namespace meshlm::kernels
#endif  // HWY_ONCE
