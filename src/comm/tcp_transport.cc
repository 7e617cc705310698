// TcpTransport: concurrent non-blocking sends and receives on the mesh under one poll()
// loop with a deadline; peers that hang up, abort or desynchronize fail the op at once.
#include "comm/tcp_transport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/check.h"
#include "base/clock.h"
#include "base/log.h"

namespace meshlm::comm {
namespace {

// The fast path blocks in recvmsg at most this long before checking deadlines and the
// other peers again; it bounds how late a dead bystander is noticed.
constexpr double kBlockingSlice = 0.1;

// An op still waiting after this long tells the peers it waits for what it expects, so
// that two ranks waiting for each other (a desync) fail well within a second.
constexpr double kNoticeAfter = 0.4;

// A peer that hung up may have left at most this much unread data behind.
constexpr size_t kMaxPendingBytes = 64 << 20;

int PollMs(double deadline) {
  const double left = deadline - NowSeconds();
  if (left <= 0) return 0;
  return static_cast<int>(std::min(std::ceil(left * 1000.0), 3600.0 * 1000));
}

}  // namespace

struct TcpTransport::SendTask {
  TcpConn* c;
  FrameBytes header;
  const uint8_t* data;
  size_t len;
  size_t done = 0;  // over header + data
  FrameHeader info;
  bool finished() const { return done == kFrameHeaderBytes + len; }
};

struct TcpTransport::RecvTask {
  TcpConn* c;
  FrameHeader want;
  FrameBytes header{};
  uint8_t* data;
  size_t len;
  size_t done = 0;  // over header + data
  bool checked = false;
  bool finished() const { return checked && done == kFrameHeaderBytes + len; }
};

TcpTransport::TcpTransport(int rank, std::vector<std::string> hosts,
                           std::vector<std::vector<TcpConn>> conns, GroupOptions options)
    : rank_(rank), hosts_(std::move(hosts)), conns_(std::move(conns)), options_(options) {
  sent_.resize(hosts_.size());
  // Every call passes MSG_DONTWAIT except the single-receive fast path, which blocks in
  // recvmsg for at most kBlockingSlice and then falls back to the poll loop.
  const timeval slice{0, static_cast<suseconds_t>(kBlockingSlice * 1e6)};
  for (auto& rails : conns_) {
    for (TcpConn& c : rails) {
      fcntl(c.fd.get(), F_SETFL, fcntl(c.fd.get(), F_GETFL) & ~O_NONBLOCK);
      setsockopt(c.fd.get(), SOL_SOCKET, SO_RCVTIMEO, &slice, sizeof(slice));
      // Buffers that hold a whole chunk let one sendmsg hand it to the kernel, so the
      // two directions of a ring step overlap instead of taking turns.
      const int buf = 4 << 20;
      setsockopt(c.fd.get(), SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
      setsockopt(c.fd.get(), SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    }
  }
}

TcpTransport::~TcpTransport() {
  if (!broken_.ok()) return;
  // Goodbye frame, then half-close, then read until every peer has half-closed too:
  // closing with unread data would reset the connection and could drop a peer's last
  // frames before it read them.
  const FrameBytes bye = EncodeFrame(FrameHeader{.kind = OpKind::kClose});
  const double deadline = NowSeconds() + 2.0;
  for (auto& rails : conns_) {
    for (TcpConn& c : rails) {
      if (c.eof) continue;
      (void)WriteAll(c.fd.get(), bye.data(), bye.size(), deadline, PeerName(c.peer));
      shutdown(c.fd.get(), SHUT_WR);
    }
  }
  char sink[4096];
  for (auto& rails : conns_) {
    for (TcpConn& c : rails) {
      while (!c.eof) {
        pollfd p{c.fd.get(), POLLIN, 0};
        if (poll(&p, 1, PollMs(deadline)) <= 0) break;
        const ssize_t k = recv(c.fd.get(), sink, sizeof(sink), MSG_DONTWAIT);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) c.eof = true;
      }
    }
  }
}

std::string TcpTransport::PeerName(int r) const {
  if (r < 0 || r >= size()) return fmt::format("rank {} (out of range)", r);
  return fmt::format("rank {} ({})", r, hosts_[r]);
}

Status TcpTransport::Fail(Status st) {
  if (!broken_.ok()) return st;
  broken_ = st;
  // Tell every peer why, so that ranks not waiting on the culprit stop too.
  std::string msg = st.message().substr(0, kMaxAbortBytes);
  const FrameBytes h = EncodeFrame(FrameHeader{.kind = OpKind::kAbort, .msg_bytes = msg.size()});
  for (auto& rails : conns_) {
    for (TcpConn& c : rails) {
      if (c.eof) continue;
      // An abort frame behind a half-sent frame would arrive as garbage: just hang up.
      const bool mid_frame =
          std::any_of(send_tasks_.begin(), send_tasks_.end(),
                      [&](const SendTask& t) { return t.c == &c && t.done > 0 && !t.finished(); });
      if (mid_frame) {
        shutdown(c.fd.get(), SHUT_WR);
        continue;
      }
      iovec iov[2] = {{const_cast<uint8_t*>(h.data()), h.size()}, {msg.data(), msg.size()}};
      msghdr m{};
      m.msg_iov = iov;
      m.msg_iovlen = 2;
      (void)sendmsg(c.fd.get(), &m, MSG_NOSIGNAL | MSG_DONTWAIT);
      shutdown(c.fd.get(), SHUT_WR);
    }
  }
  return st;
}

Status TcpTransport::ProgressSend(SendTask& t) {
  while (!t.finished()) {
    iovec iov[2];
    int n = 0;
    if (t.done < kFrameHeaderBytes) {
      iov[n++] = {t.header.data() + t.done, kFrameHeaderBytes - t.done};
      if (t.len > 0) iov[n++] = {const_cast<uint8_t*>(t.data), t.len};
    } else {
      const size_t off = t.done - kFrameHeaderBytes;
      iov[n++] = {const_cast<uint8_t*>(t.data) + off, t.len - off};
    }
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = n;
    const ssize_t k = sendmsg(t.c->fd.get(), &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k > 0) {
      t.done += static_cast<size_t>(k);
    } else if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
      return OkStatus();
    } else {
      return Error(
          "[tcp] {}: lost {} while sending {} ({}); that process died or its host is "
          "unreachable",
          PeerName(rank_), PeerName(t.c->peer), DescribeCall(t.info), std::strerror(errno));
    }
  }
  return OkStatus();
}

Status TcpTransport::ProgressRecv(RecvTask& t) {
  TcpConn& c = *t.c;
  while (!t.finished()) {
    // Target of the next bytes: the rest of the header, then the payload.
    iovec iov[2];
    int n = 0;
    if (t.done < kFrameHeaderBytes) {
      iov[n++] = {t.header.data() + t.done, kFrameHeaderBytes - t.done};
      if (t.len > 0) iov[n++] = {t.data, t.len};
    } else {
      const size_t off = t.done - kFrameHeaderBytes;
      iov[n++] = {t.data + off, t.len - off};
    }
    // Header and payload arrive in one read; if the header then fails its check, the op
    // fails and the destination's contents do not matter.
    ssize_t k;
    if (c.pending_off < c.pending.size()) {
      k = 0;
      for (int i = 0; i < n && c.pending_off < c.pending.size(); ++i) {
        const size_t m = std::min(iov[i].iov_len, c.pending.size() - c.pending_off);
        std::memcpy(iov[i].iov_base, c.pending.data() + c.pending_off, m);
        c.pending_off += m;
        k += static_cast<ssize_t>(m);
      }
    } else if (c.eof) {
      k = 0;
    } else {
      msghdr m{};
      m.msg_iov = iov;
      m.msg_iovlen = n;
      k = recvmsg(c.fd.get(), &m, MSG_DONTWAIT);
      if (k < 0 && (errno == EAGAIN || errno == EINTR)) return OkStatus();
      if (k < 0) {
        return Error(
            "[tcp] {}: lost {} while waiting in {} ({}); that process died or its host "
            "is unreachable",
            PeerName(rank_), PeerName(c.peer), DescribeCall(t.want), std::strerror(errno));
      }
    }
    if (k == 0) {
      c.eof = true;
      return Error(
          "[tcp] {}: {} closed its connection while this rank waited in {} ({} of {} B "
          "received); that process exited or died",
          PeerName(rank_), PeerName(c.peer), DescribeCall(t.want), t.done,
          kFrameHeaderBytes + t.len);
    }
    t.done += static_cast<size_t>(k);
    if (!t.checked && t.done >= kFrameHeaderBytes) MESHLM_RETURN_IF_ERROR(OnHeader(t));
  }
  return OkStatus();
}

Status TcpTransport::BlockingRecv(RecvTask& t, bool* timed_out) {
  iovec iov[2];
  int n = 0;
  if (t.done < kFrameHeaderBytes) {
    iov[n++] = {t.header.data() + t.done, kFrameHeaderBytes - t.done};
    if (t.len > 0) iov[n++] = {t.data, t.len};
  } else {
    iov[n++] = {t.data + (t.done - kFrameHeaderBytes), t.len - (t.done - kFrameHeaderBytes)};
  }
  msghdr m{};
  m.msg_iov = iov;
  m.msg_iovlen = n;
  const ssize_t k = recvmsg(t.c->fd.get(), &m, MSG_WAITALL);
  if (k > 0) {
    t.done += static_cast<size_t>(k);
    if (!t.checked && t.done >= kFrameHeaderBytes) return OnHeader(t);
    return OkStatus();
  }
  if (k == 0) {
    t.c->eof = true;
    return Error(
        "[tcp] {}: {} closed its connection while this rank waited in {} ({} of {} B "
        "received); that process exited or died",
        PeerName(rank_), PeerName(t.c->peer), DescribeCall(t.want), t.done,
        kFrameHeaderBytes + t.len);
  }
  if (errno == EAGAIN || errno == EINTR) {
    *timed_out = true;  // slice over: the poll loop takes it from here
    return OkStatus();
  }
  return Error(
      "[tcp] {}: lost {} while waiting in {} ({}); that process died or its host is "
      "unreachable",
      PeerName(rank_), PeerName(t.c->peer), DescribeCall(t.want), std::strerror(errno));
}

// A complete header arrived for task t: abort, goodbye, a waiting notice, or the frame.
Status TcpTransport::OnHeader(RecvTask& t) {
  TcpConn& c = *t.c;
  MESHLM_ASSIGN_OR_RETURN(FrameHeader got, DecodeFrame(t.header.data(), PeerName(c.peer)));
  if (got.kind == OpKind::kAbort) return ReadAbortMessage(t, got);
  if (got.kind == OpKind::kClose) {
    return Error("[tcp] {}: {} left the group while this rank waited in {}", PeerName(rank_),
                 PeerName(c.peer), DescribeCall(t.want));
  }
  if (got.kind == OpKind::kWaiting) return OnWaiting(t, got);
  MESHLM_RETURN_IF_ERROR(CheckFrame(t.want, got, PeerName(rank_), PeerName(c.peer), "tcp"));
  t.checked = true;
  return OkStatus();
}

// The peer says it has waited a while for a frame from this rank. This rank is itself
// waiting for the peer (it is reading this socket for task t), so unless it already sent
// that frame, or is sending it now, the two ranks wait for each other: a desync.
Status TcpTransport::OnWaiting(RecvTask& t, const FrameHeader& h) {
  TcpConn& c = *t.c;
  if (h.msg_bytes != kFrameHeaderBytes) {
    return Error("[tcp] {} sent a waiting notice of {} B, expected {}", PeerName(c.peer),
                 h.msg_bytes, kFrameHeaderBytes);
  }
  // The notice's payload, then whatever the same read brought of the next frame.
  std::string after(reinterpret_cast<const char*>(t.data), t.done - kFrameHeaderBytes);
  while (after.size() < kFrameHeaderBytes) {
    char b[kFrameHeaderBytes];
    const size_t need = kFrameHeaderBytes - after.size();
    if (c.pending_off < c.pending.size()) {
      const size_t m = std::min(need, c.pending.size() - c.pending_off);
      after.append(c.pending, c.pending_off, m);
      c.pending_off += m;
      continue;
    }
    MESHLM_RETURN_IF_ERROR(ReadAll(c.fd.get(), b, need, NowSeconds() + 1.0, PeerName(c.peer)));
    after.append(b, need);
  }
  MESHLM_ASSIGN_OR_RETURN(
      FrameHeader want,
      DecodeFrame(reinterpret_cast<const uint8_t*>(after.data()), PeerName(c.peer)));
  // Bytes of the next frame go back in front of the pending input.
  c.pending = after.substr(kFrameHeaderBytes) + c.pending.substr(c.pending_off);
  c.pending_off = 0;
  t.done = 0;
  const bool p2p = want.kind == OpKind::kSend;
  auto it = sent_[c.peer].find({want.group, p2p});
  if (it != sent_[c.peer].end() && it->second > want.seq) return OkStatus();  // sent already
  return Error(
      "[tcp] ranks wait for each other: {} waits in {} for {}, which waits in {} for a "
      "frame from {} that it never sent; every rank must call the same ops in the same "
      "order with the same sizes and roots",
      PeerName(rank_), DescribeCall(t.want), PeerName(c.peer), DescribeCall(want), PeerName(rank_));
}

Status TcpTransport::ReadAbortMessage(RecvTask& t, const FrameHeader& h) {
  if (h.msg_bytes > kMaxAbortBytes) {
    return Error("[tcp] {} aborted with a {} B message (limit {})", PeerName(t.c->peer),
                 h.msg_bytes, kMaxAbortBytes);
  }
  std::string msg(h.msg_bytes, '\0');
  // The read that brought the header may have brought part of the message into t.data.
  size_t have = std::min(msg.size(), t.done - kFrameHeaderBytes);
  if (have > 0) std::memcpy(msg.data(), t.data, have);
  const double deadline = NowSeconds() + 1.0;
  while (have < msg.size()) {
    TcpConn& c = *t.c;
    if (c.pending_off < c.pending.size()) {
      const size_t m = std::min(msg.size() - have, c.pending.size() - c.pending_off);
      std::memcpy(msg.data() + have, c.pending.data() + c.pending_off, m);
      c.pending_off += m;
      have += m;
      continue;
    }
    if (c.eof || !ReadAll(c.fd.get(), msg.data() + have, msg.size() - have, deadline, "").ok()) {
      msg.resize(have);
      break;
    }
    have = msg.size();
  }
  return Error("[tcp] {} failed, so {} stops in {}: {}", PeerName(t.c->peer), PeerName(rank_),
               DescribeCall(t.want), msg);
}

// The peer half-closed a socket this op does not read: drain what it left and decide
// whether it said goodbye (fine until someone needs it), aborted, or died.
Status TcpTransport::PeerHungUp(TcpConn& c) {
  char buf[65536];
  for (;;) {
    const ssize_t k = recv(c.fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (k > 0) {
      if (c.pending.size() + k > kMaxPendingBytes) {
        return Error("[tcp] {} left more than {} B unread behind", PeerName(c.peer),
                     kMaxPendingBytes);
      }
      c.pending.append(buf, static_cast<size_t>(k));
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && errno == EAGAIN) return OkStatus();  // not at the end yet; poll again
    break;                                            // EOF or reset
  }
  c.eof = true;
  // Walk the frames left behind to find the last one.
  size_t off = c.pending_off;
  FrameHeader last{.kind = OpKind::kSend};
  bool complete = true;
  while (off < c.pending.size()) {
    if (c.pending.size() - off < kFrameHeaderBytes) {
      complete = false;
      break;
    }
    auto h =
        DecodeFrame(reinterpret_cast<const uint8_t*>(c.pending.data() + off), PeerName(c.peer));
    if (!h.ok()) return h.status();
    if (h->msg_bytes > c.pending.size() - off - kFrameHeaderBytes) {
      complete = false;
      break;
    }
    last = *h;
    if (last.kind == OpKind::kAbort) {
      return Error("[tcp] {} failed: {}", PeerName(c.peer),
                   c.pending.substr(off + kFrameHeaderBytes, h->msg_bytes));
    }
    off += kFrameHeaderBytes + h->msg_bytes;
  }
  if (complete && last.kind == OpKind::kClose) return OkStatus();
  return Error(
      "[tcp] {}: {} closed its connection without saying goodbye; that process exited "
      "early or died",
      PeerName(rank_), PeerName(c.peer));
}

void TcpTransport::SendWaitingNotices() {
  std::vector<int> told;
  for (const RecvTask& t : recv_tasks_) {
    const int peer = t.c->peer;
    if (t.finished() || std::find(told.begin(), told.end(), peer) != told.end()) continue;
    TcpConn& c = conns_[peer][0];
    if (c.eof) continue;
    // Never between the bytes of a frame this op is sending on the same socket.
    const bool mid_frame =
        std::any_of(send_tasks_.begin(), send_tasks_.end(),
                    [&](const SendTask& s) { return s.c == &c && s.done > 0 && !s.finished(); });
    if (mid_frame) continue;
    told.push_back(peer);
    uint8_t notice[2 * kFrameHeaderBytes];
    const FrameBytes head =
        EncodeFrame(FrameHeader{.kind = OpKind::kWaiting, .msg_bytes = kFrameHeaderBytes});
    const FrameBytes want = EncodeFrame(t.want);
    std::memcpy(notice, head.data(), kFrameHeaderBytes);
    std::memcpy(notice + kFrameHeaderBytes, want.data(), kFrameHeaderBytes);
    // 80 bytes fit in any socket buffer that is not full; a full one means the peer is
    // not reading, and then the notice would not be read either.
    const ssize_t k = send(c.fd.get(), notice, sizeof(notice), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k > 0 && static_cast<size_t>(k) < sizeof(notice)) {
      (void)WriteAll(c.fd.get(), notice + k, sizeof(notice) - k, NowSeconds() + 1.0,
                     PeerName(peer));
    }
  }
}

std::vector<int> TcpTransport::WaitingOn() const {
  if (!has_waiting_) return {};
  std::lock_guard<std::mutex> lock(waiting_mu_);
  return waiting_;
}

Status TcpTransport::Exchange(const FrameHeader& base, std::span<const OutMessage> sends,
                              std::span<const InMessage> recvs, double timeout_s) {
  struct ClearWaiting {
    TcpTransport* t;
    ~ClearWaiting() {
      if (!t->has_waiting_) return;
      std::lock_guard<std::mutex> lock(t->waiting_mu_);
      t->waiting_.clear();
      t->has_waiting_ = false;
    }
  } clear_waiting{this};
  if (!broken_.ok()) {
    return Error("[tcp] {}: the group is broken by an earlier error: {}", PeerName(rank_),
                 broken_.message());
  }
  std::vector<SendTask>& st = send_tasks_;
  std::vector<RecvTask>& rt = recv_tasks_;
  st.clear();
  rt.clear();
  // Messages of at least stripe_bytes are cut into one slice per rail.
  auto slices = [&](int peer, size_t bytes) {
    const size_t rails = conns_[peer].size();
    return (rails > 1 && bytes >= options_.stripe_bytes) ? rails : size_t{1};
  };
  for (const OutMessage& m : sends) {
    MESHLM_CHECK(m.peer >= 0 && m.peer < size() && m.peer != rank_, "bad peer {}", m.peer);
    uint64_t& next = sent_[m.peer][{base.group, base.kind == OpKind::kSend}];
    next = std::max(next, base.seq + 1);
    const size_t r = slices(m.peer, m.bytes);
    for (size_t k = 0; k < r; ++k) {
      const size_t b = m.bytes * k / r, e = m.bytes * (k + 1) / r;
      FrameHeader h = base;
      h.msg_bytes = e - b;
      st.push_back({&conns_[m.peer][k], EncodeFrame(h), static_cast<const uint8_t*>(m.data) + b,
                    e - b, 0, h});
    }
  }
  for (const InMessage& m : recvs) {
    MESHLM_CHECK(m.peer >= 0 && m.peer < size() && m.peer != rank_, "bad peer {}", m.peer);
    const size_t r = slices(m.peer, m.bytes);
    for (size_t k = 0; k < r; ++k) {
      const size_t b = m.bytes * k / r, e = m.bytes * (k + 1) / r;
      FrameHeader h = base;
      h.msg_bytes = e - b;
      rt.push_back({&conns_[m.peer][k], h, {}, static_cast<uint8_t*>(m.data) + b, e - b});
    }
  }
  const double start = NowSeconds();
  const double deadline = start + timeout_s;
  const double spin_until = start + options_.spin_us * 1e-6;
  bool fast = true;
  bool noticed = false;
  std::vector<pollfd>& pfds = pfds_;
  std::vector<TcpConn*>& pconns = pconns_;
  for (;;) {
    bool all_done = true;
    for (SendTask& t : st) {
      if (!t.finished()) {
        if (Status s = ProgressSend(t); !s.ok()) return Fail(s);
        all_done &= t.finished();
      }
    }
    // The fast path below reads the lone receive itself; a non-blocking try first would
    // only cost a syscall.
    const bool sends_done =
        std::all_of(st.begin(), st.end(), [](const SendTask& t) { return t.finished(); });
    const bool lone_recv = fast && sends_done && options_.spin_us <= 0 && rt.size() == 1 &&
                           rt[0].c->pending_off >= rt[0].c->pending.size() && !rt[0].c->eof &&
                           NowSeconds() + kBlockingSlice < deadline;
    for (RecvTask& t : rt) {
      if (!t.finished()) {
        if (!lone_recv) {
          if (Status s = ProgressRecv(t); !s.ok()) return Fail(s);
        }
        all_done &= t.finished();
      }
    }
    if (all_done) return OkStatus();
    // Fast path: one receive left and nothing to send (a 2-rank exchange, a recv): block
    // in the kernel for it like a plain blocking socket would, one syscall per message.
    if (lone_recv && !rt[0].finished()) {
      RecvTask& t = rt[0];
      bool timed_out = false;
      if (Status s = BlockingRecv(t, &timed_out); !s.ok()) return Fail(s);
      // After one idle slice, poll: it also watches the other peers for hang-ups.
      fast = !timed_out;
      continue;
    }
    // A short bounded spin catches replies that arrive within microseconds without a
    // sleep and wake-up; past it, poll() sleeps.
    if (options_.spin_us > 0 && NowSeconds() < spin_until) continue;
    // Wait for any socket to move. Sockets this op does not use are watched for hang-ups
    // only, so a dead bystander is noticed at once and a queued future frame costs nothing.
    pfds.clear();
    pconns.clear();
    for (auto& rails : conns_) {
      for (TcpConn& c : rails) {
        if (c.eof) continue;
        short ev = POLLRDHUP;
        for (const SendTask& t : st) {
          if (t.c == &c && !t.finished()) ev |= POLLOUT;
        }
        for (const RecvTask& t : rt) {
          if (t.c == &c && !t.finished()) ev |= POLLIN;
        }
        pfds.push_back({c.fd.get(), ev, 0});
        pconns.push_back(&c);
      }
    }
    const double wake = noticed || rt.empty() ? deadline : std::min(deadline, start + kNoticeAfter);
    const int ms = PollMs(wake);
    const int rc = ms > 0 ? poll(pfds.data(), pfds.size(), ms) : 0;
    if (rc < 0 && errno != EINTR) return Fail(Error("[tcp] poll: {}", std::strerror(errno)));
    if (rc == 0 && !noticed && NowSeconds() < deadline) {
      SendWaitingNotices();
      noticed = true;
    }
    if (noticed) {
      // Who this rank still waits for, for health reports from other threads (set before
      // the long poll that follows, refreshed after each wake).
      std::vector<int> peers;
      for (const RecvTask& t : rt) {
        if (!t.finished() && std::find(peers.begin(), peers.end(), t.c->peer) == peers.end()) {
          peers.push_back(t.c->peer);
        }
      }
      std::lock_guard<std::mutex> lock(waiting_mu_);
      waiting_ = std::move(peers);
      has_waiting_ = true;
    }
    if (rc == 0 && NowSeconds() < deadline) continue;
    if (rc == 0) {
      std::string waiting;
      for (const RecvTask& t : rt) {
        if (!t.finished())
          waiting += fmt::format("{}{} ({} of {} B received)", waiting.empty() ? "" : ", ",
                                 PeerName(t.c->peer), t.done, kFrameHeaderBytes + t.len);
      }
      for (const SendTask& t : st) {
        if (!t.finished())
          waiting += fmt::format("{}{} (not reading; {} of {} B sent)", waiting.empty() ? "" : ", ",
                                 PeerName(t.c->peer), t.done, kFrameHeaderBytes + t.len);
      }
      return Fail(
          Error("[tcp] {}: {} timed out after {:.1f} s waiting for {}; is that process "
                "stopped, overloaded, or in a different op?",
                PeerName(rank_), DescribeCall(base), timeout_s, waiting));
    }
    for (size_t i = 0; i < pfds.size(); ++i) {
      const short re = pfds[i].revents;
      if (re == 0 || (pfds[i].events & POLLIN)) continue;  // readers progress above
      if (re & (POLLRDHUP | POLLHUP | POLLERR)) {
        if (Status s = PeerHungUp(*pconns[i]); !s.ok()) return Fail(s);
        if (pconns[i]->eof && (pfds[i].events & POLLOUT)) {
          return Fail(Error("[tcp] {}: {} left the group while this rank sent it {}",
                            PeerName(rank_), PeerName(pconns[i]->peer), DescribeCall(base)));
        }
      }
    }
  }
}

Status TcpTransport::WaitReadable(int peer) {
  if (!broken_.ok()) return broken_;
  if (peer < 0 || peer >= size() || peer == rank_) {
    return Error("[tcp] {}: cannot wait for rank {}", PeerName(rank_), peer);
  }
  std::vector<pollfd> pfds;
  for (TcpConn& c : conns_[peer]) {
    if (c.eof || c.pending_off < c.pending.size()) return OkStatus();
    pfds.push_back({c.fd.get(), POLLIN, 0});
  }
  // Readable, hung up or in error all end the wait: the next op reads or reports it.
  while (::poll(pfds.data(), pfds.size(), -1) < 0) {
    if (errno != EINTR) {
      return Error("[tcp] {}: poll while waiting for {}: {}", PeerName(rank_), PeerName(peer),
                   std::strerror(errno));
    }
  }
  return OkStatus();
}

}  // namespace meshlm::comm
