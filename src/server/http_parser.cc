// HTTP/1.1 request heads and chunked bodies (RFC 9112), strictly.
#include "server/http_parser.h"

#include <fmt/format.h>

#include <algorithm>

namespace meshlm::server::http {
namespace {

constexpr size_t kMaxChunkLine = 4096;  // a size line with extensions, or one trailer
constexpr size_t kMaxTrailerBytes = 16 << 10;

bool IsTokenChar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool IsToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return IsTokenChar(c); });
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// True when the comma-separated list `value` holds `token` (case-insensitively).
bool ListHas(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    const std::string_view item = Trim(value.substr(0, comma));
    if (Lower(item) == token) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

Progress Bad(ParseError* err, int status, std::string message) {
  err->status = status;
  err->message = std::move(message);
  return Progress::kBad;
}

// The first byte of `s` that a request line or header may not hold (controls other than
// tab, and DEL), or npos.
size_t FindControl(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return i;
  }
  return std::string_view::npos;
}

Progress ParseRequestLine(std::string_view line, Request* req, ParseError* err) {
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return Bad(err, 400, "the request line is not 'METHOD TARGET HTTP/1.1'");
  }
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method)) return Bad(err, 400, "the request method is not a token");
  if (target.empty() || FindControl(target) != std::string_view::npos ||
      target.find('\t') != std::string_view::npos) {
    return Bad(err, 400, "the request target is empty or holds control characters");
  }
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9') {
    return Bad(err, 400, "the request line does not end in an HTTP version");
  }
  if (version[5] != '1') {
    return Bad(err, 505, fmt::format("{} is not supported: this server speaks HTTP/1.1", version));
  }
  req->method = std::string(method);
  req->target = std::string(target);
  req->path = std::string(target.substr(0, target.find('?')));
  req->minor_version = version[7] - '0';
  return Progress::kDone;
}

}  // namespace

const std::string* Request::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return &v;
  }
  return nullptr;
}

Progress ParseHead(std::string_view buf, size_t max_head_bytes, Request* req, Head* head,
                   size_t* consumed, ParseError* err) {
  // Blank lines before a request are skipped (RFC 9112 2.2): some clients send an
  // extra CRLF after a body.
  size_t start = 0;
  while (buf.size() >= start + 2 && buf[start] == '\r' && buf[start + 1] == '\n') start += 2;
  const size_t end = buf.find("\r\n\r\n", start);
  // A request line that cannot become valid is refused now, not at the head deadline.
  const std::string_view line0 = buf.substr(start, buf.find("\r\n", start) - start);
  if (line0.size() >= 2 && line0[0] == '\x16' && line0[1] == '\x03') {
    return Bad(err, 400, "the request looks like a TLS handshake: this port speaks plain HTTP");
  }
  for (size_t i = 0; i < line0.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(line0[i]);
    const bool last = i + 1 == line0.size();
    if ((c < 0x20 && !(c == '\r' && last)) || c >= 0x7f) {
      return Bad(err, 400, "the request line holds bytes no HTTP request line has");
    }
  }
  if (end == std::string_view::npos) {
    if (buf.size() - start > max_head_bytes) {
      return Bad(err, 431, fmt::format("the request head is over {} bytes", max_head_bytes));
    }
    return Progress::kNeedMore;
  }
  if (end + 4 - start > max_head_bytes) {
    return Bad(err, 431, fmt::format("the request head is over {} bytes", max_head_bytes));
  }
  const std::string_view text = buf.substr(start, end + 2 - start);  // every line with CRLF
  *req = Request{};
  *head = Head{};
  size_t pos = 0;
  bool first = true;
  size_t lengths = 0;
  bool chunked = false, has_te = false;
  while (pos < text.size()) {
    const size_t eol = text.find("\r\n", pos);
    const std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 2;
    if (line.find('\r') != std::string_view::npos || line.find('\n') != std::string_view::npos) {
      return Bad(err, 400, "a bare CR or LF inside the request head");
    }
    if (first) {
      first = false;
      if (ParseRequestLine(line, req, err) != Progress::kDone) return Progress::kBad;
      continue;
    }
    if (line.front() == ' ' || line.front() == '\t') {
      return Bad(err, 400, "folded header lines are not accepted");
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || !IsToken(line.substr(0, colon))) {
      return Bad(err, 400,
                 fmt::format("malformed header line '{}'",
                             line.substr(0, std::min<size_t>(line.size(), 64))));
    }
    const std::string_view value = Trim(line.substr(colon + 1));
    if (FindControl(value) != std::string_view::npos) {
      return Bad(err, 400,
                 fmt::format("header '{}' holds control characters", line.substr(0, colon)));
    }
    std::string name = Lower(line.substr(0, colon));
    if (name == "content-length") {
      if (++lengths > 1) {
        return Bad(err, 400, "more than one Content-Length header");
      }
      if (value.empty() || value.size() > 18 ||
          !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return Bad(err, 400,
                   fmt::format("Content-Length '{}' is not a number of bytes",
                               value.substr(0, std::min<size_t>(value.size(), 32))));
      }
      head->content_length = std::stoull(std::string(value));
    } else if (name == "transfer-encoding") {
      if (has_te) return Bad(err, 400, "more than one Transfer-Encoding header");
      has_te = true;
      if (Lower(value) != "chunked") {
        return Bad(err, 501,
                   fmt::format("Transfer-Encoding '{}' is not supported (only chunked)",
                               value.substr(0, std::min<size_t>(value.size(), 32))));
      }
      chunked = true;
    } else if (name == "connection") {
      if (ListHas(value, "close")) head->keep_alive = false;
    } else if (name == "expect") {
      if (Lower(value) != "100-continue") {
        return Bad(err, 417,
                   fmt::format("Expect '{}' is not supported",
                               value.substr(0, std::min<size_t>(value.size(), 32))));
      }
      head->expect_continue = true;
    }
    req->headers.emplace_back(std::move(name), std::string(value));
  }
  if (chunked && lengths > 0) {
    return Bad(err, 400, "both Content-Length and Transfer-Encoding are set");
  }
  if (chunked && req->minor_version == 0) {
    return Bad(err, 400, "Transfer-Encoding is not allowed in an HTTP/1.0 request");
  }
  if (req->minor_version == 0) {
    const std::string* c = req->Header("connection");
    head->keep_alive = c != nullptr && ListHas(*c, "keep-alive") && !ListHas(*c, "close");
  }
  head->body = chunked                                   ? Head::Body::kChunked
               : lengths > 0 && head->content_length > 0 ? Head::Body::kLength
                                                         : Head::Body::kNone;
  *consumed = end + 4;
  return Progress::kDone;
}

Progress ChunkedDecoder::Feed(std::string_view buf, std::string* body, size_t* used,
                              ParseError* err) {
  size_t i = 0;
  auto take_line = [&](std::string_view* line) -> Progress {
    // Gathers up to CRLF into line_; kDone with the line (CRLF removed).
    while (i < buf.size()) {
      const char c = buf[i++];
      line_.push_back(c);
      if (line_.size() > kMaxChunkLine) return Bad(err, 400, "a chunk size line is too long");
      if (c == '\n') {
        if (line_.size() < 2 || line_[line_.size() - 2] != '\r') {
          return Bad(err, 400, "a chunk line does not end in CRLF");
        }
        line_.resize(line_.size() - 2);
        *line = line_;
        return Progress::kDone;
      }
    }
    return Progress::kNeedMore;
  };
  while (state_ != State::kDone) {
    if (state_ == State::kData) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left_, buf.size() - i));
      body->append(buf.data() + i, n);
      i += n;
      left_ -= n;
      if (left_ > 0) break;
      state_ = State::kDataEnd;
      continue;
    }
    std::string_view line;
    const Progress p = take_line(&line);
    if (p == Progress::kBad) return p;
    if (p == Progress::kNeedMore) break;
    if (state_ == State::kSize) {
      const std::string_view size = Trim(line.substr(0, line.find(';')));
      uint64_t v = 0;
      if (size.empty() || size.size() > 15) return Bad(err, 400, "a chunk size is not hex");
      for (char c : size) {
        const int d = c >= '0' && c <= '9'   ? c - '0'
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                             : -1;
        if (d < 0) return Bad(err, 400, "a chunk size is not hex");
        v = v * 16 + static_cast<uint64_t>(d);
      }
      if (v > max_body_ - std::min<size_t>(max_body_, body->size())) {
        return Bad(err, 413, fmt::format("the body is over the limit of {} bytes", max_body_));
      }
      left_ = v;
      state_ = v == 0 ? State::kTrailer : State::kData;
    } else if (state_ == State::kDataEnd) {
      if (!line.empty()) return Bad(err, 400, "chunk data is longer than its size");
      state_ = State::kSize;
    } else {  // kTrailer: lines until an empty one
      trailer_bytes_ += line.size();
      if (trailer_bytes_ > kMaxTrailerBytes) return Bad(err, 400, "the trailers are too long");
      if (line.empty()) state_ = State::kDone;
    }
    line_.clear();
  }
  *used = i;
  return state_ == State::kDone ? Progress::kDone : Progress::kNeedMore;
}

}  // namespace meshlm::server::http
