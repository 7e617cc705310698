// TcpTransport: framed, deadline-bound transfers over an established mesh of sockets.
#pragma once

#include <poll.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "comm/socket.h"
#include "comm/transport.h"

namespace meshlm::comm {

/// One socket of the mesh: rail `rail` between this rank and `peer`.
struct TcpConn {
  Fd fd;
  int peer = -1;
  int rail = 0;
  /// Bytes read ahead from the socket (after the peer hung up), consumed before the socket.
  std::string pending;
  size_t pending_off = 0;
  /// The peer shut down its side; whatever it sent is in `pending`.
  bool eof = false;
};

class TcpTransport final : public Transport {
 public:
  /// conns[p]: the rails to rank p (empty for p == rank). hosts[p]: p's host name.
  TcpTransport(int rank, std::vector<std::string> hosts, std::vector<std::vector<TcpConn>> conns,
               GroupOptions options);
  /// Says goodbye to every peer and waits (briefly) for theirs, so no data is lost.
  ~TcpTransport() override;

  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(hosts_.size()); }
  std::string PeerName(int r) const override;
  const GroupOptions& options() const override { return options_; }
  Status Exchange(const FrameHeader& base, std::span<const OutMessage> sends,
                  std::span<const InMessage> recvs, double timeout_s) override;
  Status WaitReadable(int peer) override;
  std::vector<int> WaitingOn() const override;

 private:
  struct SendTask;
  struct RecvTask;
  Status ProgressSend(SendTask& t);
  Status ProgressRecv(RecvTask& t);
  Status BlockingRecv(RecvTask& t, bool* timed_out);
  Status ReadAbortMessage(RecvTask& t, const FrameHeader& h);
  Status OnHeader(RecvTask& t);
  Status OnWaiting(RecvTask& t, const FrameHeader& h);
  void SendWaitingNotices();
  Status PeerHungUp(TcpConn& c);
  Status Fail(Status st);

  int rank_;
  // Reused by every Exchange, so small ops allocate nothing.
  std::vector<SendTask> send_tasks_;
  std::vector<RecvTask> recv_tasks_;
  std::vector<pollfd> pfds_;
  std::vector<TcpConn*> pconns_;
  std::vector<std::string> hosts_;
  std::vector<std::vector<TcpConn>> conns_;
  GroupOptions options_;
  Status broken_;
  // The peers a long Exchange waits for, for WaitingOn from other threads.
  mutable std::mutex waiting_mu_;
  std::vector<int> waiting_;  // guarded by waiting_mu_
  std::atomic<bool> has_waiting_{false};
  /// sent_[peer][(group, point-to-point)]: one past the highest sequence number sent to
  /// peer, to tell a stale waiting notice from a real one.
  std::vector<std::map<std::pair<uint32_t, bool>, uint64_t>> sent_;
};

}  // namespace meshlm::comm
