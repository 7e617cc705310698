// meshlm generate: generate from a prompt, on one process or under `meshlm launch`.
#include "engine/generate.h"

#include <fmt/format.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/mapped_file.h"
#include "cli/commands.h"
#include "cli/job.h"
#include "engine/model_tokenizer.h"
#include "parallel/plan.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace meshlm::cli {
namespace {

struct GenerateFlags {
  JobFlags job;
  std::string prompt;
  std::string ids;
  bool chat = false;
  std::string system;
  size_t max_tokens = 64;
  float temperature = -1;
  int32_t top_k = -1;
  float top_p = -1;
  float min_p = -1;
  float repetition_penalty = -1;
  uint64_t seed = 0;
  bool ignore_eos = false;
};

// The prompt as ids: --ids as given, or --prompt through the model's tokenizer (and its
// chat template with --chat).
Result<std::vector<int32_t>> PromptIds(const GenerateFlags& f, const Tokenizer* tok) {
  if (!f.ids.empty()) {
    MESHLM_ASSIGN_OR_RETURN(auto ids, parallel::ParseSizeList(f.ids, "--ids"));
    std::vector<int32_t> out;
    for (size_t id : ids) {
      if (id > INT32_MAX) return Error("[generate] --ids: {} is not a token id", id);
      out.push_back(static_cast<int32_t>(id));
    }
    return out;
  }
  if (tok == nullptr) {
    return Error(
        "[generate] '{}' has no tokenizer (tokenizer.json or GGUF metadata): give the prompt with "
        "--ids",
        f.job.model);
  }
  if (!f.chat) return tok->Encode(f.prompt, true);
  if (tok->chat_template().empty()) {
    return Error("[generate] --chat: '{}' has no chat template", f.job.model);
  }
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (!f.system.empty()) messages.push_back({{"role", "system"}, {"content", f.system}});
  messages.push_back({{"role", "user"}, {"content", f.prompt}});
  ChatTemplateOptions opt;
  opt.bos_token = tok->bos_token();
  opt.eos_token = tok->eos_token();
  MESHLM_ASSIGN_OR_RETURN(std::string text,
                          RenderChatTemplate(tok->chat_template(), messages, opt));
  return tok->Encode(text, false);
}

int RunGenerate(const GenerateFlags& f) {
  if (f.ids.empty() == f.prompt.empty()) {
    fmt::print(stderr, "meshlm generate: give exactly one of --prompt and --ids\n");
    return 2;
  }
  auto job = StartJob(f.job, 0);
  if (!job.ok()) {
    fmt::print(stderr, "meshlm generate: {}\n", job.status().message());
    return 1;
  }
  return RunJob(*job, "generate", [&]() -> Status {
    std::unique_ptr<Tokenizer> tok;
    if (!f.prompt.empty()) {
      MESHLM_ASSIGN_OR_RETURN(tok, engine::LoadModelTokenizer(f.job.model));
    } else if (auto loaded = engine::LoadModelTokenizer(f.job.model); loaded.ok()) {
      tok = std::move(loaded).value();  // only for stop tokens: ids in, ids out
    }
    MESHLM_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, PromptIds(f, tok.get()));
    const auto& defaults = job->executor->model().generation_defaults();
    engine::GenerateOptions opt;
    opt.max_new_tokens = f.max_tokens;
    opt.eos_ids = defaults.eos_token_ids;
    if (tok) opt.eos_ids.insert(opt.eos_ids.end(), tok->stop_ids().begin(), tok->stop_ids().end());
    opt.ignore_eos = f.ignore_eos;
    opt.sampling.temperature = f.temperature >= 0 ? f.temperature : defaults.temperature;
    opt.sampling.top_k = f.top_k >= 0 ? f.top_k : defaults.top_k;
    opt.sampling.top_p = f.top_p >= 0 ? f.top_p : defaults.top_p;
    opt.sampling.min_p = f.min_p >= 0 ? f.min_p : defaults.min_p;
    opt.sampling.repetition_penalty =
        f.repetition_penalty >= 0 ? f.repetition_penalty : defaults.repetition_penalty;
    opt.sampling.seed = f.seed;
    std::unique_ptr<StreamDecoder> stream;
    if (tok && !f.prompt.empty()) stream = std::make_unique<StreamDecoder>(*tok, true);
    if (stream) fmt::print("{}", f.chat ? "" : f.prompt);
    bool first = true;
    MESHLM_ASSIGN_OR_RETURN(auto stats,
                            engine::Generate(*job->executor, prompt, opt, [&](int32_t t) {
                              if (stream) {
                                fmt::print("{}", stream->Push(t));
                              } else {
                                fmt::print("{}{}", first ? "" : ",", t);
                              }
                              std::fflush(stdout);
                              first = false;
                              return true;
                            }));
    if (stream) fmt::print("{}", stream->Flush());
    fmt::print("\n");
    std::fflush(stdout);  // the stats follow the text, also when both go to one pipe
    fmt::print(stderr,
               "[generate] load {:.3f} s; prompt {} tokens in {:.3f} s; {} tokens at {:.2f} "
               "tok/s\n",
               job->load_seconds, stats.prompt_tokens, stats.prefill_seconds, stats.gen_tokens,
               stats.decode_steps / std::max(stats.decode_seconds, 1e-9));
    return OkStatus();
  });
}

}  // namespace

void AddGenerateCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<GenerateFlags>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt");
  AddJobFlags(cmd, &f->job);
  cmd->add_option("--prompt", f->prompt, "Prompt text (needs the model's tokenizer.json)");
  cmd->add_option("--ids", f->ids, "Prompt as comma-separated token ids");
  cmd->add_flag("--chat", f->chat, "Wrap the prompt in the model's chat template");
  cmd->add_option("--system", f->system, "System message for --chat");
  cmd->add_option("--max-tokens", f->max_tokens, "Tokens to generate at most");
  cmd->add_option("--temperature", f->temperature, "0 = greedy (default: the model's)");
  cmd->add_option("--top-k", f->top_k,
                  "Keep the k most likely tokens, 0 = off (default: the model's)");
  cmd->add_option("--top-p", f->top_p, "Nucleus sampling mass, 1 = off (default: the model's)");
  cmd->add_option("--min-p", f->min_p,
                  "Drop tokens below min_p x the top probability (default: the model's)");
  cmd->add_option("--repetition-penalty", f->repetition_penalty, "1 = off (default: the model's)");
  cmd->add_option("--seed", f->seed, "Sampling seed; the same seed gives the same tokens");
  cmd->add_flag("--ignore-eos", f->ignore_eos, "Keep generating past end-of-sequence");
  cmd->callback([f, exit_code] { *exit_code = RunGenerate(*f); });
}

}  // namespace meshlm::cli
