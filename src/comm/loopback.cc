// In-process transport: one mailbox per (sender, receiver) pair under one mutex.
#include "comm/loopback.h"

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>

#include "comm/transport.h"

namespace meshlm::comm {

struct LoopbackMessage {
  FrameHeader header;
  std::vector<uint8_t> bytes;
};

class LoopbackHub {
 public:
  LoopbackHub(int n, GroupOptions options)
      : n_(n), options_(options), boxes_(static_cast<size_t>(n) * n), dead_(n, false) {}

  std::mutex mu;
  std::condition_variable cv;
  int n_;
  GroupOptions options_;
  std::vector<std::deque<LoopbackMessage>> boxes_;  // [src * n + dst]
  std::vector<bool> dead_;
  std::string abort_message;  // set by the first member that fails
  int abort_rank = -1;
};

namespace {

class LoopbackTransport final : public Transport {
 public:
  LoopbackTransport(std::shared_ptr<LoopbackHub> hub, int rank)
      : hub_(std::move(hub)), rank_(rank) {}

  int rank() const override { return rank_; }
  int size() const override { return hub_->n_; }
  std::string PeerName(int r) const override { return fmt::format("rank {} (loopback)", r); }
  const GroupOptions& options() const override { return hub_->options_; }

  Status Exchange(const FrameHeader& base, std::span<const OutMessage> sends,
                  std::span<const InMessage> recvs, double timeout_s) override {
    std::unique_lock lock(hub_->mu);
    if (hub_->dead_[rank_]) return Error("[loopback] rank {} is dead", rank_);
    if (!broken_.ok()) return broken_;
    for (const OutMessage& m : sends) {
      LoopbackMessage msg{base, {}};
      msg.header.msg_bytes = m.bytes;
      if (m.bytes > 0) {
        const uint8_t* p = static_cast<const uint8_t*>(m.data);
        msg.bytes.assign(p, p + m.bytes);
      }
      hub_->boxes_[m.peer * hub_->n_ + rank_].push_back(std::move(msg));
    }
    hub_->cv.notify_all();
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    for (const InMessage& m : recvs) {
      auto& box = hub_->boxes_[rank_ * hub_->n_ + m.peer];
      FrameHeader want = base;
      want.msg_bytes = m.bytes;
      for (;;) {
        if (!box.empty()) break;
        if (hub_->abort_rank >= 0 && hub_->abort_rank != rank_) {
          return Fail(
              Error("[loopback] {} failed: {}", PeerName(hub_->abort_rank), hub_->abort_message));
        }
        if (hub_->dead_[m.peer]) {
          return Fail(Error("[loopback] {} died while {} waited in {}", PeerName(m.peer),
                            PeerName(rank_), DescribeCall(want)));
        }
        if (hub_->cv.wait_until(lock, deadline) == std::cv_status::timeout && box.empty()) {
          return Fail(Error("[loopback] {}: {} timed out after {:.1f} s waiting for {}",
                            PeerName(rank_), DescribeCall(want), timeout_s, PeerName(m.peer)));
        }
      }
      LoopbackMessage msg = std::move(box.front());
      box.pop_front();
      Status st = CheckFrame(want, msg.header, PeerName(rank_), PeerName(m.peer), "loopback");
      if (!st.ok()) return Fail(st);
      if (m.bytes > 0) std::memcpy(m.data, msg.bytes.data(), m.bytes);
    }
    return OkStatus();
  }

 private:
  // Called with the hub's mutex held: records the failure so that peers stop too.
  Status Fail(Status st) {
    broken_ = st;
    if (hub_->abort_rank < 0) {
      hub_->abort_rank = rank_;
      hub_->abort_message = st.message();
    }
    hub_->cv.notify_all();
    return st;
  }

  std::shared_ptr<LoopbackHub> hub_;
  int rank_;
  Status broken_;
};

}  // namespace

void LoopbackWorld::Kill(int rank) {
  std::lock_guard lock(hub->mu);
  hub->dead_[rank] = true;
  hub->cv.notify_all();
}

LoopbackWorld MakeLoopbackWorld(int n, GroupOptions options) {
  LoopbackWorld world;
  world.hub = std::make_shared<LoopbackHub>(n, options);
  if (n == 1) {
    world.groups.push_back(MakeSingletonGroup());
    return world;
  }
  for (int r = 0; r < n; ++r) {
    auto t = std::make_shared<LoopbackTransport>(world.hub, r);
    std::vector<int> members(n);
    for (int i = 0; i < n; ++i) members[i] = i;
    world.groups.push_back(MakeCollectiveGroup(std::move(t), std::move(members), 0));
  }
  return world;
}

}  // namespace meshlm::comm
