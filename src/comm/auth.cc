// HMAC-SHA256 challenge-response (OpenSSL) for bootstrap and mesh connections.
#include "comm/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstring>

#include "base/check.h"
#include "comm/socket.h"

namespace meshlm::comm {
namespace {

constexpr char kMagic[8] = {'M', 'E', 'S', 'H', 'L', 'M', 'A', '1'};
constexpr size_t kNonce = 32;
// magic(8) | version u32 | purpose u8 | nonce(32)
constexpr size_t kHelloBytes = 8 + 4 + 1 + kNonce;

using Nonce = std::array<uint8_t, kNonce>;

Nonce RandomNonce() {
  Nonce n{};
  MESHLM_CHECK(RAND_bytes(n.data(), static_cast<int>(n.size())) == 1, "RAND_bytes failed");
  return n;
}

std::string Bytes(const uint8_t* p, size_t n) {
  return std::string(reinterpret_cast<const char*>(p), n);
}

std::string Proof(const char* side, Purpose purpose, const Nonce& a, const Nonce& b) {
  std::string s = side;
  s.push_back(static_cast<char>(purpose));
  s += Bytes(a.data(), a.size());
  s += Bytes(b.data(), b.size());
  return s;
}

std::array<uint8_t, kHelloBytes> EncodeHello(Purpose purpose, const Nonce& nonce) {
  std::array<uint8_t, kHelloBytes> out{};
  std::memcpy(out.data(), kMagic, 8);
  for (int i = 0; i < 4; ++i) out[8 + i] = static_cast<uint8_t>(kProtocolVersion >> (8 * i));
  out[12] = static_cast<uint8_t>(purpose);
  std::memcpy(out.data() + 13, nonce.data(), kNonce);
  return out;
}

Status DecodeHello(const std::array<uint8_t, kHelloBytes>& in, Purpose purpose, Nonce* nonce,
                   const std::string& who) {
  if (std::memcmp(in.data(), kMagic, 8) != 0) {
    return Error("[tcp] {} is not a meshlm peer (bad handshake magic)", who);
  }
  uint32_t version = 0;
  for (int i = 0; i < 4; ++i) version |= static_cast<uint32_t>(in[8 + i]) << (8 * i);
  if (version != kProtocolVersion) {
    return Error(
        "[tcp] {} speaks protocol version {}, this rank speaks {}; run the same meshlm "
        "build on every host",
        who, version, kProtocolVersion);
  }
  if (in[12] != static_cast<uint8_t>(purpose)) {
    return Error("[tcp] {} connected for purpose {}, this port serves purpose {}", who, in[12],
                 static_cast<int>(purpose));
  }
  std::memcpy(nonce->data(), in.data() + 13, kNonce);
  return OkStatus();
}

}  // namespace

std::array<uint8_t, 32> HmacSha256(const std::string& key, const std::string& data) {
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
  MESHLM_CHECK(len == 32, "HMAC length {}", len);
  return out;
}

std::string NewSecretHex() {
  Nonce n = RandomNonce();
  std::string hex;
  for (uint8_t b : n) hex += fmt::format("{:02x}", b);
  return hex;
}

Status ServerHandshake(int fd, const std::string& secret, Purpose purpose, double deadline,
                       const std::string& who) {
  const Nonce server_nonce = RandomNonce();
  auto hello = EncodeHello(purpose, server_nonce);
  MESHLM_RETURN_IF_ERROR(WriteAll(fd, hello.data(), hello.size(), deadline, who));
  std::array<uint8_t, kHelloBytes> reply{};
  MESHLM_RETURN_IF_ERROR(ReadAll(fd, reply.data(), reply.size(), deadline, who));
  Nonce client_nonce{};
  MESHLM_RETURN_IF_ERROR(DecodeHello(reply, purpose, &client_nonce, who));
  std::array<uint8_t, 32> mac{};
  MESHLM_RETURN_IF_ERROR(ReadAll(fd, mac.data(), mac.size(), deadline, who));
  const auto want = HmacSha256(secret, Proof("client", purpose, server_nonce, client_nonce));
  if (CRYPTO_memcmp(mac.data(), want.data(), 32) != 0) {
    return Error("[tcp] {} failed authentication: it does not hold this job's MESHLM_SECRET", who);
  }
  const auto proof = HmacSha256(secret, Proof("server", purpose, client_nonce, server_nonce));
  return WriteAll(fd, proof.data(), proof.size(), deadline, who);
}

Status ClientHandshake(int fd, const std::string& secret, Purpose purpose, double deadline,
                       const std::string& who) {
  std::array<uint8_t, kHelloBytes> hello{};
  MESHLM_RETURN_IF_ERROR(ReadAll(fd, hello.data(), hello.size(), deadline, who));
  Nonce server_nonce{};
  MESHLM_RETURN_IF_ERROR(DecodeHello(hello, purpose, &server_nonce, who));
  const Nonce client_nonce = RandomNonce();
  auto reply = EncodeHello(purpose, client_nonce);
  const auto mac = HmacSha256(secret, Proof("client", purpose, server_nonce, client_nonce));
  MESHLM_RETURN_IF_ERROR(WriteAll(fd, reply.data(), reply.size(), deadline, who));
  MESHLM_RETURN_IF_ERROR(WriteAll(fd, mac.data(), mac.size(), deadline, who));
  std::array<uint8_t, 32> proof{};
  Status st = ReadAll(fd, proof.data(), proof.size(), deadline, who);
  if (!st.ok()) {
    return Error("[tcp] {} refused this rank's handshake (different MESHLM_SECRET?): {}", who,
                 st.message());
  }
  const auto want = HmacSha256(secret, Proof("server", purpose, client_nonce, server_nonce));
  if (CRYPTO_memcmp(proof.data(), want.data(), 32) != 0) {
    return Error("[tcp] {} failed to prove it holds this job's MESHLM_SECRET", who);
  }
  return OkStatus();
}

}  // namespace meshlm::comm
