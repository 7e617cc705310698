// The HTTP/1.1 request parser under meshlm's server: the request line, headers and body
// framing (Content-Length or chunked), each with a limit.
//
// Goals: pure functions over bytes (the connection code and the fuzz test share them);
// every malformed or ambiguous request is refused with the status a proxy-safe server
// gives (duplicate Content-Length, Content-Length with Transfer-Encoding, folded headers
// are 400, not guessed at). Non-goals: HTTP/2, absolute-form targets beyond keeping them,
// percent-decoding (the routes are plain paths).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meshlm::server::http {

struct Request {
  std::string method;
  std::string target;  // as sent
  std::string path;    // target before any '?'
  int minor_version = 1;
  /// Names in lower case, values without surrounding blanks, in the order sent.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string remote_addr;
  int remote_port = 0;

  /// The first header of that (lower-case) name, or null.
  const std::string* Header(std::string_view name) const;
};

/// How the body follows the head, and what the connection does after.
struct Head {
  enum class Body { kNone, kLength, kChunked };
  Body body = Body::kNone;
  uint64_t content_length = 0;
  bool keep_alive = true;
  bool expect_continue = false;
};

struct ParseError {
  int status = 400;  // 400, 413, 417, 431, 501 or 505
  std::string message;
};

enum class Progress { kNeedMore, kDone, kBad };

/// Looks for a whole request head at the front of `buf`. kDone fills *req (method, target,
/// path, version, headers), *head and *consumed (the head's bytes, blank line included);
/// kNeedMore when the blank line has not arrived and `buf` is within `max_head_bytes`;
/// kBad fills *err.
Progress ParseHead(std::string_view buf, size_t max_head_bytes, Request* req, Head* head,
                   size_t* consumed, ParseError* err);

/// Decodes a chunked body as its bytes arrive; not thread-safe.
class ChunkedDecoder {
 public:
  explicit ChunkedDecoder(size_t max_body) : max_body_(max_body) {}
  /// Consumes a prefix of `buf` (*used bytes), appending the data to *body. kDone once the
  /// last chunk and trailers are in (bytes after them are not consumed); kNeedMore when it
  /// wants more; kBad (413 past max_body, else 400) fills *err.
  Progress Feed(std::string_view buf, std::string* body, size_t* used, ParseError* err);

 private:
  enum class State { kSize, kData, kDataEnd, kTrailer, kDone };
  State state_ = State::kSize;
  size_t max_body_;
  uint64_t left_ = 0;  // data bytes still to come in this chunk
  size_t trailer_bytes_ = 0;
  std::string line_;  // a size or trailer line being gathered
};

}  // namespace meshlm::server::http
