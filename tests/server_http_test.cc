// `meshlm serve` against careless and hostile HTTP clients, over loopback: the key is
// checked before a body is read, bodies have a limit, bad UTF-8 is a 400, pipelined
// requests are answered in order, and a bounded fuzz run of malformed requests leaves
// the server answering.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "base/clock.h"
#include "server_process.h"

namespace meshlm::testing {
namespace {

using nlohmann::json;
constexpr const char* kKey = "hardening-key-42";

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

// What the server sends until it closes, until `seconds` pass, or (when `until` is not
// empty) until that text has arrived.
std::string Receive(int fd, double seconds, std::string_view until = "") {
  std::string out;
  const double end = NowSeconds() + seconds;
  while (NowSeconds() < end) {
    if (!until.empty() && out.find(until) != std::string::npos) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    char buf[8192];
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string Exchange(int port, std::string_view request, double seconds = 10) {
  const int fd = Connect(port);
  if (fd < 0) return "";
  SendAll(fd, request);
  std::string out = Receive(fd, seconds);
  ::close(fd);
  return out;
}

json BodyOf(const std::string& answer) {
  const size_t at = answer.find("\r\n\r\n");
  if (at == std::string::npos) return json();
  return json::parse(answer.substr(at + 4), nullptr, false);
}

std::string Post(const std::string& path, const std::string& body, const std::string& extra = "") {
  return fmt::format(
      "POST {} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Type: "
      "application/json\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n{}",
      path, kKey, body.size(), extra, body);
}

class ServerHttpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess({"--api-key", kKey, "--max-body-mb", "1"});
    ASSERT_TRUE(server_->WaitReady()) << "server did not become ready";
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static int port() { return server_->port(); }
  static ServerProcess* server_;
};
ServerProcess* ServerHttpTest::server_ = nullptr;

TEST_F(ServerHttpTest, TheKeyIsCheckedBeforeAnyBodyIsRead) {
  const int fd = Connect(port());
  // 120 MB announced, none sent: the answer must come from the head alone.
  SendAll(fd,
          "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
          "Content-Length: 120000000\r\n\r\n");
  const double start = NowSeconds();
  const std::string answer = Receive(fd, 10);
  ::close(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 401 ", 0), 0u) << answer;
  EXPECT_EQ(BodyOf(answer)["error"]["code"], "invalid_api_key");
  EXPECT_NE(answer.find("Connection: close"), std::string::npos);
  EXPECT_LT(NowSeconds() - start, 5.0) << "the server waited for the body";
}

TEST_F(ServerHttpTest, ABodyOverTheLimitIs413NamingTheFlag) {
  const int fd = Connect(port());
  SendAll(fd, fmt::format("POST /v1/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
                          "{}\r\nContent-Length: {}\r\n\r\n",
                          kKey, 2 << 20));
  const std::string answer = Receive(fd, 10);
  ::close(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 413 ", 0), 0u) << answer;
  const json e = BodyOf(answer)["error"];
  EXPECT_EQ(e["code"], "request_too_large");
  EXPECT_NE(e["message"].get<std::string>().find("--max-body-mb"), std::string::npos) << e;
}

TEST_F(ServerHttpTest, ALongPromptPostedAsAFormLikeCurlDashDWorks) {
  // curl -d sends application/x-www-form-urlencoded; the body is JSON all the same. (The
  // test model's context is short, so the body is long by its blanks.)
  const json body = {{"prompt", "Once upon"}, {"max_tokens", 2}, {"temperature", 0}};
  const std::string text = "{" + std::string(20000, ' ') + body.dump().substr(1);
  ASSERT_GT(text.size(), 8192u);
  const std::string answer = Exchange(
      port(), fmt::format("POST /v1/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
                          "{}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                          "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
                          kKey, text.size(), text));
  ASSERT_EQ(answer.rfind("HTTP/1.1 200 ", 0), 0u) << answer.substr(0, 400);
  EXPECT_EQ(BodyOf(answer)["object"], "text_completion");
}

TEST_F(ServerHttpTest, InvalidUtf8IsA400NamingTheByte) {
  const std::string body = "{\"prompt\": \"ab\xff\xfe\", \"max_tokens\": 2}";
  const std::string answer = Exchange(port(), Post("/v1/completions", body));
  ASSERT_EQ(answer.rfind("HTTP/1.1 400 ", 0), 0u) << answer;
  const json e = BodyOf(answer)["error"];
  ASSERT_TRUE(e.is_object()) << answer;
  EXPECT_EQ(e["code"], "invalid_json");
  EXPECT_NE(e["message"].get<std::string>().find("at byte 15"), std::string::npos) << e;
}

TEST_F(ServerHttpTest, UnknownRolesAndTheBearerSchemeInAnyCase) {
  const json bad = {{"messages", {{{"role", "wizard"}, {"content", "hi"}}}}, {"max_tokens", 2}};
  std::string answer = Exchange(port(), Post("/v1/chat/completions", bad.dump()));
  ASSERT_EQ(answer.rfind("HTTP/1.1 400 ", 0), 0u) << answer;
  EXPECT_EQ(BodyOf(answer)["error"]["param"], "messages[0].role");
  answer = Exchange(port(), fmt::format("GET /v1/models HTTP/1.1\r\nHost: t\r\nAuthorization: "
                                        "bearer   {}\r\nConnection: close\r\n\r\n",
                                        kKey));
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 ", 0), 0u) << answer;
}

TEST_F(ServerHttpTest, PipelinedRequestsAreAnsweredInOrder) {
  const json body = {{"prompt", "Once"}, {"max_tokens", 2}, {"temperature", 0}};
  const std::string keep = fmt::format(
      "POST /v1/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Length: "
      "{}\r\n\r\n{}",
      kKey, body.dump().size(), body.dump());
  const std::string answer = Exchange(
      port(), "GET /health HTTP/1.1\r\nHost: t\r\n\r\n" + keep +
                  fmt::format("GET /v1/models HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
                              "{}\r\nConnection: close\r\n\r\n",
                              kKey));
  const size_t health = answer.find("\"ready\":true");
  const size_t completion = answer.find("\"text_completion\"");
  const size_t models = answer.find("\"object\":\"list\"");
  ASSERT_NE(models, std::string::npos) << answer;
  EXPECT_TRUE(health < completion && completion < models) << answer;
}

TEST_F(ServerHttpTest, DuplicateContentLengthAndWrongMethodsAnswerAtOnce) {
  std::string answer = Exchange(
      port(), fmt::format("POST /v1/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
                          "{}\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{{}}",
                          kKey));
  EXPECT_EQ(answer.rfind("HTTP/1.1 400 ", 0), 0u) << answer;
  EXPECT_NE(answer.find("Content-Length"), std::string::npos) << answer;
  const double start = NowSeconds();
  answer = Exchange(port(), "POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx");
  EXPECT_EQ(answer.rfind("HTTP/1.1 405 ", 0), 0u) << answer;
  EXPECT_LT(NowSeconds() - start, 2.0);
}

TEST_F(ServerHttpTest, MaxTokensPastTheContextIsCutAndTheAnswerSaysSo) {
  const json body = {
      {"prompt", "Once"}, {"max_tokens", 100000}, {"temperature", 0}, {"stream", true}};
  const int fd = Connect(port());
  SendAll(fd, Post("/v1/completions", body.dump()));
  const std::string head = Receive(fd, 10, "\r\n\r\n");
  ::close(fd);  // the stream is not needed: the header says it
  ASSERT_EQ(head.rfind("HTTP/1.1 200 ", 0), 0u) << head;
  EXPECT_NE(head.find("X-Meshlm-Max-Tokens: "), std::string::npos) << head;
  EXPECT_NE(head.find("asked 100000"), std::string::npos) << head;
}

// Random and mutated requests, bounded in count: each gets an HTTP answer or a closed
// connection, and the server still answers a good request afterwards.
TEST_F(ServerHttpTest, FuzzedRequestsLeaveTheServerAnswering) {
  const uint32_t seed = std::random_device{}();
  std::mt19937 rng(seed);
  const std::vector<std::string> seeds = {
      "GET /health HTTP/1.1\r\nHost: t\r\n\r\n",
      Post("/v1/completions", R"({"prompt":"a","max_tokens":1})"),
      Post("/v1/chat/completions",
           R"({"messages":[{"role":"user","content":"x"}],"max_tokens":1})"),
      "POST /v1/completions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nAuthorization: "
      "Bearer hardening-key-42\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n",
  };
  constexpr int kCases = 1500;
  int answered = 0, closed = 0;
  for (int i = 0; i < kCases; ++i) {
    std::string r = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 6);
    for (int e = 0; e < edits && !r.empty(); ++e) {
      const size_t at = rng() % r.size();
      switch (rng() % 5) {
        case 0:
          r[at] = static_cast<char>(rng());
          break;  // flip
        case 1:
          r.erase(at, 1 + rng() % 8);
          break;  // cut
        case 2:
          r.insert(at, std::string(1 + rng() % 4, static_cast<char>(rng())));
          break;
        case 3:
          r.insert(at, r.substr(rng() % r.size(), rng() % 40));
          break;  // repeat
        default:
          r.resize(at);
          break;  // truncate
      }
    }
    const int fd = Connect(port());
    ASSERT_GE(fd, 0) << "the server stopped accepting (seed " << seed << ", case " << i << ")";
    SendAll(fd, r);
    ::shutdown(fd, SHUT_WR);  // no more bytes: a partial request ends here
    const std::string answer = Receive(fd, 15);
    ::close(fd);
    if (answer.empty()) {
      ++closed;
    } else {
      ++answered;
      EXPECT_EQ(answer.rfind("HTTP/1.", 0), 0u) << "seed " << seed << ": " << answer.substr(0, 80);
    }
  }
  fmt::print("fuzzed {} requests (seed {}): {} answered, {} closed without an answer\n", kCases,
             seed, answered, closed);
  const std::string ok =
      Exchange(port(), "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200 ", 0), 0u) << ok;
}

TEST(ServerKeyFile, TheKeyComesFromAFileAndStaysOffTheCommandLine) {
  const std::string path = BuildDir() + "/server_http_test.key";
  std::ofstream(path) << "file-key-7\n";
  ServerProcess server({"--api-key-file", path});
  ASSERT_TRUE(server.WaitReady());
  std::ifstream cmdline(fmt::format("/proc/{}/cmdline", server.pid()));
  std::stringstream ss;
  ss << cmdline.rdbuf();
  EXPECT_EQ(ss.str().find("file-key-7"), std::string::npos);
  EXPECT_EQ(
      Exchange(server.port(), "GET /v1/models HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
          .rfind("HTTP/1.1 401 ", 0),
      0u);
  EXPECT_EQ(Exchange(server.port(),
                     "GET /v1/models HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer file-key-7\r\n"
                     "Connection: close\r\n\r\n")
                .rfind("HTTP/1.1 200 ", 0),
            0u);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace meshlm::testing
