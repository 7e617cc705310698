// CorsPolicy: --allow-origin values, origin matching and the CORS response headers.
#include "server/cors.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace meshlm::server {
namespace {

// How long a browser may reuse a preflight's answer: Chromium's cap (Firefox allows a day).
// A stale preflight cannot let an origin through: the response itself still needs its
// Access-Control-Allow-Origin.
constexpr const char* kMaxAgeSeconds = "7200";
// What a page sends to the API besides the CORS-safelisted headers.
constexpr const char* kDefaultAllowHeaders = "Authorization, Content-Type";
// Response headers a page may read besides the safelisted ones: the retry hint of a 429 /
// 503 and the note on a cut max_tokens.
constexpr const char* kExposeHeaders = "Retry-After, X-Meshlm-Max-Tokens, X-Meshlm-Model";
constexpr const char* kExpected = "expected scheme://host[:port] or *";

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// A comma-separated list of header names (RFC 9110 tokens), as
// Access-Control-Request-Headers carries: safe to echo back.
bool IsHeaderNameList(std::string_view s) {
  if (Trim(s).empty()) return false;
  for (const char c : s) {
    if (!IsAlnum(c) && std::string_view("!#$%&'*+-.^_`|~, \t").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

}  // namespace

Result<std::string> NormalizeOrigin(std::string_view origin) {
  auto bad = [&](std::string_view why) -> Status {
    return Error("[server] --allow-origin '{}': {}; {}", origin, why, kExpected);
  };
  const size_t sep = origin.find("://");
  if (sep == std::string_view::npos) return bad("no '://'");
  const std::string scheme = Lower(origin.substr(0, sep));
  if (scheme.empty() || !std::isalpha(static_cast<unsigned char>(scheme[0])) ||
      !std::all_of(scheme.begin(), scheme.end(),
                   [](char c) { return IsAlnum(c) || c == '+' || c == '-' || c == '.'; })) {
    return bad("the scheme is not a scheme");
  }
  std::string_view rest = origin.substr(sep + 3);
  if (const size_t at = rest.find_first_of("/?#"); at != std::string_view::npos) {
    return bad(fmt::format("an origin has no path, query or fragment ('{}')", rest.substr(at)));
  }
  if (rest.find('@') != std::string_view::npos) return bad("an origin has no user name");
  // host, then an optional ":port"; an IPv6 host is bracketed and holds colons itself.
  const size_t host_end = rest.starts_with('[') ? rest.find(']') : rest.find(':');
  if (rest.starts_with('[') && host_end == std::string_view::npos) {
    return bad("an IPv6 host lacks its ']'");
  }
  const std::string_view host = rest.substr(0, rest.starts_with('[') ? host_end + 1 : host_end);
  std::string_view after = rest.substr(host.size());
  if (host.empty() || host == "[]") return bad("no host");
  const bool host_ok = host.starts_with('[')
                           ? std::all_of(host.begin() + 1, host.end() - 1,
                                         [](char c) {
                                           return std::isxdigit(static_cast<unsigned char>(c)) ||
                                                  c == ':' || c == '.';
                                         })
                           : std::all_of(host.begin(), host.end(), [](char c) {
                               return IsAlnum(c) || c == '-' || c == '.' || c == '_';
                             });
  if (!host_ok) return bad("the host holds a character no host name has");
  int port = 0;
  if (!after.empty()) {
    if (!after.starts_with(':')) return bad("junk after the host");
    after.remove_prefix(1);
    if (after.empty() || after.size() > 5 || !std::all_of(after.begin(), after.end(), [](char c) {
          return std::isdigit(static_cast<unsigned char>(c));
        })) {
      return bad("the port is not a number in 1..65535");
    }
    port = std::stoi(std::string(after));
    if (port < 1 || port > 65535) return bad("the port is not a number in 1..65535");
  }
  std::string out = scheme + "://" + Lower(host);
  // Browsers leave a scheme's default port out of the Origin they send.
  const bool default_port = (scheme == "http" && port == 80) || (scheme == "https" && port == 443);
  if (port != 0 && !default_port) out += fmt::format(":{}", port);
  return out;
}

Result<CorsPolicy> CorsPolicy::Parse(const std::vector<std::string>& values) {
  CorsPolicy p;
  for (const std::string& value : values) {
    std::string_view rest = value;
    for (;;) {
      const size_t comma = rest.find(',');
      const std::string_view item = Trim(rest.substr(0, comma));
      if (item.empty()) {
        return Error("[server] --allow-origin '{}': an empty origin; {}", value, kExpected);
      }
      if (item == "*") {
        p.any_ = true;
      } else {
        MESHLM_ASSIGN_OR_RETURN(std::string origin, NormalizeOrigin(item));
        if (std::find(p.origins_.begin(), p.origins_.end(), origin) == p.origins_.end()) {
          p.origins_.push_back(std::move(origin));
        }
      }
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return p;
}

std::vector<std::string> CorsPolicy::values() const {
  std::vector<std::string> v = origins_;
  if (any_) v.insert(v.begin(), "*");
  return v;
}

bool CorsPolicy::Allows(const std::string& origin) const {
  return std::find(origins_.begin(), origins_.end(), Lower(origin)) != origins_.end();
}

CorsPolicy::Headers CorsPolicy::ForResponse(const std::string* origin) const {
  Headers h;
  if (any_) {
    // The same answer for every origin, so caches need no Vary: sent even without an
    // Origin header (the Fetch standard's advice for a static Allow-Origin).
    h.emplace_back("Access-Control-Allow-Origin", "*");
  } else if (!origins_.empty()) {
    // The answer depends on Origin: a cache must not hand one origin's answer to another,
    // nor an answer to a request without Origin to a browser's request with one.
    h.emplace_back("Vary", "Origin");
    if (origin == nullptr || !Allows(*origin)) return h;
    h.emplace_back("Access-Control-Allow-Origin", *origin);
  } else {
    return h;
  }
  h.emplace_back("Access-Control-Expose-Headers", kExposeHeaders);
  return h;
}

CorsPolicy::Headers CorsPolicy::ForPreflight(const std::string* origin, std::string_view methods,
                                             const std::string* request_headers) const {
  Headers h;
  if (!any_ && (origin == nullptr || !Allows(*origin))) return h;
  h.emplace_back("Access-Control-Allow-Methods", std::string(methods));
  // Echoing what the browser asks for lets a page send its own headers (an SDK's
  // X-Stainless-* ones, for instance); the key check still applies to the request itself.
  h.emplace_back("Access-Control-Allow-Headers",
                 request_headers != nullptr && IsHeaderNameList(*request_headers)
                     ? std::string(Trim(*request_headers))
                     : kDefaultAllowHeaders);
  h.emplace_back("Access-Control-Max-Age", kMaxAgeSeconds);
  return h;
}

}  // namespace meshlm::server
