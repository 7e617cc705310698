// Tests of http::Listener over loopback with short deadlines: slow clients are cut off
// and free their thread, answers from the head skip the body, pipelined requests are
// answered in order, bursts and overload get answers.
#include "server/http_listener.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <thread>

#include "base/clock.h"

namespace meshlm::server::http {
namespace {

int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void SendAll(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    s.remove_prefix(static_cast<size_t>(n));
  }
}

// Everything the server sends until it closes, or until `seconds` pass.
std::string ReadUntilClosed(int fd, double seconds) {
  std::string out;
  const double end = NowSeconds() + seconds;
  while (NowSeconds() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

size_t Count(const std::string& s, std::string_view what) {
  size_t n = 0;
  for (size_t i = s.find(what); i != std::string::npos; i = s.find(what, i + 1)) ++n;
  return n;
}

// A listener on a free loopback port with short deadlines, serving on its own thread:
// /echo answers the body's length, /deny answers 401 from the head, /stream sends three
// pieces, /empty answers 204, /slow holds its thread for 0.5 s; an X-Tag header comes
// back as X-Tagged on every answer to its request.
class ListenerTest : public ::testing::Test {
 protected:
  void Start(Limits limits) {
    Hooks hooks;
    hooks.on_head = [](const Request& req, const Head&, Responder& res) {
      if (const std::string* tag = req.Header("x-tag")) res.AddToEveryAnswer({{"X-Tagged", *tag}});
      if (req.path != "/deny") return true;
      res.Send(401, "application/json", "{\"error\":\"no key\"}");
      return false;
    };
    hooks.on_request = [this](Request& req, Responder& res) {
      ++requests_;
      if (req.path == "/stream") {
        res.BeginStream(200, "text/plain");
        for (int i = 0; i < 3; ++i) res.Write(fmt::format("piece{};", i));
        res.EndStream();
        return;
      }
      if (req.path == "/empty") return res.Send(204, "", "not sent");
      if (req.path == "/slow") std::this_thread::sleep_for(std::chrono::milliseconds(500));
      res.Send(200, "text/plain", fmt::format("{} got {}", req.path, req.body.size()));
    };
    hooks.error_body = [](int status, const std::string& message) {
      return fmt::format("{{\"status\":{},\"message\":\"{}\"}}", status, message);
    };
    listener_ = std::make_unique<Listener>(limits, std::move(hooks));
    ASSERT_TRUE(listener_->Bind("127.0.0.1", 0).ok());
    thread_ = std::thread([this] { listener_->Serve(); });
  }
  void TearDown() override {
    if (listener_) listener_->Stop();
    if (thread_.joinable()) thread_.join();
  }
  static Limits Short() {
    Limits l;
    l.head_seconds = 0.5;
    l.body_grace_seconds = 0.5;
    l.body_min_rate = 1000;
    l.idle_seconds = 0.3;
    l.max_body_bytes = 1000;
    l.threads = 2;
    return l;
  }
  int port() const { return listener_->port(); }

  std::unique_ptr<Listener> listener_;
  std::thread thread_;
  std::atomic<int> requests_{0};
};

TEST_F(ListenerTest, ATricklingHeadIsCutOffAndItsThreadServesTheNextClient) {
  Limits l = Short();
  l.threads = 1;
  Start(l);
  const int slow = Connect(port());
  std::thread trickle([&] {
    const std::string head = "GET /echo HTTP/1.1\r\nHost: x\r\nX-Long: aaaaaaaaaaaaaaaaaaaa";
    for (char c : head) {
      if (::send(slow, &c, 1, MSG_NOSIGNAL) != 1) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  const std::string cut = ReadUntilClosed(slow, 5);
  trickle.join();
  ::close(slow);
  EXPECT_NE(cut.find("HTTP/1.1 408 "), std::string::npos) << cut;
  EXPECT_NE(cut.find("did not arrive within"), std::string::npos) << cut;
  const int next = Connect(port());
  SendAll(next, "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const std::string answer = ReadUntilClosed(next, 5);
  ::close(next);
  EXPECT_NE(answer.find("HTTP/1.1 200 OK"), std::string::npos) << answer;
}

TEST_F(ListenerTest, ATricklingBodyIsCutOff) {
  Start(Short());
  const int fd = Connect(port());
  SendAll(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n0123456789");
  std::thread trickle([&] {
    for (int i = 0; i < 40; ++i) {
      if (::send(fd, "x", 1, MSG_NOSIGNAL) != 1) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  const std::string cut = ReadUntilClosed(fd, 5);
  trickle.join();
  ::close(fd);
  EXPECT_NE(cut.find("HTTP/1.1 408 "), std::string::npos) << cut;
  EXPECT_EQ(requests_, 0);
}

TEST_F(ListenerTest, ABodyOverTheLimitIsRefusedBeforeItIsSent) {
  Start(Short());
  const int fd = Connect(port());
  SendAll(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n");
  const std::string answer = ReadUntilClosed(fd, 5);
  ::close(fd);
  EXPECT_NE(answer.find("HTTP/1.1 413 "), std::string::npos) << answer;
  EXPECT_NE(answer.find("over the limit of 1000 bytes"), std::string::npos) << answer;
  EXPECT_NE(answer.find("Connection: close"), std::string::npos) << answer;
  EXPECT_EQ(requests_, 0);
}

TEST_F(ListenerTest, AChunkedBodyOverTheLimitIs413) {
  Start(Short());
  const int fd = Connect(port());
  SendAll(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  SendAll(fd, "400\r\n" + std::string(1024, 'a') + "\r\n0\r\n\r\n");
  const std::string answer = ReadUntilClosed(fd, 5);
  ::close(fd);
  EXPECT_NE(answer.find("HTTP/1.1 413 "), std::string::npos) << answer;
}

TEST_F(ListenerTest, AnAnswerFromTheHeadClosesTheConnectionInsteadOfReadingTheBody) {
  Start(Short());
  const int fd = Connect(port());
  SendAll(fd, "POST /deny HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n");
  const double start = NowSeconds();
  const std::string answer = ReadUntilClosed(fd, 5);
  const double took = NowSeconds() - start;
  ::close(fd);
  EXPECT_NE(answer.find("HTTP/1.1 401 "), std::string::npos) << answer;
  EXPECT_NE(answer.find("Connection: close"), std::string::npos) << answer;
  // Closed at once, not after the body or head deadline.
  EXPECT_LT(took, 0.45);
}

TEST_F(ListenerTest, PipelinedRequestsAreAnsweredInOrder) {
  Start(Short());
  const int fd = Connect(port());
  SendAll(fd,
          "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
          "GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
          "POST /two HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
          "GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const std::string answer = ReadUntilClosed(fd, 5);
  ::close(fd);
  const size_t a = answer.find("/echo got 3"), b = answer.find("/one got 0"),
               c = answer.find("/two got 2"), d = answer.find("/three got 0");
  ASSERT_NE(d, std::string::npos) << answer;
  EXPECT_TRUE(a < b && b < c && c < d) << answer;
  EXPECT_EQ(Count(answer, "HTTP/1.1 200 OK"), 4u);
}

TEST_F(ListenerTest, ExpectContinueGetsAnInterimAnswer) {
  Start(Short());
  const int fd = Connect(port());
  SendAll(fd,
          "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  char buf[256] = {};
  pollfd p{fd, POLLIN, 0};
  ASSERT_GT(::poll(&p, 1, 2000), 0);
  const ssize_t n = ::recv(fd, buf, sizeof(buf) - 1, 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), "HTTP/1.1 100 Continue\r\n\r\n");
  SendAll(fd, "body");
  const std::string answer = ReadUntilClosed(fd, 2);
  ::close(fd);
  EXPECT_NE(answer.find("/echo got 4"), std::string::npos) << answer;
}

TEST_F(ListenerTest, StreamsAreChunkedForHttp11AndRawForHttp10) {
  Start(Short());
  int fd = Connect(port());
  SendAll(fd, "GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string answer = ReadUntilClosed(fd, 2);
  ::close(fd);
  EXPECT_NE(answer.find("Transfer-Encoding: chunked"), std::string::npos) << answer;
  EXPECT_NE(answer.find("7\r\npiece0;\r\n7\r\npiece1;\r\n7\r\npiece2;\r\n0\r\n\r\n"),
            std::string::npos)
      << answer;
  fd = Connect(port());
  SendAll(fd, "GET /stream HTTP/1.0\r\n\r\n");
  answer = ReadUntilClosed(fd, 2);
  ::close(fd);
  EXPECT_EQ(answer.find("Transfer-Encoding"), std::string::npos) << answer;
  EXPECT_NE(answer.find("\r\n\r\npiece0;piece1;piece2;"), std::string::npos) << answer;
}

TEST_F(ListenerTest, HeadersForEveryAnswerReachAnswersTheConnectionGivesToo) {
  Start(Short());
  const std::string tag = "X-Tag: t7\r\n";
  const std::string requests[] = {
      "GET /echo HTTP/1.1\r\nHost: x\r\n" + tag + "Connection: close\r\n\r\n",
      "GET /stream HTTP/1.1\r\nHost: x\r\n" + tag + "Connection: close\r\n\r\n",
      "POST /deny HTTP/1.1\r\nHost: x\r\n" + tag + "Content-Length: 5\r\n\r\n",
      // Refused by the connection code after the hooks saw the head: over the limit, and
      // a chunked body that is not chunked.
      "POST /echo HTTP/1.1\r\nHost: x\r\n" + tag + "Content-Length: 5000\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: x\r\n" + tag + "Transfer-Encoding: chunked\r\n\r\nzz\r\n",
  };
  for (const std::string& request : requests) {
    const int fd = Connect(port());
    SendAll(fd, request);
    const std::string answer = ReadUntilClosed(fd, 3);
    ::close(fd);
    const std::string head = answer.substr(0, answer.find("\r\n\r\n"));
    EXPECT_NE(head.find("\r\nX-Tagged: t7"), std::string::npos) << request << "\n" << answer;
  }
  const int fd = Connect(port());
  SendAll(fd, "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const std::string untagged = ReadUntilClosed(fd, 3);
  ::close(fd);
  EXPECT_EQ(untagged.find("X-Tagged"), std::string::npos) << untagged;
}

TEST_F(ListenerTest, A204HasNeitherBodyNorContentLength) {
  Start(Short());
  const int fd = Connect(port());
  SendAll(fd,
          "GET /empty HTTP/1.1\r\nHost: x\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\n"
          "Connection: close\r\n\r\n");
  const std::string answer = ReadUntilClosed(fd, 3);
  ::close(fd);
  ASSERT_EQ(answer.rfind("HTTP/1.1 204 No Content\r\n", 0), 0u) << answer;
  const std::string first = answer.substr(0, answer.find("\r\n\r\n") + 4);
  EXPECT_EQ(first.find("Content-Length"), std::string::npos) << answer;
  // The next answer follows at once: no body bytes in between.
  EXPECT_EQ(answer.find("HTTP/1.1 200 OK", first.size()), first.size()) << answer;
  EXPECT_EQ(answer.find("not sent"), std::string::npos) << answer;
}

TEST_F(ListenerTest, MalformedRequestsGetTheirStatusAndAClosedConnection) {
  Start(Short());
  using namespace std::string_view_literals;
  const std::pair<std::string_view, const char*> cases[] = {
      {"POST /echo HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", "400"},
      {"GET /echo HTTP/3.0\r\n\r\n", "505"},
      {"POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "501"},
      {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"sv, "400"},
      {"GET /\x00 HTTP/1.1"sv, "400"},
  };
  for (const auto& [text, status] : cases) {
    const int fd = Connect(port());
    SendAll(fd, text);
    const std::string answer = ReadUntilClosed(fd, 2);
    ::close(fd);
    EXPECT_EQ(answer.rfind(fmt::format("HTTP/1.1 {} ", status), 0), 0u) << answer;
    EXPECT_NE(answer.find("Connection: close"), std::string::npos) << answer;
  }
  EXPECT_EQ(requests_, 0);
}

TEST_F(ListenerTest, ABurstOfConnectionsIsAllAnsweredAndTheBacklogIsLarge) {
  Start(Short());
  // The kernel's accept queue for this socket, as `ss` reports it (Send-Q of a
  // listener): a small one drops SYNs in a burst, which then wait a second for a retry.
  if (FILE* ss = ::popen(fmt::format("ss -ltnH 'sport = :{}' 2>/dev/null", port()).c_str(), "r")) {
    char line[512] = {};
    if (std::fgets(line, sizeof(line), ss) != nullptr) {
      char state[32] = {};
      unsigned recv_q = 0, send_q = 0;
      ASSERT_EQ(std::sscanf(line, "%31s %u %u", state, &recv_q, &send_q), 3) << line;
      EXPECT_GE(send_q, 512u) << line;
    }
    ::pclose(ss);
  }
  constexpr int kClients = 64;
  std::array<int, kClients> fds{};
  for (int& fd : fds) fd = Connect(port());
  for (int fd : fds) {
    ASSERT_GE(fd, 0);
    SendAll(fd, "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  }
  int ok = 0;
  for (int fd : fds) {
    ok += ReadUntilClosed(fd, 5).find("HTTP/1.1 200 OK") != std::string::npos;
    ::close(fd);
  }
  EXPECT_EQ(ok, kClients);
}

TEST_F(ListenerTest, ConnectionsPastTheQueueGet503WithRetryAfter) {
  Limits l = Short();
  l.threads = 1;
  l.max_pending = 1;
  Start(l);
  // One connection busy in /slow, one waiting in the queue: the next ones are refused.
  const int busy = Connect(port());
  SendAll(busy, "GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::vector<int> more;
  for (int i = 0; i < 3; ++i) more.push_back(Connect(port()));
  int refused = 0;
  for (int fd : more) {
    SendAll(fd, "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const std::string answer = ReadUntilClosed(fd, 3);
    if (answer.find("HTTP/1.1 503 ") != std::string::npos) {
      ++refused;
      EXPECT_NE(answer.find("Retry-After: 1"), std::string::npos) << answer;
    }
    ::close(fd);
  }
  EXPECT_GE(refused, 1);
  EXPECT_NE(ReadUntilClosed(busy, 3).find("/slow got 0"), std::string::npos);
  ::close(busy);
}

}  // namespace
}  // namespace meshlm::server::http
