// comm::Group: the collective-communication interface every backend implements.
//
// Goals: every op has a deadline; a dead, stopped or mismatched peer is an error that
// names the peer's rank and host, never a hang; results are deterministic (the same
// bytes on every rank and in every run). Non-goals: asynchronous ops, GPU memory.
//
// Ops are collective over the group unless noted: every member must call the same op
// with the same sizes in the same order. Frames carry the op kind, a sequence number,
// the dtype and the byte count, so a rank that calls a different op fails loudly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "base/status.h"
#include "base/dtype.h"

namespace meshlm::comm {

enum class ReduceOp : uint8_t { kSum = 0, kMax = 1, kMin = 2 };

/// Maps a C++ element type to its DType (float, int32_t, int64_t, uint8_t).
template <typename T>
constexpr DType DTypeOf() {
  if constexpr (std::is_same_v<T, float>)
    return DType::kF32;
  else if constexpr (std::is_same_v<T, int32_t>)
    return DType::kI32;
  else if constexpr (std::is_same_v<T, int64_t>)
    return DType::kI64;
  else if constexpr (std::is_same_v<T, uint8_t>)
    return DType::kU8;
  else
    static_assert(sizeof(T) == 0, "use AllReduce with an explicit DType for halves");
}

/// Not thread-safe: use a group (and its sub-groups, which share its connections) from one
/// thread at a time.
class Group {
 public:
  virtual ~Group() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// "rank 2 (host-b)": how errors and logs name a member of this group.
  virtual std::string PeerName(int rank) const = 0;
  /// Seconds each later op of this group may take before it fails (default from
  /// GroupOptions::op_timeout_s). Zero or infinity: no deadline, for a worker that waits
  /// for the next request; a dead peer still fails the op at once.
  virtual void SetOpTimeout(double seconds) = 0;
  virtual double op_timeout() const = 0;

  /// Element-wise reduction of `count` elements of `dtype` at `data`, in place.
  /// Halves (f16, bf16) are reduced in f32 and rounded. Deterministic.
  virtual Status AllReduce(void* data, size_t count, DType dtype, ReduceOp op) = 0;
  /// out[r * bytes .. (r + 1) * bytes) receives rank r's `in`; out holds size() * bytes.
  virtual Status AllGather(const void* in, size_t bytes, void* out) = 0;
  /// Copies `bytes` at `data` on `root` into `data` on every member.
  virtual Status Broadcast(void* data, size_t bytes, int root) = 0;
  /// Point to point (not collective): `dst` must call Recv with the same byte count.
  virtual Status Send(const void* data, size_t bytes, int dst) = 0;
  virtual Status Recv(void* data, size_t bytes, int src) = 0;
  virtual Status Barrier() = 0;
  /// Members with the same `color` form a sub-group, ordered by (key, rank). A negative
  /// color returns a null group. The sub-group shares this group's connections and may
  /// not outlive it.
  virtual Result<std::unique_ptr<Group>> Split(int color, int key) = 0;
  /// Not collective, no deadline: blocks until member `src` has started sending this rank
  /// its next message, or returns at once when the link to `src` is closed or broken (the
  /// op that follows then fails naming it). For a rank idling until `src` has work.
  virtual Status WaitForMessage(int /*src*/) { return OkStatus(); }
  /// The ranks of this group the op in progress has long been waiting for (after the
  /// transport's notice delay; empty when none or unknown). Thread-safe.
  virtual std::vector<int> WaitingOn() const { return {}; }

  template <typename T>
  Status AllSum(std::span<T> data) {
    return AllReduce(data.data(), data.size(), DTypeOf<T>(), ReduceOp::kSum);
  }
  template <typename T>
  Status AllMax(std::span<T> data) {
    return AllReduce(data.data(), data.size(), DTypeOf<T>(), ReduceOp::kMax);
  }
  template <typename T>
  Status AllMin(std::span<T> data) {
    return AllReduce(data.data(), data.size(), DTypeOf<T>(), ReduceOp::kMin);
  }
};

/// Per-op deadlines and algorithm thresholds shared by all backends.
struct GroupOptions {
  /// Every op fails after this many seconds without completing.
  double op_timeout_s = 30.0;
  /// Connecting to the coordinator and forming the mesh fail after this long.
  double connect_timeout_s = 30.0;
  /// All-reduces up to this many bytes use a one-shot exchange; above, a ring.
  size_t small_bytes = 64 * 1024;
  /// Ring steps move at most this many bytes per message.
  size_t chunk_bytes = 1 << 20;
  /// Messages of at least this many bytes are striped over all rails of a link.
  size_t stripe_bytes = 256 * 1024;
  /// Microseconds an op polls its sockets without sleeping before it blocks in poll().
  double spin_us = 0;
};

/// A group of one: every op is a no-op (AllGather and Broadcast copy locally).
std::unique_ptr<Group> MakeSingletonGroup();

}  // namespace meshlm::comm
