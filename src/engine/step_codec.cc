// Step message encoding.
#include "engine/step_codec.h"

#include <cstring>

namespace meshlm::engine {
namespace {

constexpr uint32_t kMagic = 0x5054534d;  // "MSTP"
constexpr uint32_t kMaxSeqs = 1 << 16;
constexpr uint32_t kMaxTokens = 1 << 24;
constexpr uint32_t kMaxBias = 1 << 16;  // logit_bias entries per sequence

template <typename T>
void Put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  template <typename T>
  bool Get(T* v) {
    if (n_ - off_ < sizeof(T)) return false;
    std::memcpy(v, p_ + off_, sizeof(T));
    off_ += sizeof(T);
    return true;
  }
  size_t left() const { return n_ - off_; }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t off_ = 0;
};

}  // namespace

std::string EncodeStep(const StepMessage& msg) {
  std::string out;
  Put<uint32_t>(out, kMagic);
  Put<uint32_t>(out, static_cast<uint32_t>(msg.kind));
  Put<uint32_t>(out, static_cast<uint32_t>(msg.seqs.size()));
  Put<uint32_t>(out, msg.return_logits ? 1 : 0);
  for (const SeqWork& s : msg.seqs) {
    Put<uint64_t>(out, s.id);
    Put<uint8_t>(out, static_cast<uint8_t>((s.start ? 1 : 0) | (s.release ? 2 : 0) |
                                           (s.fork ? 4 : 0)));
    if (s.fork) {
      Put<uint64_t>(out, s.fork_from);
      Put<uint32_t>(out, s.fork_len);
    }
    Put<float>(out, s.params.temperature);
    Put<int32_t>(out, s.params.top_k);
    Put<float>(out, s.params.top_p);
    Put<float>(out, s.params.min_p);
    Put<float>(out, s.params.repetition_penalty);
    Put<float>(out, s.params.presence_penalty);
    Put<float>(out, s.params.frequency_penalty);
    Put<uint64_t>(out, s.params.seed);
    Put<uint32_t>(out, static_cast<uint32_t>(s.params.logit_bias.size()));
    for (const auto& [t, b] : s.params.logit_bias) {
      Put<int32_t>(out, t);
      Put<float>(out, b);
    }
    Put<uint32_t>(out, static_cast<uint32_t>(s.tokens.size()));
    out.append(reinterpret_cast<const char*>(s.tokens.data()), s.tokens.size() * 4);
  }
  return out;
}

Result<StepMessage> DecodeStep(const uint8_t* data, size_t size) {
  Reader r(data, size);
  uint32_t magic = 0, kind = 0, n = 0, flags = 0;
  if (!r.Get(&magic) || !r.Get(&kind) || !r.Get(&n) || !r.Get(&flags) || magic != kMagic) {
    return Error("[step] message of {} bytes has no valid header", size);
  }
  if (kind < 1 || kind > 3) return Error("[step] unknown message kind {}", kind);
  if (n > kMaxSeqs) return Error("[step] {} sequences exceed the limit of {}", n, kMaxSeqs);
  StepMessage msg;
  msg.kind = static_cast<StepKind>(kind);
  msg.return_logits = flags & 1;
  msg.seqs.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    SeqWork& s = msg.seqs[i];
    uint8_t flags = 0;
    uint32_t ntok = 0;
    if (!r.Get(&s.id) || !r.Get(&flags) ||
        ((flags & 4) && (!r.Get(&s.fork_from) || !r.Get(&s.fork_len))) ||
        !r.Get(&s.params.temperature) ||
        !r.Get(&s.params.top_k) || !r.Get(&s.params.top_p) || !r.Get(&s.params.min_p) ||
        !r.Get(&s.params.repetition_penalty) || !r.Get(&s.params.presence_penalty) ||
        !r.Get(&s.params.frequency_penalty) || !r.Get(&s.params.seed)) {
      return Error("[step] sequence {} of {} is truncated", i, n);
    }
    uint32_t nbias = 0;
    if (!r.Get(&nbias) || nbias > kMaxBias || r.left() < size_t{nbias} * 8) {
      return Error("[step] sequence {} of {}: logit_bias of {} entries does not fit", i, n, nbias);
    }
    s.params.logit_bias.resize(nbias);
    for (auto& [t, b] : s.params.logit_bias) r.Get(&t), r.Get(&b);
    if (!r.Get(&ntok)) return Error("[step] sequence {} of {} is truncated", i, n);
    if (ntok > kMaxTokens || r.left() < size_t{ntok} * 4) {
      return Error("[step] sequence {} claims {} tokens but {} bytes remain", i, ntok, r.left());
    }
    s.start = flags & 1;
    s.release = flags & 2;
    s.fork = flags & 4;
    if (flags & ~7u) return Error("[step] sequence {} of {}: unknown flags {:#x}", i, n, flags);
    if (s.fork && !s.start) return Error("[step] sequence {} of {}: a fork must start", i, n);
    s.tokens.resize(ntok);
    for (auto& t : s.tokens) r.Get(&t);
  }
  if (r.left() != 0) return Error("[step] {} trailing bytes", r.left());
  return msg;
}

}  // namespace meshlm::engine
