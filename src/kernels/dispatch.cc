// Choice of the SIMD target for all kernels: Highway's runtime choice, or one forced by
// tests and benchmarks.
#include <atomic>
#include <string>
#include <vector>

#include "hwy/highway.h"
#include "hwy/targets.h"
#include "kernels/kernels.h"
#include "kernels/matmul_internal.h"

namespace meshlm::kernels {
namespace {

// Targets compiled here and supported by this CPU, best first (lowest bit first).
std::vector<int64_t> CompiledAndSupported() {
  hwy::SetSupportedTargetsForTest(0);
  std::vector<int64_t> out;
  for (int64_t bits = hwy::SupportedTargets() & HWY_TARGETS; bits != 0; bits &= bits - 1) {
    out.push_back(bits & ~(bits - 1));
  }
  return out;
}

const std::vector<int64_t>& Targets() {
  static const std::vector<int64_t> targets = CompiledAndSupported();
  return targets;
}

std::atomic<int64_t> g_forced{0};
std::atomic<bool> g_native_bf16{false};

}  // namespace

std::vector<std::string> SupportedTargets() {
  std::vector<std::string> names;
  for (int64_t t : Targets()) names.emplace_back(hwy::TargetName(t));
  return names;
}

bool SetTarget(const std::string& name) {
  int64_t chosen = 0;
  if (!name.empty()) {
    for (int64_t t : Targets()) {
      if (name == hwy::TargetName(t)) chosen = t;
    }
    if (chosen == 0) return false;
  }
  g_forced.store(chosen);
  // Highway dispatches through a global mask of allowed targets; narrowing it to one
  // target makes every HWY_DYNAMIC_DISPATCH pick that target.
  hwy::SetSupportedTargetsForTest(chosen);
  hwy::GetChosenTarget().Update(hwy::SupportedTargets());
  return true;
}

std::string CurrentTarget() {
  const int64_t forced = g_forced.load();
  return hwy::TargetName(forced != 0 ? forced : Targets().front());
}

bool SetNativeBf16(bool enable) {
  g_native_bf16.store(enable);
  return NativeBf16Available();
}

bool NativeBf16Available() {
#if HWY_ARCH_X86
  static const bool cpu_has = __builtin_cpu_supports("avx512bf16");
  if (!cpu_has) return false;
  // The intrinsics path is part of the AVX-512 level: a forced lower target must not
  // use it, so that tests exercise the portable code.
  const int64_t forced = g_forced.load();
  const int64_t current = forced != 0 ? forced : Targets().front();
  return (current & (HWY_AVX3 | HWY_AVX3_DL)) != 0;
#else
  return false;
#endif
}

bool NativeBf16Enabled() { return g_native_bf16.load() && NativeBf16Available(); }

}  // namespace meshlm::kernels
