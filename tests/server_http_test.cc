// `meshlm serve` against careless and hostile HTTP clients, over loopback: the key is
// checked before a body is read, bodies have a limit, bad UTF-8 is a 400, pipelined
// requests are answered in order, and a bounded fuzz run of malformed requests leaves
// the server answering. Also /tokenize and /detokenize against the model's tokenizer,
// and CORS (--allow-origin) on every kind of answer.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "base/clock.h"
#include "engine/model_tokenizer.h"
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

// The value of the first header `name` in an answer's head ("" when absent); the name is
// matched in any case.
std::string HeaderOf(const std::string& answer, const std::string& name) {
  const std::string head = answer.substr(0, answer.find("\r\n\r\n"));
  std::string lower_head = head, lower_name = "\r\n" + name + ":";
  for (char& c : lower_head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (char& c : lower_name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const size_t at = lower_head.find(lower_name);
  if (at == std::string::npos) return "";
  size_t begin = at + lower_name.size();
  while (begin < head.size() && head[begin] == ' ') ++begin;
  return head.substr(begin, head.find("\r\n", begin) - begin);
}

bool HasAnyCorsHeader(const std::string& answer) {
  std::string lower = answer.substr(0, answer.find("\r\n\r\n"));
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower.find("\r\naccess-control-") != std::string::npos ||
         lower.find("\r\nvary:") != std::string::npos;
}

// The tokenizer the server loads, loaded here directly.
const Tokenizer& ModelTokenizer(const std::string& model = ServerTestModel()) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& slot = cache[model];
  if (!slot) {
    auto loaded = engine::LoadModelTokenizer(model);
    EXPECT_TRUE(loaded.ok() && *loaded)
        << (loaded.ok() ? "no tokenizer" : loaded.status().message());
    slot = loaded.ok() ? std::move(loaded).value() : nullptr;
  }
  return *slot;
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

TEST_F(ServerHttpTest, TokenizeAndDetokenizeAreTheModelsTokenizer) {
  const Tokenizer& t = ModelTokenizer();
  const std::string text = "Once upon a time, a llama 🦙 said <|im_end|> hello";
  for (const bool add_special : {false, true}) {
    const json body = {{"content", text}, {"add_special", add_special}};
    const std::string answer = Exchange(port(), Post("/tokenize", body.dump()));
    ASSERT_EQ(answer.rfind("HTTP/1.1 200 ", 0), 0u) << answer;
    const std::vector<int32_t> ids = BodyOf(answer)["tokens"].get<std::vector<int32_t>>();
    EXPECT_EQ(ids, t.Encode(text, add_special).value()) << "add_special " << add_special;
    const std::string back = Exchange(port(), Post("/detokenize", json{{"tokens", ids}}.dump()));
    ASSERT_EQ(back.rfind("HTTP/1.1 200 ", 0), 0u) << back;
    EXPECT_EQ(BodyOf(back)["content"], t.Decode(ids));
    if (!add_special) {
      EXPECT_EQ(BodyOf(back)["content"], text);
    }
  }
}

TEST_F(ServerHttpTest, PiecesConcatenateToTheText) {
  const Tokenizer& t = ModelTokenizer();
  const std::string text = "Pieces: 🦙 and ünïcödé, then <|im_start|>.";
  const json body = {{"content", text}, {"with_pieces", true}};
  const std::string answer = Exchange(port(), Post("/tokenize", body.dump()));
  ASSERT_EQ(answer.rfind("HTTP/1.1 200 ", 0), 0u) << answer;
  const json tokens = BodyOf(answer)["tokens"];
  ASSERT_TRUE(tokens.is_array()) << answer;
  std::vector<int32_t> ids;
  std::string joined;
  for (const json& token : tokens) {
    ids.push_back(token["id"].get<int32_t>());
    const json& piece = token["piece"];
    if (piece.is_string()) {
      joined += piece.get<std::string>();
    } else {
      // A part of a character: its bytes.
      ASSERT_TRUE(piece.is_array()) << token;
      for (const json& b : piece) joined += static_cast<char>(b.get<int>());
    }
  }
  EXPECT_EQ(ids, t.Encode(text, false).value());
  EXPECT_EQ(joined, text);
}

// A copy of the test model whose tokenizer puts its BOS in front of every text, as Llama's
// does (the test model's own adds nothing).
TEST(ServerTokenize, AddSpecialAddsTheModelsBos) {
  const std::string model = BuildDir() + "/server_http_bos_model";
  std::filesystem::remove_all(model);
  std::filesystem::create_directories(model);
  for (const char* f :
       {"config.json", "model.safetensors", "generation_config.json", "tokenizer_config.json"}) {
    const std::filesystem::path from = std::filesystem::path(ServerTestModel()) / f;
    if (std::filesystem::exists(from)) std::filesystem::create_symlink(from, model + "/" + f);
  }
  std::ifstream in(ServerTestModel() + "/tokenizer.json");
  json tokenizer = json::parse(in);
  const std::string bos = "<|endoftext|>";
  int32_t bos_id = -1;
  for (const json& a : tokenizer["added_tokens"]) {
    if (a["content"] == bos) bos_id = a["id"];
  }
  ASSERT_GE(bos_id, 0) << "the test model has no " << bos;
  tokenizer["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single",
       {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"pair", json::array()},
      {"special_tokens", {{bos, {{"id", bos}, {"ids", {bos_id}}, {"tokens", {bos}}}}}}};
  std::ofstream(model + "/tokenizer.json") << tokenizer.dump();
  const Tokenizer& t = ModelTokenizer(model);
  ServerProcess server({}, {}, model);
  ASSERT_TRUE(server.WaitReady());
  const std::string text = "Once upon a time";
  for (const bool add_special : {false, true}) {
    const std::string answer =
        Exchange(server.port(),
                 fmt::format("POST /tokenize HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n"
                             "Connection: close\r\n\r\n{}",
                             json{{"content", text}, {"add_special", add_special}}.dump().size(),
                             json{{"content", text}, {"add_special", add_special}}.dump()));
    ASSERT_EQ(answer.rfind("HTTP/1.1 200 ", 0), 0u) << answer;
    const auto ids = BodyOf(answer)["tokens"].get<std::vector<int32_t>>();
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids.front() == bos_id, add_special) << BodyOf(answer);
    EXPECT_EQ(ids, t.Encode(text, add_special).value());
  }
}

TEST_F(ServerHttpTest, BadTokenizeBodiesAre400NamingTheField) {
  struct Case {
    const char* path;
    std::string body;
    std::string param;  // "" -> null
  };
  const size_t vocab = ModelTokenizer().vocab_size();
  const Case cases[] = {
      {"/tokenize", "{\"content\": ", ""},
      {"/tokenize", "{}", "content"},
      {"/tokenize", R"({"content": ["a"]})", "content"},
      {"/tokenize", R"({"content": "a", "add_special": "yes"})", "add_special"},
      {"/tokenize", R"({"content": "a", "with_pieces": 1})", "with_pieces"},
      {"/detokenize", "[1, 2]", ""},
      {"/detokenize", R"({"content": "a"})", "tokens"},
      {"/detokenize", R"({"tokens": "1 2"})", "tokens"},
      {"/detokenize", R"({"tokens": [1, "2"]})", "tokens[1]"},
      {"/detokenize", fmt::format(R"({{"tokens": [1, {}]}})", vocab), "tokens[1]"},
      {"/detokenize", R"({"tokens": [-3]})", "tokens[0]"},
  };
  for (const Case& c : cases) {
    const std::string answer = Exchange(port(), Post(c.path, c.body));
    ASSERT_EQ(answer.rfind("HTTP/1.1 400 ", 0), 0u) << c.path << " " << c.body << "\n" << answer;
    const json e = BodyOf(answer)["error"];
    ASSERT_TRUE(e.is_object()) << answer;
    EXPECT_EQ(e["type"], "invalid_request_error");
    if (c.param.empty()) {
      EXPECT_EQ(e["code"], "invalid_json") << c.body;
    } else {
      EXPECT_EQ(e["param"], c.param) << c.body << "\n" << e;
      EXPECT_NE(e["message"].get<std::string>().find("'" + c.param + "'"), std::string::npos) << e;
    }
  }
  const std::string range =
      Exchange(port(), Post("/detokenize", fmt::format(R"({{"tokens": [{}]}})", vocab + 5)));
  EXPECT_NE(
      BodyOf(range)["error"]["message"].get<std::string>().find(fmt::format("0..{}", vocab - 1)),
      std::string::npos)
      << range;
}

TEST_F(ServerHttpTest, TokenizeTakesPostAndTheKeyLikeEveryRoute) {
  for (const char* path : {"/tokenize", "/detokenize"}) {
    std::string answer =
        Exchange(port(), fmt::format("GET {} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\n"
                                     "Connection: close\r\n\r\n",
                                     path, kKey));
    EXPECT_EQ(answer.rfind("HTTP/1.1 405 ", 0), 0u) << answer;
    EXPECT_EQ(HeaderOf(answer, "Allow"), "POST") << answer;
    answer = Exchange(port(), fmt::format("POST {} HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n"
                                          "Connection: close\r\n\r\n{{}}",
                                          path));
    EXPECT_EQ(answer.rfind("HTTP/1.1 401 ", 0), 0u) << answer;
  }
}

TEST_F(ServerHttpTest, CorsIsOffByDefault) {
  const std::string origin = "Origin: http://localhost:3000\r\n";
  std::string answer = Exchange(port(), Post("/tokenize", R"({"content": "a"})", origin));
  ASSERT_EQ(answer.rfind("HTTP/1.1 200 ", 0), 0u) << answer;
  EXPECT_FALSE(HasAnyCorsHeader(answer)) << answer;
  answer = Exchange(port(), Post("/tokenize", "{}", origin));
  EXPECT_FALSE(HasAnyCorsHeader(answer)) << answer;
  // A preflight is refused as any other method a path does not take, and says how to
  // turn CORS on.
  answer = Exchange(port(), "OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: t\r\n" + origin +
                                "Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(answer.rfind("HTTP/1.1 405 ", 0), 0u) << answer;
  EXPECT_FALSE(HasAnyCorsHeader(answer)) << answer;
  EXPECT_NE(BodyOf(answer)["error"]["message"].get<std::string>().find("--allow-origin"),
            std::string::npos)
      << answer;
}

// A server that lets two pages call it (one flag with a list, one repeated), with a key.
class ServerCorsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess({"--api-key", kKey, "--max-body-mb", "1", "--allow-origin",
                                 "http://page.test:3000, https://other.test", "--allow-origin",
                                 "http://third.test"});
    ASSERT_TRUE(server_->WaitReady()) << "server did not become ready";
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static int port() { return server_->port(); }
  static ServerProcess* server_;
};
ServerProcess* ServerCorsTest::server_ = nullptr;

constexpr const char* kPage = "http://page.test:3000";

TEST_F(ServerCorsTest, AListedOriginIsEchoedOnAnswersAndErrors) {
  const std::string origin = fmt::format("Origin: {}\r\n", kPage);
  const std::string keyless_get =
      "GET /v1/models HTTP/1.1\r\nHost: t\r\n" + origin + "Connection: close\r\n\r\n";
  const std::string answers[] = {
      Exchange(port(), Post("/tokenize", R"({"content": "a"})", origin)),            // 200
      Exchange(port(), Post("/detokenize", R"({"tokens": "x"})", origin)),           // 400
      Exchange(port(), keyless_get),                                                 // 401
      Exchange(port(), Post("/v1/nothing", "{}", origin)),                           // 404
      Exchange(port(), Post("/health", "{}", origin)),                               // 405
      Exchange(port(), Post("/v1/completions", std::string(2 << 20, ' '), origin)),  // 413
      Exchange(port(),
               "GET /health HTTP/1.1\r\nHost: t\r\nOrigin: https://other.test\r\n"
               "Connection: close\r\n\r\n"),
      Exchange(port(),
               "GET /health HTTP/1.1\r\nHost: t\r\nOrigin: http://third.test\r\n"
               "Connection: close\r\n\r\n"),
  };
  const char* statuses[] = {"200", "400", "401", "404", "405", "413", "200", "200"};
  for (size_t i = 0; i < std::size(answers); ++i) {
    const std::string& a = answers[i];
    EXPECT_EQ(a.rfind(fmt::format("HTTP/1.1 {} ", statuses[i]), 0), 0u) << a;
    const std::string allowed = HeaderOf(a, "Access-Control-Allow-Origin");
    EXPECT_EQ(allowed, i < 6 ? kPage : i == 6 ? "https://other.test" : "http://third.test") << a;
    EXPECT_EQ(HeaderOf(a, "Vary"), "Origin") << a;
  }
  EXPECT_EQ(HeaderOf(answers[4], "Allow"), "GET, OPTIONS") << answers[4];
}

TEST_F(ServerCorsTest, AnOriginNotListedGetsNoAllowOrigin) {
  for (const char* other : {"http://page.test:3001", "http://evil.test", "https://page.test:3000",
                            "http://page.test:3000.evil.test"}) {
    const std::string origin = fmt::format("Origin: {}\r\n", other);
    std::string answer = Exchange(port(), Post("/tokenize", R"({"content": "a"})", origin));
    ASSERT_EQ(answer.rfind("HTTP/1.1 200 ", 0), 0u) << answer;
    EXPECT_EQ(HeaderOf(answer, "Access-Control-Allow-Origin"), "") << answer;
    answer = Exchange(port(), "OPTIONS /tokenize HTTP/1.1\r\nHost: t\r\n" + origin +
                                  "Access-Control-Request-Method: POST\r\nConnection: "
                                  "close\r\n\r\n");
    EXPECT_EQ(HeaderOf(answer, "Access-Control-Allow-Origin"), "") << answer;
    EXPECT_EQ(HeaderOf(answer, "Access-Control-Allow-Methods"), "") << answer;
  }
}

TEST_F(ServerCorsTest, APreflightNeedsNoKey) {
  for (const auto& [path, method] :
       {std::pair{"/v1/chat/completions", "POST"}, {"/tokenize", "POST"}, {"/v1/models", "GET"}}) {
    const std::string answer =
        Exchange(port(), fmt::format("OPTIONS {} HTTP/1.1\r\nHost: t\r\nOrigin: {}\r\n"
                                     "Access-Control-Request-Method: {}\r\n"
                                     "Access-Control-Request-Headers: authorization, content-type, "
                                     "x-stainless-lang\r\nConnection: close\r\n\r\n",
                                     path, kPage, method));
    ASSERT_EQ(answer.rfind("HTTP/1.1 204 ", 0), 0u) << answer;
    EXPECT_EQ(HeaderOf(answer, "Access-Control-Allow-Origin"), kPage) << answer;
    EXPECT_EQ(HeaderOf(answer, "Access-Control-Allow-Methods"), fmt::format("{}, OPTIONS", method))
        << answer;
    EXPECT_EQ(HeaderOf(answer, "Access-Control-Allow-Headers"),
              "authorization, content-type, x-stainless-lang")
        << answer;
    EXPECT_NE(HeaderOf(answer, "Access-Control-Max-Age"), "") << answer;
    EXPECT_EQ(HeaderOf(answer, "Content-Length"), "") << answer;
  }
  // Without Access-Control-Request-Headers, the headers an API call needs.
  const std::string answer =
      Exchange(port(), fmt::format("OPTIONS /tokenize HTTP/1.1\r\nHost: t\r\nOrigin: {}\r\n"
                                   "Connection: close\r\n\r\n",
                                   kPage));
  EXPECT_EQ(HeaderOf(answer, "Access-Control-Allow-Headers"), "Authorization, Content-Type")
      << answer;
}

TEST_F(ServerCorsTest, AStreamCarriesTheHeader) {
  const json body = {
      {"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 3}, {"stream", true}};
  const std::string answer = Exchange(
      port(), Post("/v1/chat/completions", body.dump(), fmt::format("Origin: {}\r\n", kPage)));
  ASSERT_EQ(answer.rfind("HTTP/1.1 200 ", 0), 0u) << answer;
  EXPECT_EQ(HeaderOf(answer, "Content-Type"), "text/event-stream") << answer;
  EXPECT_EQ(HeaderOf(answer, "Access-Control-Allow-Origin"), kPage) << answer;
  EXPECT_NE(answer.find("data: [DONE]"), std::string::npos) << answer;
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
