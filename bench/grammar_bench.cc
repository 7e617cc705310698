// grammar_bench: time of one token mask (JSON Schema grammar) on a real vocabulary, at
// every token of a document as the tokenizer splits it: what constrained sampling adds
// to each decode step.
//
//   grammar_bench DIR      e.g. build/tokenizer-vocabs/qwen3 (151,669 tokens)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "engine/grammar.h"
#include "engine/json_schema.h"
#include "tokenizer/tokenizer.h"

using namespace meshlm;
using Clock = std::chrono::steady_clock;

static double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: grammar_bench TOKENIZER_DIR\n");
    return 2;
  }
  auto tok = Tokenizer::FromHfDir(argv[1]);
  if (!tok.ok()) {
    std::fprintf(stderr, "%s\n", tok.status().message().c_str());
    return 1;
  }
  auto t0 = Clock::now();
  const engine::TokenIndex index((*tok)->TokenByteTable(), (*tok)->stop_ids());
  const double build_s = Since(t0);
  const auto schema = nlohmann::ordered_json::parse(R"({"type": "object", "properties": {
      "name": {"type": "string"}, "age": {"type": "integer"},
      "email": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
      "address": {"type": "object", "properties": {"street": {"type": "string"},
          "city": {"type": "string"}, "zip": {"type": "string"}},
          "required": ["street", "city", "zip"], "additionalProperties": false},
      "active": {"type": "boolean"}, "score": {"type": "number"}},
      "required": ["name", "age", "email", "tags", "address", "active", "score"],
      "additionalProperties": false})");
  auto g = engine::JsonSchemaGrammar(schema, "schema");
  if (!g.ok()) return 1;
  const std::string doc = R"({"name": "Ada Lovelace", "age": 36, "email": "ada@example.org", )"
                          R"("tags": ["mathematician", "writer", "analyst"], "address": {"street": )"
                          R"("12 St James's Square", "city": "London", "zip": "SW1Y 4JH"}, )"
                          R"("active": true, "score": 98.5})";
  auto ids = (*tok)->Encode(doc, false);
  if (!ids.ok()) return 1;
  std::vector<double> us;
  std::vector<uint64_t> mask;
  for (int round = 0; round < 5; ++round) {
    engine::GrammarMatcher m(*g);
    for (int32_t id : *ids) {
      t0 = Clock::now();
      m.FillMask(index, &mask);
      us.push_back(Since(t0) * 1e6);
      if (!((mask[id / 64] >> (id % 64)) & 1) || !m.AcceptToken(index, id)) {
        std::fprintf(stderr, "token %d refused\n", id);
        return 1;
      }
    }
  }
  std::sort(us.begin(), us.end());
  double sum = 0;
  for (double u : us) sum += u;
  std::printf("vocabulary %zu tokens, index built in %.3f s\n", index.vocab_size(), build_s);
  std::printf("mask: mean %.0f us, median %.0f us, p95 %.0f us, max %.0f us over %zu states\n",
              sum / us.size(), us[us.size() / 2], us[us.size() * 95 / 100], us.back(), us.size());
  return 0;
}
