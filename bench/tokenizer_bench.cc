// tokenizer_bench: encode and decode speed on ~1 MB of generated mixed text (English-like
// words, code, numbers, CJK, Cyrillic, emoji), for each model folder given.
//
//   tokenizer_bench DIR [DIR...]      e.g. build/tokenizer-vocabs/qwen3
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// Deterministic text with many distinct words, so that the per-word cache sees a
// realistic mix of hits and misses.
std::string MixedText(size_t bytes) {
  static const char* kSyllables[] = {"ka",   "ri", "to",  "an", "mel", "str", "on", "ex", "pla",
                                     "tion", "in", "ver", "sa", "lo",  "que", "th", "er", "ing"};
  static const char* kCjk[] = {"你", "好", "世", "界", "模", "型",
                               "分", "布", "式", "の", "テ", "ス"};
  static const char* kOther[] = {"привет", "мир", "🦙", "👨‍👩‍👧", "🇯🇵", "café",
                                 "naïve",  "—",   "…"};
  std::mt19937 rng(42);
  std::string out;
  out.reserve(bytes + 256);
  while (out.size() < bytes) {
    const unsigned kind = rng() % 20;
    if (kind < 13) {  // a sentence of English-like words
      const int words = 5 + rng() % 12;
      for (int w = 0; w < words; ++w) {
        const int syl = 1 + rng() % 3;
        std::string word;
        for (int s = 0; s < syl; ++s) word += kSyllables[rng() % std::size(kSyllables)];
        if (rng() % 7 == 0) word[0] = static_cast<char>(word[0] - 32);
        out += word;
        out += (rng() % 9 == 0) ? ", " : " ";
      }
      out += ". ";
    } else if (kind < 15) {  // a line of code
      out += "\n    for (int i = 0; i < n_" + std::to_string(rng() % 100) +
             "; ++i) {\n\t\tx[i] += " + std::to_string(rng() % 100000) + " * y[i];\n    }\n";
    } else if (kind < 16) {  // numbers
      out += std::to_string(rng()) + " " + std::to_string(rng() % 1000) + "." +
             std::to_string(rng() % 100) + " ";
    } else if (kind < 18) {  // CJK
      for (int k = 0; k < 12; ++k) out += kCjk[rng() % std::size(kCjk)];
      out += "。";
    } else {
      out += kOther[rng() % std::size(kOther)];
      out += ' ';
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: tokenizer_bench DIR [DIR...]\n");
    return 2;
  }
  const std::string text = MixedText(1 << 20);
  std::printf("%-14s %8s %9s %12s %12s %12s %10s\n", "model", "load_s", "tokens", "cold_tok/s",
              "warm_tok/s", "decode_tok/s", "MB/s_warm");
  for (int a = 1; a < argc; ++a) {
    const std::string dir = argv[a];
    auto start = Clock::now();
    auto t = meshlm::Tokenizer::FromHfDir(dir);
    if (!t.ok()) {
      std::fprintf(stderr, "%s\n", t.status().message().c_str());
      return 1;
    }
    const double load = Seconds(start);
    start = Clock::now();
    auto ids = (*t)->Encode(text, false);  // cold: the word cache is empty
    const double cold = Seconds(start);
    if (!ids.ok()) {
      std::fprintf(stderr, "%s\n", ids.status().message().c_str());
      return 1;
    }
    // Warm: best of three, as the machine is shared.
    double warm = 1e30;
    meshlm::Result<std::vector<int32_t>> again = std::vector<int32_t>();
    for (int r = 0; r < 3; ++r) {
      start = Clock::now();
      again = (*t)->Encode(text, false);
      warm = std::min(warm, Seconds(start));
    }
    start = Clock::now();
    const std::string back = (*t)->Decode(*ids);
    const double decode = Seconds(start);
    const double n = static_cast<double>(ids->size());
    const std::string name = dir.substr(dir.find_last_of('/') + 1);
    std::printf("%-14s %8.2f %9zu %12.0f %12.0f %12.0f %10.2f\n", name.c_str(), load, ids->size(),
                n / cold, n / warm, n / decode, text.size() / warm / 1e6);
    if (back.empty() || !again.ok() || *again != *ids) {
      std::fprintf(stderr, "%s: inconsistent results\n", name.c_str());
      return 1;
    }
  }
  return 0;
}
