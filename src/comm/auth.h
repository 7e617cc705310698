// Mutual HMAC-SHA256 challenge over a shared job secret, run on every new connection.
//
// Server: sends magic, protocol version, purpose and a 32-byte nonce. Client: answers with
// its own nonce and HMAC(secret, "client" | purpose | server nonce | client nonce).
// Server checks it and proves itself with HMAC(secret, "server" | purpose | client nonce |
// server nonce). Every field has a fixed size, so nothing read from a stranger sizes an
// allocation. The secret itself never crosses the wire.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "base/status.h"

namespace meshlm::comm {

inline constexpr uint32_t kProtocolVersion = 1;

/// What a connection is for; both ends must agree (a mesh port refuses a bootstrap hello).
enum class Purpose : uint8_t { kBootstrap = 1, kMesh = 2 };

/// Runs the server side on a connected socket; fails (caller logs and closes) on garbage,
/// a wrong secret, version or purpose, or at `deadline`.
Status ServerHandshake(int fd, const std::string& secret, Purpose purpose, double deadline,
                       const std::string& who);
/// Runs the client side; fails when the server does not prove it holds the secret.
Status ClientHandshake(int fd, const std::string& secret, Purpose purpose, double deadline,
                       const std::string& who);

/// 32 random bytes from OpenSSL as 64 hex digits: a fresh job secret.
std::string NewSecretHex();

/// HMAC-SHA256, exposed for tests.
std::array<uint8_t, 32> HmacSha256(const std::string& key, const std::string& data);

}  // namespace meshlm::comm
