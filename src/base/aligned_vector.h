// std::vector whose storage starts on a 64-byte boundary (a cache line, and one AVX-512
// vector), for activation buffers that SIMD kernels read whole vectors from: a load that
// straddles two cache lines costs two.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace meshlm {

template <typename T>
struct CacheAlignedAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};
  CacheAlignedAllocator() = default;
  template <typename U>
  CacheAlignedAllocator(const CacheAlignedAllocator<U>&) noexcept {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, size_t) noexcept { ::operator delete(p, kAlign); }
  template <typename U>
  bool operator==(const CacheAlignedAllocator<U>&) const noexcept {
    return true;
  }
};

template <typename T>
using AlignedVector = std::vector<T, CacheAlignedAllocator<T>>;

/// Resizes a scratch vector to at least n elements (it never shrinks) and returns its data.
template <typename Vec>
auto* GrowTo(Vec& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

}  // namespace meshlm
