// CORS for the HTTP API: which browser origins may call it, and the headers that say so.
//
// Goals: off unless asked for (no header at all then); an origin is matched exactly (scheme,
// host and port), never by prefix or suffix; a preflight needs no API key, since browsers
// send it without credentials. Non-goals: cookies (Access-Control-Allow-Credentials): the
// API authenticates with a bearer key, which a page sends explicitly.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace meshlm::server {

class CorsPolicy {
 public:
  using Headers = std::vector<std::pair<std::string, std::string>>;

  /// No origin is allowed: no CORS headers.
  CorsPolicy() = default;
  /// From --allow-origin values: each is `*` or scheme://host[:port], several may be given
  /// in one value, comma-separated. Errors name the value at fault.
  static Result<CorsPolicy> Parse(const std::vector<std::string>& values);

  bool enabled() const { return any_ || !origins_.empty(); }
  /// The origins as given (normalized), for logs and for passing on to other ranks.
  std::vector<std::string> values() const;

  /// Headers for a response to a request with this Origin header (null: none sent).
  Headers ForResponse(const std::string* origin) const;
  /// What a preflight (OPTIONS) of a path that takes `methods` ("POST, OPTIONS") adds to
  /// ForResponse's headers; `request_headers` is the request's
  /// Access-Control-Request-Headers (may be null). Nothing for an origin not allowed.
  Headers ForPreflight(const std::string* origin, std::string_view methods,
                       const std::string* request_headers) const;

 private:
  bool Allows(const std::string& origin) const;

  bool any_ = false;                  // `*`
  std::vector<std::string> origins_;  // lower case, as browsers send them
};

/// Checks that `origin` is scheme://host[:port] and returns it in lower case; errors say
/// what is wrong with it.
Result<std::string> NormalizeOrigin(std::string_view origin);

}  // namespace meshlm::server
