// Tests of the HTTP request parser: framing, the refusals a proxy-safe server makes, and
// chunked bodies fed in any split.
#include "server/http_parser.h"

#include <gtest/gtest.h>

#include <random>

namespace meshlm::server::http {
namespace {

struct Parsed {
  Progress progress;
  Request req;
  Head head;
  size_t consumed = 0;
  ParseError err;
};

Parsed Parse(std::string_view text, size_t max_head = 64 << 10) {
  Parsed p;
  p.progress = ParseHead(text, max_head, &p.req, &p.head, &p.consumed, &p.err);
  return p;
}

TEST(HttpParser, ReadsRequestLineHeadersAndLength) {
  const std::string text =
      "POST /v1/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n"
      "X-Thing:   padded value  \r\n\r\n{\"prompt\":1}";
  Parsed p = Parse(text);
  ASSERT_EQ(p.progress, Progress::kDone) << p.err.message;
  EXPECT_EQ(p.req.method, "POST");
  EXPECT_EQ(p.req.target, "/v1/completions?x=1");
  EXPECT_EQ(p.req.path, "/v1/completions");
  EXPECT_EQ(p.req.minor_version, 1);
  ASSERT_NE(p.req.Header("x-thing"), nullptr);
  EXPECT_EQ(*p.req.Header("x-thing"), "padded value");
  EXPECT_EQ(p.head.body, Head::Body::kLength);
  EXPECT_EQ(p.head.content_length, 12u);
  EXPECT_TRUE(p.head.keep_alive);
  EXPECT_EQ(text.substr(p.consumed), "{\"prompt\":1}");
}

TEST(HttpParser, WaitsForTheBlankLineAndKnowsEveryPrefixIsIncomplete) {
  const std::string text = "GET /health HTTP/1.1\r\nHost: a\r\n\r\n";
  for (size_t n = 0; n < text.size(); ++n) {
    EXPECT_EQ(Parse(text.substr(0, n)).progress, Progress::kNeedMore) << n;
  }
  EXPECT_EQ(Parse(text).progress, Progress::kDone);
  // A line that cannot become a request line is refused before its end arrives.
  Parsed tls = Parse("\x16\x03\x01\x02");
  ASSERT_EQ(tls.progress, Progress::kBad);
  EXPECT_NE(tls.err.message.find("TLS"), std::string::npos);
  EXPECT_EQ(Parse(std::string_view("GET /\0", 6)).progress, Progress::kBad);
}

TEST(HttpParser, PipelinedRequestsParseOneAfterAnother) {
  const std::string a = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string b = "GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  Parsed p = Parse(a + b);
  ASSERT_EQ(p.progress, Progress::kDone);
  EXPECT_EQ(p.req.path, "/a");
  EXPECT_EQ(p.consumed, a.size());
  Parsed q = Parse(std::string_view(a + b).substr(p.consumed));
  ASSERT_EQ(q.progress, Progress::kDone);
  EXPECT_EQ(q.req.path, "/b");
  EXPECT_FALSE(q.head.keep_alive);
}

TEST(HttpParser, RefusesAmbiguousFraming) {
  struct Case {
    const char* text;
    int status;
    const char* says;
  };
  const Case cases[] = {
      {"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400,
       "more than one Content-Length"},
      {"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
       "both Content-Length and Transfer-Encoding"},
      {"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", 400, "not a number"},
      {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "not a number"},
      {"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400, "not a number"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "not supported"},
      {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "HTTP/1.0"},
      {"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400, "folded"},
      {"GET / HTTP/1.1\r\nBad Name: a\r\n\r\n", 400, "malformed header"},
      {"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400, "bare CR"},
      {"GET / HTTP/1.1\r\nX: a\x01\r\n\r\n", 400, "control"},
      {"GET / HTTP/2.0\r\n\r\n", 505, "HTTP/2.0"},
      {"GET / FTP/1.1\r\n\r\n", 400, "HTTP version"},
      {"GET  / HTTP/1.1\r\n\r\n", 400, "request line"},
      {"G(T / HTTP/1.1\r\n\r\n", 400, "method"},
      {"GET / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", 417, "Expect"},
  };
  for (const Case& c : cases) {
    Parsed p = Parse(c.text);
    ASSERT_EQ(p.progress, Progress::kBad) << c.text;
    EXPECT_EQ(p.err.status, c.status) << c.text;
    EXPECT_NE(p.err.message.find(c.says), std::string::npos) << c.text << " -> " << p.err.message;
  }
}

TEST(HttpParser, HeadOverTheLimitIs431EvenBeforeItEnds) {
  std::string text = "GET / HTTP/1.1\r\nX: " + std::string(2000, 'a');
  Parsed p = Parse(text, 1024);
  ASSERT_EQ(p.progress, Progress::kBad);
  EXPECT_EQ(p.err.status, 431);
  EXPECT_EQ(Parse(text + "\r\n\r\n", 1024).err.status, 431);
  EXPECT_EQ(Parse(text + "\r\n\r\n", 4096).progress, Progress::kDone);
}

TEST(HttpParser, ConnectionRulesOfEachVersion) {
  EXPECT_FALSE(Parse("GET / HTTP/1.0\r\n\r\n").head.keep_alive);
  EXPECT_TRUE(Parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").head.keep_alive);
  EXPECT_TRUE(Parse("GET / HTTP/1.1\r\n\r\n").head.keep_alive);
  EXPECT_FALSE(Parse("GET / HTTP/1.1\r\nConnection: upgrade, Close\r\n\r\n").head.keep_alive);
  EXPECT_TRUE(Parse("POST / HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n").head.expect_continue);
  EXPECT_EQ(Parse("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").head.body, Head::Body::kNone);
  EXPECT_EQ(Parse("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n").head.body,
            Head::Body::kChunked);
}

// Chunked encoding written independently of the decoder: random chunk sizes, extensions
// and a trailer.
std::string Chunk(const std::string& data, std::mt19937& rng) {
  std::string out;
  size_t i = 0;
  while (i < data.size()) {
    const size_t n = std::min<size_t>(data.size() - i, 1 + rng() % 700);
    char size[32];
    std::snprintf(size, sizeof(size), rng() % 2 ? "%zx" : "%zX", n);
    out += size;
    if (rng() % 4 == 0) out += ";ext=1";
    out += "\r\n" + data.substr(i, n) + "\r\n";
    i += n;
  }
  out += "0\r\n";
  if (rng() % 2) out += "X-Trailer: t\r\n";
  out += "\r\n";
  return out;
}

TEST(HttpParser, ChunkedBodiesDecodeTheSameInAnySplit) {
  std::mt19937 rng(std::random_device{}());
  for (int round = 0; round < 50; ++round) {
    std::string data(rng() % 5000, '\0');
    for (char& c : data) c = static_cast<char>(rng());
    const std::string wire = Chunk(data, rng) + "NEXT";
    ChunkedDecoder d(1 << 20);
    std::string body;
    size_t pos = 0;
    Progress p = Progress::kNeedMore;
    std::string pending;  // what the decoder has not consumed yet, like a connection's buffer
    while (p == Progress::kNeedMore && pos < wire.size()) {
      const size_t n = std::min<size_t>(wire.size() - pos, 1 + rng() % 300);
      pending += wire.substr(pos, n);
      pos += n;
      size_t used = 0;
      ParseError err;
      p = d.Feed(pending, &body, &used, &err);
      ASSERT_NE(p, Progress::kBad) << err.message;
      pending.erase(0, used);
    }
    ASSERT_EQ(p, Progress::kDone);
    EXPECT_EQ(body, data);
    EXPECT_EQ(pending + wire.substr(pos), "NEXT");
  }
}

TEST(HttpParser, ChunkedRefusals) {
  auto feed = [](const std::string& wire, size_t max) {
    ChunkedDecoder d(max);
    std::string body;
    size_t used = 0;
    ParseError err;
    const Progress p = d.Feed(wire, &body, &used, &err);
    return std::make_pair(p, err);
  };
  EXPECT_EQ(feed("10\r\n0123456789abcdef\r\n0\r\n\r\n", 15).second.status, 413);
  EXPECT_EQ(feed("zz\r\n", 100).first, Progress::kBad);
  EXPECT_EQ(feed("3\r\nabcd\r\n", 100).first, Progress::kBad);
  EXPECT_EQ(feed("3\nabc\r\n", 100).first, Progress::kBad);
  EXPECT_EQ(feed("fffffffffffffffff\r\n", 100).first, Progress::kBad);
  EXPECT_EQ(feed("3\r\nabc\r\n0\r\n\r\n", 100).first, Progress::kDone);
}

// Mutated heads, bounded in count: the parser never reads past its input (run it under
// a sanitizer to see), and a head parsed whole gives what parsing every prefix first gives.
TEST(HttpParser, FuzzedHeadsParseTheSameWholeAndInPieces) {
  const uint32_t seed = std::random_device{}();
  std::mt19937 rng(seed);
  const std::string seeds[] = {
      "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n"
      "Authorization: Bearer k\r\nExpect: 100-continue\r\n\r\n",
      "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
  };
  constexpr int kCases = 20000;
  int done = 0, bad = 0, more = 0;
  for (int i = 0; i < kCases; ++i) {
    std::string r = seeds[rng() % 3];
    for (int e = 1 + static_cast<int>(rng() % 4); e > 0 && !r.empty(); --e) {
      const size_t at = rng() % r.size();
      switch (rng() % 4) {
        case 0:
          r[at] = static_cast<char>(rng());
          break;
        case 1:
          r.erase(at, 1 + rng() % 6);
          break;
        case 2:
          r.insert(at, r.substr(rng() % r.size(), rng() % 30));
          break;
        default:
          r.insert(at, 1, "\r\n:, \t0"[rng() % 8]);
          break;
      }
    }
    const Parsed whole = Parse(r, 256);
    done += whole.progress == Progress::kDone;
    bad += whole.progress == Progress::kBad;
    more += whole.progress == Progress::kNeedMore;
    // Every shorter prefix is either incomplete or refused the same way; none completes
    // with a different request.
    const size_t cut = rng() % (r.size() + 1);
    const Parsed part = Parse(std::string_view(r).substr(0, cut), 256);
    if (part.progress == Progress::kDone) {
      ASSERT_EQ(whole.progress, Progress::kDone) << "seed " << seed;
      EXPECT_EQ(part.consumed, whole.consumed) << "seed " << seed;
      EXPECT_EQ(part.req.headers, whole.req.headers) << "seed " << seed;
    }
    if (whole.progress == Progress::kDone) {
      EXPECT_LE(whole.consumed, r.size());
      EXPECT_FALSE(whole.req.method.empty());
    }
  }
  std::printf("fuzzed %d heads (seed %u): %d parsed, %d refused, %d incomplete\n", kCases, seed,
              done, bad, more);
}

}  // namespace
}  // namespace meshlm::server::http
