// Attention of kernels.h, one instantiation per Highway target; parallel over
// (query row, head) tasks.
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
  std::vector<float> scratch(pool.num_threads() * S_max);
  pool.Run(T * H, [&](size_t task, size_t thread) {
    const size_t t = task / H;
    const size_t h = task % H;
    const size_t kv_head = h / group;
    AttendRow(q + (t * H + h) * Dh, pos0 + t + 1, k + kv_head * Dh, v + kv_head * Dh, kv_stride, Dh,
              scale, scratch.data() + thread * S_max, out + (t * H + h) * Dh);
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
