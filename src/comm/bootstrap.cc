// TCP bootstrap: the coordinator at rank 0 admits authenticated ranks and hands out the
// member table; then every rank connects to the lower ranks (one socket per rail), checks
// that rails are not crossed, and accepts the higher ranks.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "base/clock.h"
#include "base/log.h"
#include "comm/auth.h"
#include "comm/socket.h"
#include "comm/tcp.h"
#include "comm/tcp_transport.h"

namespace meshlm::comm {
namespace {

constexpr size_t kMaxHelloBytes = 1 << 20;
constexpr size_t kMaxTableBytes = 16 << 20;
constexpr int kMaxWorld = 4096;
constexpr size_t kMaxRails = 16;
// A connection that has not finished its handshake after this long is dropped. Handshakes
// run concurrently, so a silent stranger holds up nobody but itself.
constexpr double kHandshakeSeconds = 3.0;
// Connections in handshake at once, from one address beyond what the job itself makes
// from there, and in all.
constexpr int kExtraPendingPerSource = 32;
constexpr size_t kMaxPending = 256;

// Accepts connections and handshakes each on its own thread with its own deadline, so
// idle, slow or hostile connections cannot delay the ranks behind them. From one
// address, at most `per_source` connections are in handshake at once; more are closed
// at once. The handler runs on the connection's thread; to keep the socket past the
// handshake it moves it out while holding `mu` and calls Keep().
class Admitter {
 public:
  using Handler = std::function<void(Fd& fd, const std::string& who, double hs_deadline)>;

  Admitter(int lfd, int per_source) : lfd_(lfd), per_source_(per_source) {}
  ~Admitter() { Stop(); }

  std::mutex mu;

  /// Accepts until `done()` (called with `mu` held) is true; false at `deadline`.
  bool Run(double deadline, const std::string& what, const std::function<bool()>& done,
           const Handler& handle) {
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (done()) return true;
      }
      const double now = NowSeconds();
      if (now > deadline) return false;
      auto fd = AcceptTcp(lfd_, std::min(deadline, now + 0.05), what);
      if (!fd.ok()) continue;
      const std::string ip = PeerIp(fd->get());
      const int raw = fd->get();
      {
        std::lock_guard<std::mutex> lock(mu);
        if (pending_[ip] >= per_source_ || open_.size() >= kMaxPending) {
          MESHLM_LOG_ERROR(
              "[tcp] closed a connection from {}: {} from there already in "
              "handshake ({} in all)",
              ip, pending_[ip], open_.size());
          continue;
        }
        ++pending_[ip];
        open_.insert(raw);
      }
      Reap();
      auto finished = std::make_shared<std::atomic<bool>>(false);
      threads_.push_back(
          {std::thread([this, ip, raw, &handle, finished, f = std::move(*fd)]() mutable {
             const std::string who = "connection from " + PeerAddress(raw);
             handle(f, who, NowSeconds() + kHandshakeSeconds);
             std::lock_guard<std::mutex> lock(mu);
             --pending_[ip];
             open_.erase(raw);
             f = Fd();  // closed only now: its number is not reused while listed
             *finished = true;
           }),
           finished});
    }
  }

  /// With `mu` held: the handler keeps socket `raw` past the handshake.
  void Keep(int raw) { open_.erase(raw); }

  /// Cuts the handshakes still running short and waits for their threads.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu);
      for (int fd : open_) shutdown(fd, SHUT_RDWR);
    }
    for (Worker& w : threads_) w.thread.join();
    threads_.clear();
  }

 private:
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> finished;
  };

  // Joins the threads whose handshakes are over, so that a flood leaves no pile behind.
  void Reap() {
    for (auto it = threads_.begin(); it != threads_.end();) {
      if (*it->finished) {
        it->thread.join();
        it = threads_.erase(it);
      } else {
        ++it;
      }
    }
  }

  int lfd_;
  int per_source_;
  std::map<std::string, int> pending_;
  std::set<int> open_;
  std::list<Worker> threads_;
};

// Connects and authenticates. A connection the other side closes before its first
// handshake byte (it was busy with strangers' connections) is tried again until the
// deadline; once the handshake has begun, its result stands.
Result<Fd> ConnectAuthenticated(const TcpConfig& cfg, const std::string& ip, int port,
                                Purpose purpose, double deadline, const std::string& who) {
  for (int attempt = 0;; ++attempt) {
    MESHLM_ASSIGN_OR_RETURN(Fd fd, ConnectTcp(ip, port, deadline, who));
    pollfd p{fd.get(), POLLIN, 0};
    const int wait_ms = static_cast<int>(std::max(0.0, deadline - NowSeconds()) * 1000) + 1;
    char first;
    if (poll(&p, 1, wait_ms) > 0 && recv(fd.get(), &first, 1, MSG_PEEK) == 1) {
      MESHLM_RETURN_IF_ERROR(ClientHandshake(fd.get(), cfg.secret, purpose, deadline, who));
      return fd;
    }
    if (NowSeconds() + 0.1 > deadline) {
      return Error("[tcp] {} did not start the handshake before the deadline", who);
    }
    MESHLM_LOG_DEBUG("[tcp] rank {}: {} closed before the handshake; trying again", cfg.rank, who);
    usleep(std::min(500000, 20000 << std::min(attempt, 5)));
  }
}

// Listens on `ip` when this host has it, else on every address (with a note why).
Result<Fd> ListenOn(const std::string& ip, int port, const std::string& what) {
  auto fd = ListenTcp(ip, port);
  if (fd.ok() || ip.empty()) return fd;
  MESHLM_LOG_WARN("[tcp] {}: {}; listening on every address instead", what, fd.status().message());
  return ListenTcp("", port);
}

struct Member {
  std::string host;
  std::string ip;
  int port = 0;
  std::vector<std::vector<std::string>> rails;  // rails[j][k]: resolved addresses toward j
};

class Writer {
 public:
  void U32(uint32_t v) {
    for (int i = 0; i < 4; ++i) s_.push_back(static_cast<char>(v >> (8 * i)));
  }
  void Str(const std::string& v) {
    U32(static_cast<uint32_t>(v.size()));
    s_ += v;
  }
  std::string& str() { return s_; }

 private:
  std::string s_;
};

// Bounds-checked reads of bytes that came from another process.
class Reader {
 public:
  Reader(const std::string& s, std::string what) : s_(s), what_(std::move(what)) {}
  Result<uint32_t> U32(uint32_t max, const char* field) {
    if (s_.size() - off_ < 4) return Error("[tcp] {}: truncated at {}", what_, field);
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
      v |= static_cast<uint32_t>(static_cast<uint8_t>(s_[off_ + i])) << (8 * i);
    off_ += 4;
    if (v > max) return Error("[tcp] {}: {} = {} exceeds {}", what_, field, v, max);
    return v;
  }
  Result<std::string> Str(const char* field) {
    MESHLM_ASSIGN_OR_RETURN(uint32_t n, U32(4096, field));
    if (s_.size() - off_ < n) return Error("[tcp] {}: truncated in {}", what_, field);
    std::string v = s_.substr(off_, n);
    off_ += n;
    return v;
  }

 private:
  const std::string& s_;
  std::string what_;
  size_t off_ = 0;
};

void PutMember(Writer& w, const Member& m) {
  w.Str(m.host);
  w.Str(m.ip);
  w.U32(static_cast<uint32_t>(m.port));
  w.U32(static_cast<uint32_t>(m.rails.size()));
  for (const auto& row : m.rails) {
    w.U32(static_cast<uint32_t>(row.size()));
    for (const auto& a : row) w.Str(a);
  }
}

Result<Member> GetMember(Reader& r, int world) {
  Member m;
  MESHLM_ASSIGN_OR_RETURN(m.host, r.Str("host"));
  MESHLM_ASSIGN_OR_RETURN(m.ip, r.Str("ip"));
  MESHLM_ASSIGN_OR_RETURN(uint32_t port, r.U32(65535, "port"));
  m.port = static_cast<int>(port);
  MESHLM_ASSIGN_OR_RETURN(uint32_t rows, r.U32(world, "rail rows"));
  m.rails.resize(rows);
  for (auto& row : m.rails) {
    MESHLM_ASSIGN_OR_RETURN(uint32_t n, r.U32(kMaxRails, "rails"));
    row.resize(n);
    for (auto& a : row) {
      MESHLM_ASSIGN_OR_RETURN(a, r.Str("rail address"));
    }
  }
  return m;
}

std::string HostName() {
  char buf[256] = {};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}

// Rank 0: admits world-1 ranks, then sends everyone the table.
Result<std::vector<Member>> RunCoordinator(const TcpConfig& cfg, int port, Member self,
                                           double deadline) {
  // A local job's coordinator is reachable from this host alone.
  MESHLM_ASSIGN_OR_RETURN(Fd lfd, ListenOn(self.ip, port, "coordinator"));
  std::vector<Member> members(cfg.world_size);
  std::vector<Fd> fds(cfg.world_size);
  members[0] = std::move(self);
  int joined = 1;
  Admitter admit(lfd.get(), cfg.world_size + kExtraPendingPerSource);
  auto handle = [&](Fd& fd, const std::string& who, double hs) {
    const double hs_deadline = std::min(deadline, hs);
    if (Status st = ServerHandshake(fd.get(), cfg.secret, Purpose::kBootstrap, hs_deadline, who);
        !st.ok()) {
      MESHLM_LOG_ERROR("[tcp] coordinator rejected {}: {}", who, st.message());
      return;
    }
    auto body = ReadMessage(fd.get(), kMaxHelloBytes, hs_deadline, who);
    if (!body.ok()) {
      MESHLM_LOG_ERROR("[tcp] coordinator rejected {}: {}", who, body.status().message());
      return;
    }
    Reader r(*body, "hello from " + who);
    auto refuse = [&](const std::string& why) {
      MESHLM_LOG_ERROR("[tcp] coordinator rejected {}: {}", who, why);
      (void)WriteMessage(fd.get(), "E" + why, hs_deadline, who);
    };
    auto rank = r.U32(kMaxWorld, "rank");
    auto world = r.U32(kMaxWorld, "world size");
    if (!rank.ok() || !world.ok()) {
      refuse((!rank.ok() ? rank.status() : world.status()).message());
      return;
    }
    if (static_cast<int>(*world) != cfg.world_size) {
      refuse(fmt::format("rank {} believes the world has {} ranks; rank 0 has {}", *rank, *world,
                         cfg.world_size));
      return;
    }
    if (*rank == 0 || static_cast<int>(*rank) >= cfg.world_size) {
      refuse(fmt::format("rank {} is out of range 1..{}", *rank, cfg.world_size - 1));
      return;
    }
    auto m = GetMember(r, cfg.world_size);
    if (!m.ok()) {
      refuse(m.status().message());
      return;
    }
    m->ip = PeerIp(fd.get());
    std::unique_lock<std::mutex> lock(admit.mu);
    if (fds[*rank].valid()) {
      const std::string first = members[*rank].ip;
      lock.unlock();
      refuse(
          fmt::format("rank {} has already joined from {}; two processes claim it", *rank, first));
      return;
    }
    admit.Keep(fd.get());
    members[*rank] = std::move(*m);
    fds[*rank] = std::move(fd);
    ++joined;
    MESHLM_LOG_DEBUG("[tcp] coordinator: rank {} ({}) joined from {}", *rank, members[*rank].host,
                     members[*rank].ip);
  };
  const bool all = admit.Run(
      deadline, "ranks joining the coordinator", [&] { return joined == cfg.world_size; }, handle);
  admit.Stop();
  if (!all) {
    std::string missing;
    for (int r = 1; r < cfg.world_size; ++r) {
      if (!fds[r].valid()) missing += fmt::format("{}{}", missing.empty() ? "" : ", ", r);
    }
    return Error("[tcp] coordinator on port {}: ranks {} did not join within {:.0f} s", port,
                 missing, cfg.options.connect_timeout_s);
  }
  Writer w;
  w.str() = "T";
  for (const Member& m : members) PutMember(w, m);
  for (int r = 1; r < cfg.world_size; ++r) {
    MESHLM_RETURN_IF_ERROR(WriteMessage(fds[r].get(), w.str(), deadline,
                                        fmt::format("rank {} ({})", r, members[r].host)));
  }
  return members;
}

Result<std::vector<Member>> JoinCoordinator(const TcpConfig& cfg, const HostPort& coord,
                                            const Member& self, double deadline) {
  const std::string who = fmt::format("the coordinator (rank 0) at {}:{}", coord.host, coord.port);
  MESHLM_ASSIGN_OR_RETURN(std::string ip, ResolveIpv4(coord.host));
  MESHLM_ASSIGN_OR_RETURN(
      Fd fd, ConnectAuthenticated(cfg, ip, coord.port, Purpose::kBootstrap, deadline, who));
  Writer w;
  w.U32(static_cast<uint32_t>(cfg.rank));
  w.U32(static_cast<uint32_t>(cfg.world_size));
  PutMember(w, self);
  MESHLM_RETURN_IF_ERROR(WriteMessage(fd.get(), w.str(), deadline, who));
  MESHLM_ASSIGN_OR_RETURN(std::string reply, ReadMessage(fd.get(), kMaxTableBytes, deadline, who));
  if (!reply.empty() && reply[0] == 'E') {
    return Error("[tcp] rank {}: the coordinator refused this rank: {}", cfg.rank, reply.substr(1));
  }
  if (reply.empty() || reply[0] != 'T') return Error("[tcp] {} sent a malformed table", who);
  const std::string body = reply.substr(1);
  Reader r(body, "member table from " + who);
  std::vector<Member> members(cfg.world_size);
  for (Member& m : members) {
    MESHLM_ASSIGN_OR_RETURN(m, GetMember(r, cfg.world_size));
  }
  return members;
}

const std::vector<std::string>& RailRow(const Member& m, int peer) {
  static const std::vector<std::string> kNone;
  return peer < static_cast<int>(m.rails.size()) ? m.rails[peer] : kNone;
}

// Number of rails between i and j, or an error naming the cells that disagree.
Result<size_t> RailCount(const std::vector<Member>& ms, int i, int j) {
  const size_t a = RailRow(ms[i], j).size(), b = RailRow(ms[j], i).size();
  if (a == b) return std::max<size_t>(a, 1);
  return Error(
      "[tcp] rank {} ({}) lists {} rails toward rank {} but rank {} ({}) lists {} toward "
      "rank {}; hosts[{}].links[{}] and hosts[{}].links[{}] must have the same length",
      i, ms[i].host, a, j, j, ms[j].host, b, i, i, j, j, i);
}

// Connects rail `k` from this rank to lower rank `i` and checks the wiring.
Result<Fd> ConnectRail(const TcpConfig& cfg, const std::vector<Member>& ms, int i, size_t k,
                       double deadline) {
  const int me = cfg.rank;
  const auto& theirs = RailRow(ms[i], me);
  const auto& mine = RailRow(ms[me], i);
  const std::string target = theirs.empty() ? ms[i].ip : theirs[k];
  const std::string who =
      fmt::format("rank {} ({}) rail {} at {}:{}", i, ms[i].host, k, target, ms[i].port);
  MESHLM_ASSIGN_OR_RETURN(
      Fd fd, ConnectAuthenticated(cfg, target, ms[i].port, Purpose::kMesh, deadline, who));
  // The route the kernel chose shows which local address, hence which link, reaches the
  // peer's rail k. If it is our rail m != k, the two hosts number their links differently.
  Status wiring;
  if (!mine.empty()) {
    const std::string src = LocalIp(fd.get());
    auto it = std::find(mine.begin(), mine.end(), src);
    if (src != mine[k] && it != mine.end()) {
      const size_t m = static_cast<size_t>(it - mine.begin());
      wiring = Error(
          "[tcp] rails between rank {} ({}) and rank {} ({}) are crossed: rank {}'s "
          "rail {} address {} is reached from rank {}'s rail {} address {} (not its "
          "rail {} address {}); rail k must name the two ends of one link on both "
          "hosts: swap hosts[{}].links[{}][{}] and hosts[{}].links[{}][{}] (or the "
          "same two cells of hosts[{}].links[{}])",
          me, ms[me].host, i, ms[i].host, i, k, target, me, m, src, k, mine[k], me, i, k, me, i, m,
          i, me);
    }
  }
  uint8_t intro[16];
  const uint32_t vals[4] = {static_cast<uint32_t>(me), static_cast<uint32_t>(k),
                            static_cast<uint32_t>(cfg.world_size), wiring.ok() ? 0u : 1u};
  for (int f = 0; f < 4; ++f) {
    for (int b = 0; b < 4; ++b) intro[4 * f + b] = static_cast<uint8_t>(vals[f] >> (8 * b));
  }
  MESHLM_RETURN_IF_ERROR(WriteAll(fd.get(), intro, sizeof(intro), deadline, who));
  if (!wiring.ok()) return wiring;
  return fd;
}

Result<std::vector<std::vector<TcpConn>>> FormMesh(const TcpConfig& cfg, const Fd& lfd,
                                                   const std::vector<Member>& ms, double deadline) {
  const int me = cfg.rank, n = cfg.world_size;
  std::vector<std::vector<TcpConn>> conns(n);
  size_t expected = 0;
  for (int p = 0; p < n; ++p) {
    if (p == me) continue;
    MESHLM_ASSIGN_OR_RETURN(size_t rails, RailCount(ms, std::min(me, p), std::max(me, p)));
    conns[p].resize(rails);
    for (size_t k = 0; k < rails; ++k) {
      conns[p][k].peer = p;
      conns[p][k].rail = static_cast<int>(k);
    }
    if (p > me) expected += rails;
  }
  for (int i = 0; i < me; ++i) {
    for (size_t k = 0; k < conns[i].size(); ++k) {
      MESHLM_ASSIGN_OR_RETURN(conns[i][k].fd, ConnectRail(cfg, ms, i, k, deadline));
    }
  }
  size_t accepted = 0;
  Status crossed;
  Admitter admit(lfd.get(), static_cast<int>(expected) + kExtraPendingPerSource);
  auto handle = [&](Fd& fd, const std::string& conn, double hs) {
    const std::string who = "mesh " + conn;
    const double hs_deadline = std::min(deadline, hs);
    if (Status st = ServerHandshake(fd.get(), cfg.secret, Purpose::kMesh, hs_deadline, who);
        !st.ok()) {
      MESHLM_LOG_ERROR("[tcp] rank {} rejected {}: {}", me, who, st.message());
      return;
    }
    uint8_t intro[16];
    if (Status st = ReadAll(fd.get(), intro, sizeof(intro), hs_deadline, who); !st.ok()) {
      MESHLM_LOG_ERROR("[tcp] rank {} rejected {}: {}", me, who, st.message());
      return;
    }
    uint32_t v[4] = {};
    for (int f = 0; f < 4; ++f) {
      for (int b = 0; b < 4; ++b) v[f] |= static_cast<uint32_t>(intro[4 * f + b]) << (8 * b);
    }
    const uint32_t j = v[0], k = v[1];
    std::lock_guard<std::mutex> lock(admit.mu);
    if (v[2] != static_cast<uint32_t>(n) || j <= static_cast<uint32_t>(me) ||
        j >= static_cast<uint32_t>(n) || k >= conns[j].size() || conns[j][k].fd.valid()) {
      MESHLM_LOG_ERROR(
          "[tcp] rank {} rejected {}: claims rank {} rail {} of a world of {} "
          "(expected a rank in {}..{}, a new rail, world {})",
          me, who, j, k, v[2], me + 1, n - 1, n);
      return;
    }
    if (v[3] != 0) {
      crossed = Error(
          "[tcp] rank {} ({}): rank {} ({}) found the rails between us crossed; see its "
          "error",
          me, ms[me].host, j, ms[j].host);
      return;
    }
    admit.Keep(fd.get());
    conns[j][k].fd = std::move(fd);
    ++accepted;
  };
  const bool all = admit.Run(
      deadline, fmt::format("mesh connections from ranks {}..{}", me + 1, n - 1),
      [&] { return accepted == expected || !crossed.ok(); }, handle);
  admit.Stop();
  if (!crossed.ok()) return crossed;
  if (!all) {
    std::string missing;
    for (int p = me + 1; p < n; ++p) {
      for (size_t k = 0; k < conns[p].size(); ++k) {
        if (!conns[p][k].fd.valid()) {
          missing +=
              fmt::format("{}rank {} ({}) rail {}", missing.empty() ? "" : ", ", p, ms[p].host, k);
        }
      }
    }
    return Error("[tcp] rank {} ({}): no mesh connection within {:.0f} s from {}", me, ms[me].host,
                 cfg.options.connect_timeout_s, missing);
  }
  return conns;
}

}  // namespace

Result<std::unique_ptr<Group>> ConnectTcpGroup(const TcpConfig& cfg) {
  if (cfg.world_size < 1 || cfg.world_size > kMaxWorld) {
    return Error("[tcp] world size {} is outside 1..{}", cfg.world_size, kMaxWorld);
  }
  if (cfg.rank < 0 || cfg.rank >= cfg.world_size) {
    return Error("[tcp] rank {} is outside 0..{}", cfg.rank, cfg.world_size - 1);
  }
  if (cfg.world_size == 1) return MakeSingletonGroup();
  const double deadline = NowSeconds() + cfg.options.connect_timeout_s;
  MESHLM_ASSIGN_OR_RETURN(HostPort coord, ParseHostPort(cfg.coordinator, "coordinator address"));
  Member self;
  self.host = cfg.host.empty() ? HostName() : cfg.host;
  if (!cfg.rails.empty() && static_cast<int>(cfg.rails.size()) != cfg.world_size) {
    return Error("[tcp] rank {}: {} rail rows given for a world of {}", cfg.rank, cfg.rails.size(),
                 cfg.world_size);
  }
  self.rails.resize(cfg.rails.size());
  for (size_t j = 0; j < cfg.rails.size(); ++j) {
    if (cfg.rails[j].size() > kMaxRails) {
      return Error("[tcp] rank {}: {} rails toward rank {}; at most {}", cfg.rank,
                   cfg.rails[j].size(), j, kMaxRails);
    }
    for (size_t k = 0; k < cfg.rails[j].size(); ++k) {
      auto a = AddressOfCell(cfg.rails[j][k]);
      if (!a.ok()) {
        return a.status().With(
            fmt::format("[tcp] rank {}: rail {} toward rank {}", cfg.rank, k, j));
      }
      self.rails[j].push_back(*a);
    }
  }
  // A job whose coordinator is on loopback runs on this host alone: its mesh listens on
  // loopback too. Otherwise on every address, for the rails (every peer authenticates).
  MESHLM_ASSIGN_OR_RETURN(std::string coord_ip, ResolveIpv4(coord.host));
  const bool local_job = coord_ip.rfind("127.", 0) == 0;
  MESHLM_ASSIGN_OR_RETURN(Fd lfd, ListenTcp(local_job ? "127.0.0.1" : "", 0));
  self.port = LocalPort(lfd.get());
  MESHLM_LOG_DEBUG("[tcp] rank {} ({}): mesh port {}", cfg.rank, self.host, self.port);
  std::vector<Member> members;
  if (cfg.rank == 0) {
    self.ip = coord_ip;
    MESHLM_ASSIGN_OR_RETURN(members, RunCoordinator(cfg, coord.port, self, deadline));
  } else {
    MESHLM_ASSIGN_OR_RETURN(members, JoinCoordinator(cfg, coord, self, deadline));
  }
  MESHLM_ASSIGN_OR_RETURN(auto conns, FormMesh(cfg, lfd, members, deadline));
  std::vector<std::string> hosts;
  for (const Member& m : members) hosts.push_back(m.host);
  auto transport =
      std::make_shared<TcpTransport>(cfg.rank, std::move(hosts), std::move(conns), cfg.options);
  std::vector<int> all(cfg.world_size);
  for (int r = 0; r < cfg.world_size; ++r) all[r] = r;
  return MakeCollectiveGroup(std::move(transport), std::move(all), 0);
}

}  // namespace meshlm::comm
