// TCP bootstrap: the coordinator at rank 0 admits authenticated ranks and hands out the
// member table; then every rank connects to the lower ranks (one socket per rail), checks
// that rails are not crossed, and accepts the higher ranks.
#include <unistd.h>

#include <algorithm>
#include <cstring>

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
// A connection that has not finished its handshake after this long is dropped, so a
// silent stranger holds up admission only briefly.
constexpr double kHandshakeSeconds = 5.0;

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
  MESHLM_ASSIGN_OR_RETURN(Fd lfd, ListenTcp("", port));
  std::vector<Member> members(cfg.world_size);
  std::vector<Fd> fds(cfg.world_size);
  members[0] = std::move(self);
  int joined = 1;
  while (joined < cfg.world_size) {
    auto fd = AcceptTcp(lfd.get(), deadline, "ranks joining the coordinator");
    if (!fd.ok()) {
      std::string missing;
      for (int r = 1; r < cfg.world_size; ++r) {
        if (!fds[r].valid()) missing += fmt::format("{}{}", missing.empty() ? "" : ", ", r);
      }
      return Error("[tcp] coordinator on port {}: ranks {} did not join within {:.0f} s", port,
                   missing, cfg.options.connect_timeout_s);
    }
    const std::string who = "connection from " + PeerAddress(fd->get());
    const double hs_deadline = std::min(deadline, NowSeconds() + kHandshakeSeconds);
    if (Status st = ServerHandshake(fd->get(), cfg.secret, Purpose::kBootstrap, hs_deadline, who);
        !st.ok()) {
      MESHLM_LOG_ERROR("[tcp] coordinator rejected {}: {}", who, st.message());
      continue;
    }
    auto body = ReadMessage(fd->get(), kMaxHelloBytes, hs_deadline, who);
    if (!body.ok()) {
      MESHLM_LOG_ERROR("[tcp] coordinator rejected {}: {}", who, body.status().message());
      continue;
    }
    Reader r(*body, "hello from " + who);
    auto refuse = [&](const std::string& why) {
      MESHLM_LOG_ERROR("[tcp] coordinator rejected {}: {}", who, why);
      (void)WriteMessage(fd->get(), "E" + why, hs_deadline, who);
    };
    auto rank = r.U32(kMaxWorld, "rank");
    auto world = r.U32(kMaxWorld, "world size");
    if (!rank.ok() || !world.ok()) {
      refuse((!rank.ok() ? rank.status() : world.status()).message());
      continue;
    }
    if (static_cast<int>(*world) != cfg.world_size) {
      refuse(fmt::format("rank {} believes the world has {} ranks; rank 0 has {}", *rank, *world,
                         cfg.world_size));
      continue;
    }
    if (*rank == 0 || static_cast<int>(*rank) >= cfg.world_size) {
      refuse(fmt::format("rank {} is out of range 1..{}", *rank, cfg.world_size - 1));
      continue;
    }
    if (fds[*rank].valid()) {
      refuse(fmt::format("rank {} has already joined from {}; two processes claim it", *rank,
                         members[*rank].ip));
      continue;
    }
    auto m = GetMember(r, cfg.world_size);
    if (!m.ok()) {
      refuse(m.status().message());
      continue;
    }
    m->ip = PeerIp(fd->get());
    members[*rank] = std::move(*m);
    fds[*rank] = std::move(*fd);
    ++joined;
    MESHLM_LOG_DEBUG("[tcp] coordinator: rank {} ({}) joined from {}", *rank, members[*rank].host,
                     members[*rank].ip);
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
  MESHLM_ASSIGN_OR_RETURN(Fd fd, ConnectTcp(ip, coord.port, deadline, who));
  MESHLM_RETURN_IF_ERROR(ClientHandshake(fd.get(), cfg.secret, Purpose::kBootstrap, deadline, who));
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
  MESHLM_ASSIGN_OR_RETURN(Fd fd, ConnectTcp(target, ms[i].port, deadline, who));
  MESHLM_RETURN_IF_ERROR(ClientHandshake(fd.get(), cfg.secret, Purpose::kMesh, deadline, who));
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
  while (accepted < expected) {
    MESHLM_ASSIGN_OR_RETURN(
        Fd fd, AcceptTcp(lfd.get(), deadline,
                         fmt::format("mesh connections from ranks {}..{}", me + 1, n - 1)));
    const std::string who = "mesh connection from " + PeerAddress(fd.get());
    const double hs_deadline = std::min(deadline, NowSeconds() + kHandshakeSeconds);
    if (Status st = ServerHandshake(fd.get(), cfg.secret, Purpose::kMesh, hs_deadline, who);
        !st.ok()) {
      MESHLM_LOG_ERROR("[tcp] rank {} rejected {}: {}", me, who, st.message());
      continue;
    }
    uint8_t intro[16];
    if (Status st = ReadAll(fd.get(), intro, sizeof(intro), hs_deadline, who); !st.ok()) {
      MESHLM_LOG_ERROR("[tcp] rank {} rejected {}: {}", me, who, st.message());
      continue;
    }
    uint32_t v[4] = {};
    for (int f = 0; f < 4; ++f) {
      for (int b = 0; b < 4; ++b) v[f] |= static_cast<uint32_t>(intro[4 * f + b]) << (8 * b);
    }
    const uint32_t j = v[0], k = v[1];
    if (v[2] != static_cast<uint32_t>(n) || j <= static_cast<uint32_t>(me) ||
        j >= static_cast<uint32_t>(n) || k >= conns[j].size() || conns[j][k].fd.valid()) {
      MESHLM_LOG_ERROR(
          "[tcp] rank {} rejected {}: claims rank {} rail {} of a world of {} "
          "(expected a rank in {}..{}, a new rail, world {})",
          me, who, j, k, v[2], me + 1, n - 1, n);
      continue;
    }
    if (v[3] != 0) {
      return Error(
          "[tcp] rank {} ({}): rank {} ({}) found the rails between us crossed; see its "
          "error",
          me, ms[me].host, j, ms[j].host);
    }
    conns[j][k].fd = std::move(fd);
    ++accepted;
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
  MESHLM_ASSIGN_OR_RETURN(Fd lfd, ListenTcp("", 0));
  self.port = LocalPort(lfd.get());
  MESHLM_LOG_DEBUG("[tcp] rank {} ({}): mesh port {}", cfg.rank, self.host, self.port);
  std::vector<Member> members;
  if (cfg.rank == 0) {
    MESHLM_ASSIGN_OR_RETURN(self.ip, ResolveIpv4(coord.host));
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
