// KvCache: the keys and values of one sequence, per layer, growing with its length.
#pragma once

#include <cstddef>
#include <algorithm>
#include <vector>

#include "base/check.h"

namespace meshlm::model {

class KvCache {
 public:
  /// `row` = Hk * Dh floats per position; `capacity` = the context limit in positions.
  KvCache(size_t num_layers, size_t row, size_t capacity)
      : row_(row), capacity_(capacity), k_(num_layers), v_(num_layers) {}

  size_t capacity() const { return capacity_; }
  /// Positions 0..length()-1 hold valid keys and values.
  size_t length() const { return length_; }
  void set_length(size_t n) {
    MESHLM_CHECK(n <= capacity_);
    length_ = n;
  }
  /// Makes room for positions [0, n) in every layer; n <= capacity().
  void Reserve(size_t n) {
    MESHLM_CHECK(n <= capacity_, "{} > {}", n, capacity_);
    if (n <= reserved_) return;
    // Grow geometrically so a long generation reallocates O(log n) times.
    size_t want = reserved_ == 0 ? 64 : reserved_;
    while (want < n) want *= 2;
    if (want > capacity_) want = capacity_;
    for (auto& k : k_) k.resize(want * row_);
    for (auto& v : v_) v.resize(want * row_);
    reserved_ = want;
  }
  float* k(size_t layer) { return k_[layer].data(); }  // [reserved, Hk*Dh]
  float* v(size_t layer) { return v_[layer].data(); }
  size_t bytes() const { return 2 * k_.size() * reserved_ * row_ * sizeof(float); }
  /// Becomes a copy of the first `n` positions of `from` (same shape): a forked sequence
  /// (a shared prompt) starts from another's keys and values.
  void CopyPrefix(const KvCache& from, size_t n) {
    MESHLM_CHECK(from.k_.size() == k_.size() && from.row_ == row_ && n <= from.length_);
    Reserve(n);
    for (size_t l = 0; l < k_.size(); ++l) {
      std::copy_n(from.k_[l].data(), n * row_, k_[l].data());
      std::copy_n(from.v_[l].data(), n * row_, v_[l].data());
    }
    length_ = n;
  }

 private:
  size_t row_;
  size_t capacity_;
  size_t length_ = 0;
  size_t reserved_ = 0;
  std::vector<std::vector<float>> k_, v_;
};

}  // namespace meshlm::model
