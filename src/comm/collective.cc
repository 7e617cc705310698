// Collective algorithms on a Transport: one-shot exchanges for small messages, chunked
// rings (reduce-scatter + all-gather) for large ones.
#include <algorithm>
#include <cstring>
#include <tuple>

#include "base/check.h"
#include "comm/reduce.h"
#include "comm/transport.h"

namespace meshlm::comm {
namespace {

// Longer than any job runs; keeps deadline arithmetic finite.
double ClampTimeout(double s) { return s > 0 && s < 1e9 ? s : 1e9; }

// [begin, end) in elements of segment `i` when `count` elements are cut into `n` parts
// whose sizes differ by at most one element.
std::pair<size_t, size_t> Segment(size_t count, int n, int i) {
  return {count * i / n, count * (i + 1) / n};
}

class CollectiveGroup final : public Group {
 public:
  CollectiveGroup(std::shared_ptr<Transport> t, std::vector<int> members, uint32_t id)
      : t_(std::move(t)), members_(std::move(members)), id_(id) {
    auto it = std::find(members_.begin(), members_.end(), t_->rank());
    MESHLM_CHECK(it != members_.end(), "this rank is not a member");
    me_ = static_cast<int>(it - members_.begin());
    timeout_s_ = t_->options().op_timeout_s;
    send_seq_.assign(members_.size(), 0);
    recv_seq_.assign(members_.size(), 0);
  }

  int rank() const override { return me_; }
  int size() const override { return static_cast<int>(members_.size()); }
  void SetOpTimeout(double seconds) override { timeout_s_ = ClampTimeout(seconds); }
  double op_timeout() const override { return timeout_s_; }
  std::string PeerName(int r) const override {
    if (r < 0 || r >= size()) return fmt::format("rank {} (out of range)", r);
    if (id_ == 0) return t_->PeerName(members_[r]);
    return fmt::format("sub-group rank {} = {}", r, t_->PeerName(members_[r]));
  }

  Status AllReduce(void* data, size_t count, DType dtype, ReduceOp op) override {
    const size_t esize = DTypeSize(dtype);
    FrameHeader h = Header(OpKind::kAllReduce, count * esize);
    h.dtype = static_cast<uint8_t>(dtype);
    h.reduce = static_cast<uint8_t>(op);
    const int n = size();
    if (n == 1 || count == 0) return OkStatus();
    if (count * esize <= t_->options().small_bytes || count < static_cast<size_t>(n)) {
      return OneShotReduce(h, data, count, dtype, op);
    }
    return RingReduce(h, static_cast<uint8_t*>(data), count, dtype, op);
  }

  Status AllGather(const void* in, size_t bytes, void* out) override {
    FrameHeader h = Header(OpKind::kAllGather, bytes);
    uint8_t* o = static_cast<uint8_t*>(out);
    if (bytes > 0) std::memmove(o + me_ * bytes, in, bytes);
    const int n = size();
    if (n == 1 || bytes == 0) return OkStatus();
    if (bytes * n <= t_->options().small_bytes) {
      std::vector<OutMessage>& sends = Cleared(sends_);
      std::vector<InMessage>& recvs = Cleared(recvs_);
      for (int r = 0; r < n; ++r) {
        if (r == me_) continue;
        sends.push_back({members_[r], o + me_ * bytes, bytes});
        recvs.push_back({members_[r], o + r * bytes, bytes});
      }
      return t_->Exchange(h, sends, recvs, timeout_s_);
    }
    // Ring: at step s, pass block (me - s) to the right and take block (me - s - 1) from
    // the left, in chunks.
    for (int s = 0; s < n - 1; ++s) {
      const int send_block = (me_ - s + n) % n;
      const int recv_block = (me_ - s - 1 + 2 * n) % n;
      MESHLM_RETURN_IF_ERROR(
          RingStep(h, o + send_block * bytes, o + recv_block * bytes, bytes, bytes, nullptr));
    }
    return OkStatus();
  }

  Status Broadcast(void* data, size_t bytes, int root) override {
    if (root < 0 || root >= size()) {
      return Error("[comm] {}: broadcast root {} is outside the group of {}", PeerName(me_), root,
                   size());
    }
    FrameHeader h = Header(OpKind::kBroadcast, bytes);
    h.root = root;
    if (size() == 1) return OkStatus();
    std::vector<OutMessage>& sends = Cleared(sends_);
    std::vector<InMessage>& recvs = Cleared(recvs_);
    if (me_ == root) {
      for (int r = 0; r < size(); ++r) {
        if (r != me_) sends.push_back({members_[r], data, bytes});
      }
    } else {
      recvs.push_back({members_[root], data, bytes});
    }
    return t_->Exchange(h, sends, recvs, timeout_s_);
  }

  Status Send(const void* data, size_t bytes, int dst) override {
    if (dst < 0 || dst >= size() || dst == me_) {
      return Error("[comm] {}: send to rank {} is invalid in a group of {}", PeerName(me_), dst,
                   size());
    }
    FrameHeader h{.kind = OpKind::kSend, .group = id_, .seq = send_seq_[dst]++, .op_bytes = bytes};
    OutMessage m{members_[dst], data, bytes};
    return t_->Exchange(h, {&m, 1}, {}, timeout_s_);
  }

  Status Recv(void* data, size_t bytes, int src) override {
    if (src < 0 || src >= size() || src == me_) {
      return Error("[comm] {}: recv from rank {} is invalid in a group of {}", PeerName(me_), src,
                   size());
    }
    FrameHeader h{.kind = OpKind::kSend, .group = id_, .seq = recv_seq_[src]++, .op_bytes = bytes};
    InMessage m{members_[src], data, bytes};
    return t_->Exchange(h, {}, {&m, 1}, timeout_s_);
  }

  Status Barrier() override {
    FrameHeader h = Header(OpKind::kBarrier, 0);
    if (size() == 1) return OkStatus();
    std::vector<OutMessage>& sends = Cleared(sends_);
    std::vector<InMessage>& recvs = Cleared(recvs_);
    for (int r = 0; r < size(); ++r) {
      if (r == me_) continue;
      sends.push_back({members_[r], nullptr, 0});
      recvs.push_back({members_[r], nullptr, 0});
    }
    return t_->Exchange(h, sends, recvs, timeout_s_);
  }

  std::vector<int> WaitingOn() const override {
    std::vector<int> out;
    for (int global : t_->WaitingOn()) {
      for (int r = 0; r < size(); ++r) {
        if (members_[r] == global) out.push_back(r);
      }
    }
    return out;
  }

  Status WaitForMessage(int src) override {
    if (src < 0 || src >= size() || src == me_) {
      return Error("[comm] {}: wait for rank {} is invalid in a group of {}", PeerName(me_), src,
                   size());
    }
    return t_->WaitReadable(members_[src]);
  }

  Result<std::unique_ptr<Group>> Split(int color, int key) override {
    const int32_t mine[2] = {color, key};
    std::vector<int32_t> all(2 * size());
    MESHLM_RETURN_IF_ERROR(AllGather(mine, sizeof(mine), all.data()));
    ++splits_;
    if (color < 0) return std::unique_ptr<Group>();
    std::vector<std::tuple<int, int, int>> picked;  // (key, rank in this group, global rank)
    for (int r = 0; r < size(); ++r) {
      if (all[2 * r] == color) picked.emplace_back(all[2 * r + 1], r, members_[r]);
    }
    std::sort(picked.begin(), picked.end());
    std::vector<int> members;
    for (const auto& p : picked) members.push_back(std::get<2>(p));
    // Same id on every member: derived from the parent id, the split count and the color.
    uint64_t x = (static_cast<uint64_t>(id_) << 32) ^ (splits_ * 0x9e3779b97f4a7c15ull) ^
                 (static_cast<uint64_t>(static_cast<uint32_t>(color)) * 0xbf58476d1ce4e5b9ull);
    x ^= x >> 31;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 29;
    const uint32_t id = static_cast<uint32_t>(x) | 1u;  // never 0, the world's id
    return MakeCollectiveGroup(t_, std::move(members), id);
  }

 private:
  FrameHeader Header(OpKind kind, size_t bytes) {
    return FrameHeader{.kind = kind, .group = id_, .seq = seq_++, .op_bytes = bytes};
  }

  // Every rank receives every contribution and reduces them in rank order 0..n-1, so all
  // ranks compute identical bytes.
  Status OneShotReduce(const FrameHeader& h, void* data, size_t count, DType dtype, ReduceOp op) {
    const int n = size();
    const size_t bytes = count * DTypeSize(dtype);
    if (scratch_.size() < bytes * n) scratch_.resize(bytes * n);
    uint8_t* all = scratch_.data();
    std::memcpy(all + me_ * bytes, data, bytes);
    std::vector<OutMessage>& sends = Cleared(sends_);
    std::vector<InMessage>& recvs = Cleared(recvs_);
    for (int r = 0; r < n; ++r) {
      if (r == me_) continue;
      sends.push_back({members_[r], data, bytes});
      recvs.push_back({members_[r], all + r * bytes, bytes});
    }
    MESHLM_RETURN_IF_ERROR(t_->Exchange(h, sends, recvs, timeout_s_));
    std::memcpy(data, all, bytes);
    for (int r = 1; r < n; ++r) ReduceInto(data, all + r * bytes, count, dtype, op);
    return OkStatus();
  }

  // Ring reduce-scatter then ring all-gather over n segments. Each segment is reduced
  // along the ring in one fixed order and then copied, so all ranks hold the same bytes.
  Status RingReduce(const FrameHeader& h, uint8_t* data, size_t count, DType dtype, ReduceOp op) {
    const int n = size();
    const size_t es = DTypeSize(dtype);
    auto seg = [&](int i) { return Segment(count, n, (i % n + n) % n); };
    for (int s = 0; s < n - 1; ++s) {
      auto [sb, se] = seg(me_ - s);
      auto [rb, re] = seg(me_ - s - 1);
      ReduceSpec spec{dtype, op, data + rb * es};
      MESHLM_RETURN_IF_ERROR(
          RingStep(h, data + sb * es, nullptr, (se - sb) * es, (re - rb) * es, &spec));
    }
    for (int s = 0; s < n - 1; ++s) {
      auto [sb, se] = seg(me_ + 1 - s);
      auto [rb, re] = seg(me_ - s);
      MESHLM_RETURN_IF_ERROR(
          RingStep(h, data + sb * es, data + rb * es, (se - sb) * es, (re - rb) * es, nullptr));
    }
    return OkStatus();
  }

  struct ReduceSpec {
    DType dtype;
    ReduceOp op;
    uint8_t* into;  // received chunks are reduced into this segment
  };

  // Sends `send_bytes` to the right neighbour while receiving `recv_bytes` from the left,
  // in chunks. Without `reduce`, received bytes land in `recv`; with it, each chunk is
  // received into scratch and reduced into reduce->into.
  Status RingStep(const FrameHeader& h, const uint8_t* send, uint8_t* recv, size_t send_bytes,
                  size_t recv_bytes, const ReduceSpec* reduce) {
    const int n = size();
    const int right = members_[(me_ + 1) % n];
    const int left = members_[(me_ - 1 + n) % n];
    size_t chunk = t_->options().chunk_bytes;
    if (reduce != nullptr) chunk -= chunk % DTypeSize(reduce->dtype);
    if (reduce != nullptr && scratch_.size() < chunk) scratch_.resize(chunk);
    const size_t most = std::max(send_bytes, recv_bytes);
    for (size_t off = 0; off < most || off == 0; off += chunk) {
      std::vector<OutMessage>& sends = Cleared(sends_);
      std::vector<InMessage>& recvs = Cleared(recvs_);
      if (off < send_bytes) sends.push_back({right, send + off, std::min(chunk, send_bytes - off)});
      size_t got = 0;
      if (off < recv_bytes) {
        got = std::min(chunk, recv_bytes - off);
        recvs.push_back({left, reduce ? scratch_.data() : recv + off, got});
      }
      if (sends.empty() && recvs.empty()) break;
      MESHLM_RETURN_IF_ERROR(t_->Exchange(h, sends, recvs, timeout_s_));
      if (reduce != nullptr && got > 0) {
        ReduceInto(reduce->into + off, scratch_.data(), got / DTypeSize(reduce->dtype),
                   reduce->dtype, reduce->op);
      }
    }
    return OkStatus();
  }

  template <typename T>
  static std::vector<T>& Cleared(std::vector<T>& v) {
    v.clear();
    return v;
  }

  std::shared_ptr<Transport> t_;
  // Message lists reused by every op, so small ops do not allocate.
  std::vector<OutMessage> sends_;
  std::vector<InMessage> recvs_;
  std::vector<int> members_;
  uint32_t id_;
  int me_ = 0;
  uint64_t seq_ = 0;
  double timeout_s_ = 30;
  uint64_t splits_ = 0;
  std::vector<uint64_t> send_seq_, recv_seq_;
  std::vector<uint8_t> scratch_;
};

// Size 1: nothing to exchange.
class SingletonGroup final : public Group {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string PeerName(int r) const override { return fmt::format("rank {} (local)", r); }
  void SetOpTimeout(double seconds) override { timeout_s_ = ClampTimeout(seconds); }
  double op_timeout() const override { return timeout_s_; }
  Status AllReduce(void*, size_t, DType, ReduceOp) override { return OkStatus(); }
  Status AllGather(const void* in, size_t bytes, void* out) override {
    if (bytes > 0) std::memmove(out, in, bytes);
    return OkStatus();
  }
  Status Broadcast(void*, size_t, int root) override {
    if (root != 0) return Error("[comm] broadcast root {} is outside the group of 1", root);
    return OkStatus();
  }
  Status Send(const void*, size_t, int dst) override {
    return Error("[comm] send to rank {} in a group of 1", dst);
  }
  Status Recv(void*, size_t, int src) override {
    return Error("[comm] recv from rank {} in a group of 1", src);
  }
  Status Barrier() override { return OkStatus(); }
  Result<std::unique_ptr<Group>> Split(int color, int) override {
    if (color < 0) return std::unique_ptr<Group>();
    return MakeSingletonGroup();
  }

 private:
  double timeout_s_ = 30;
};

}  // namespace

std::unique_ptr<Group> MakeCollectiveGroup(std::shared_ptr<Transport> transport,
                                           std::vector<int> members, uint32_t group_id) {
  return std::make_unique<CollectiveGroup>(std::move(transport), std::move(members), group_id);
}

std::unique_ptr<Group> MakeSingletonGroup() { return std::make_unique<SingletonGroup>(); }

}  // namespace meshlm::comm
