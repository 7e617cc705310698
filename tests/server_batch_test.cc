// Batch invariance end to end: `meshlm serve` on a random-weight bf16 model (random
// weights leave the top logits close, so any change in a sum's order shows) gives every
// greedy client the same text and the same logprobs whether it runs alone or with 2 or 7
// others, one of them with a long prompt whose prefill shares their steps.
#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdlib>
#include <future>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/mapped_file.h"
#include "server_process.h"

namespace meshlm {
namespace {

using nlohmann::json;
using testing::BuildDir;
using testing::ServerProcess;

// A random bf16 Llama with the demo model's vocabulary and tokenizer.
std::string RandomBf16Model() {
  const std::string out = BuildDir() + "/server-batch-llama";
  if (!FileExists(out + "/tokenizer.json")) {
    const std::string src = MESHLM_TEST_SOURCE_DIR;
    const std::string cmd = "/usr/bin/python3 " + src +
                            "/tools/make_model.py --shape small-llama --dtype bf16 --seed 11 "
                            "--vocab 4096 --out " + out + " >/dev/null && cp " + src +
                            "/models/meshlm-demo-6m/tokenizer.json " + src +
                            "/models/meshlm-demo-6m/tokenizer_config.json " + out + "/";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  return out;
}

struct Answer {
  std::string text;
  json logprobs;  // per token: the token's logprob and the top 3
};

Answer Complete(int port, const std::string& prompt) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(120, 0);
  const json body = {{"prompt", prompt}, {"max_tokens", 20}, {"temperature", 0},
                     {"ignore_eos", true}, {"logprobs", 3}};
  auto r = c.Post("/v1/completions", body.dump(), "application/json");
  Answer a;
  if (!r || r->status != 200) {
    ADD_FAILURE() << "request failed: " << (r ? r->body : httplib::to_string(r.error()));
    return a;
  }
  const json j = json::parse(r->body);
  a.text = j["choices"][0]["text"];
  a.logprobs = j["choices"][0]["logprobs"];
  return a;
}

TEST(ServerBatch, GreedyTextAndLogprobsDoNotDependOnOtherClients) {
  ServerProcess server({"--max-concurrent", "8"}, {}, RandomBf16Model());
  ASSERT_TRUE(server.WaitReady()) << "server did not become ready";
  std::vector<std::string> prompts;
  for (int i = 0; i < 7; ++i) {
    prompts.push_back("Story " + std::to_string(i) + ": once upon a time there was a little");
  }
  std::string long_prompt = "A long prompt:";
  for (int i = 0; i < 30; ++i) long_prompt += " word " + std::to_string(i);
  prompts.push_back(long_prompt);  // 100+ tokens: prefilled in steps the others decode in

  std::vector<Answer> solo;
  for (const auto& p : prompts) solo.push_back(Complete(server.port(), p));
  for (size_t clients : {size_t{8}, size_t{3}, size_t{1}}) {
    std::vector<std::future<Answer>> futures;
    for (size_t i = 0; i < clients; ++i) {
      // With 3 clients: two short prompts and the long one.
      const size_t which = clients == 3 && i == 2 ? prompts.size() - 1 : i;
      futures.push_back(std::async(std::launch::async,
                                   [&, which] { return Complete(server.port(), prompts[which]); }));
    }
    for (size_t i = 0; i < clients; ++i) {
      const size_t which = clients == 3 && i == 2 ? prompts.size() - 1 : i;
      const Answer a = futures[i].get();
      EXPECT_EQ(a.text, solo[which].text) << clients << " clients, prompt " << which;
      EXPECT_EQ(a.logprobs, solo[which].logprobs) << clients << " clients, prompt " << which;
    }
  }
}

}  // namespace
}  // namespace meshlm
