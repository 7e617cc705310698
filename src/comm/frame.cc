// Encoding, decoding and comparison of data-path frame headers.
#include "comm/frame.h"

#include <cstring>

namespace meshlm::comm {
namespace {

template <typename T>
void Put(uint8_t*& p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i)
    *p++ = static_cast<uint8_t>(static_cast<uint64_t>(v) >> (8 * i));
}

template <typename T>
T Get(const uint8_t*& p) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<uint64_t>(*p++) << (8 * i);
  return static_cast<T>(v);
}

const char* ReduceName(uint8_t reduce) {
  switch (reduce) {
    case 0:
      return "all_sum";
    case 1:
      return "all_max";
    case 2:
      return "all_min";
  }
  return "all_reduce?";
}

}  // namespace

FrameBytes EncodeFrame(const FrameHeader& h) {
  FrameBytes out{};
  uint8_t* p = out.data();
  Put<uint32_t>(p, kFrameMagic);
  Put<uint8_t>(p, kFrameVersion);
  Put<uint8_t>(p, static_cast<uint8_t>(h.kind));
  Put<uint8_t>(p, h.dtype);
  Put<uint8_t>(p, h.reduce);
  Put<uint32_t>(p, h.group);
  Put<uint32_t>(p, static_cast<uint32_t>(h.root));
  Put<uint64_t>(p, h.seq);
  Put<uint64_t>(p, h.op_bytes);
  Put<uint64_t>(p, h.msg_bytes);
  return out;
}

Result<FrameHeader> DecodeFrame(const uint8_t* bytes, const std::string& from) {
  const uint8_t* p = bytes;
  const uint32_t magic = Get<uint32_t>(p);
  if (magic != kFrameMagic) {
    return Error(
        "[comm] {} sent a frame with magic 0x{:08x}, expected 0x{:08x} (not a meshlm "
        "peer, or the stream is out of step)",
        from, magic, kFrameMagic);
  }
  const uint8_t version = Get<uint8_t>(p);
  if (version != kFrameVersion) {
    return Error("[comm] {} speaks frame version {}, this rank speaks {}", from, version,
                 kFrameVersion);
  }
  FrameHeader h;
  const uint8_t kind = Get<uint8_t>(p);
  if (kind < 1 || kind > 8) return Error("[comm] {} sent unknown op kind {}", from, kind);
  h.kind = static_cast<OpKind>(kind);
  h.dtype = Get<uint8_t>(p);
  h.reduce = Get<uint8_t>(p);
  if (h.dtype > static_cast<uint8_t>(DType::kU32) || h.reduce > 2) {
    return Error("[comm] {} sent dtype {} / reduce op {}, both out of range", from, h.dtype,
                 h.reduce);
  }
  h.group = Get<uint32_t>(p);
  h.root = static_cast<int32_t>(Get<uint32_t>(p));
  h.seq = Get<uint64_t>(p);
  h.op_bytes = Get<uint64_t>(p);
  h.msg_bytes = Get<uint64_t>(p);
  return h;
}

std::string DescribeCall(const FrameHeader& h) {
  const std::string dt(DTypeName(static_cast<DType>(h.dtype)));
  switch (h.kind) {
    case OpKind::kAllReduce:
      return fmt::format("{}({}, {} B) #{}", ReduceName(h.reduce), dt, h.op_bytes, h.seq);
    case OpKind::kAllGather:
      return fmt::format("all_gather({} B) #{}", h.op_bytes, h.seq);
    case OpKind::kBroadcast:
      return fmt::format("broadcast(root {}, {} B) #{}", h.root, h.op_bytes, h.seq);
    case OpKind::kSend:
      return fmt::format("send/recv({} B) #{}", h.op_bytes, h.seq);
    case OpKind::kBarrier:
      return fmt::format("barrier() #{}", h.seq);
    case OpKind::kAbort:
      return "abort";
    case OpKind::kWaiting:
      return "waiting";
    case OpKind::kClose:
      return "close";
  }
  return "?";
}

Status CheckFrame(const FrameHeader& want, const FrameHeader& got, const std::string& me,
                  const std::string& peer, const char* component) {
  const bool same =
      want.kind == got.kind && want.group == got.group && want.seq == got.seq &&
      want.op_bytes == got.op_bytes && want.msg_bytes == got.msg_bytes &&
      (want.kind != OpKind::kAllReduce || (want.dtype == got.dtype && want.reduce == got.reduce)) &&
      (want.kind != OpKind::kBroadcast || want.root == got.root);
  if (same) return OkStatus();
  std::string group_note;
  if (want.group != got.group) {
    group_note =
        fmt::format(" (in group {:08x}, this rank expected group {:08x})", got.group, want.group);
  }
  return Error(
      "[{}] ranks called different collectives: {} called {} but {} called {}{}; "
      "every rank must call the same ops in the same order with the same sizes",
      component, me, DescribeCall(want), peer, DescribeCall(got), group_note);
}

}  // namespace meshlm::comm
