// Wire frames of the collective data path and the checks that catch desynchronized ranks.
//
// Every message between two ranks starts with a fixed 40-byte little-endian header:
//   magic u32 | version u8 | kind u8 | dtype u8 | reduce u8 | group u32 | root i32 |
//   seq u64 | op_bytes u64 | msg_bytes u64
// op_bytes is the size the caller passed to the op; msg_bytes is this frame's payload.
// The receiver always knows what it expects, so a payload length from a peer is never
// used to size an allocation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/status.h"
#include "comm/group.h"

namespace meshlm::comm {

enum class OpKind : uint8_t {
  kAllReduce = 1,
  kAllGather = 2,
  kBroadcast = 3,
  kSend = 4,
  kBarrier = 5,
  kAbort = 6,    // payload: the failing rank's error message
  kClose = 7,    // orderly goodbye; no payload
  kWaiting = 8,  // payload: the 40-byte header the sender has long been waiting for
};

inline constexpr uint32_t kFrameMagic = 0x4c48534d;  // "MSHL"
inline constexpr uint8_t kFrameVersion = 1;
inline constexpr size_t kFrameHeaderBytes = 40;
/// Abort messages longer than this are refused.
inline constexpr size_t kMaxAbortBytes = 4096;

struct FrameHeader {
  OpKind kind = OpKind::kBarrier;
  uint8_t dtype = 0;
  uint8_t reduce = 0;
  uint32_t group = 0;
  int32_t root = 0;
  uint64_t seq = 0;
  uint64_t op_bytes = 0;
  uint64_t msg_bytes = 0;
};

using FrameBytes = std::array<uint8_t, kFrameHeaderBytes>;

FrameBytes EncodeFrame(const FrameHeader& h);
/// Fails on a wrong magic, version, or unknown kind or dtype; `from` names the sender.
Result<FrameHeader> DecodeFrame(const uint8_t* bytes, const std::string& from);

/// "all_sum(F32, 4096 B) #12", "broadcast(root 1, 100 B) #3", "send(64 B) #0".
std::string DescribeCall(const FrameHeader& h);

/// Compares the frame a peer sent with the one this rank expects. The error names both
/// ranks and both calls, e.g. "[tcp] rank 0 (a) called all_sum(F32, 16 B) #4 but rank 1
/// (b) called all_gather(8 B) #4".
Status CheckFrame(const FrameHeader& want, const FrameHeader& got, const std::string& me,
                  const std::string& peer, const char* component);

}  // namespace meshlm::comm
