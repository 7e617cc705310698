// meshlm generate: load a model folder and generate from a prompt.
#include <fmt/format.h>

#include <cstdio>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "engine/generate.h"

namespace meshlm::cli {
namespace {

struct GenerateFlags {
  std::string model;
  std::string ids;
  size_t max_tokens = 64;
  size_t threads = 0;
  size_t ctx = 0;
  float temperature = -1;
  int32_t top_k = -1;
  float top_p = -1;
  float min_p = -1;
  float repetition_penalty = -1;
  uint64_t seed = 0;
  bool ignore_eos = false;
};

Result<std::vector<int32_t>> ParseIds(const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      const long v = std::stol(item, &used);
      if (used != item.size() || v < 0 || v > INT32_MAX) throw std::invalid_argument(item);
      ids.push_back(static_cast<int32_t>(v));
    } catch (const std::exception&) {
      return Error("[generate] --ids: '{}' is not a token id", item);
    }
  }
  return ids;
}

int RunGenerate(const GenerateFlags& f) {
  model::LoadOptions load;
  load.max_context = f.ctx;
  auto model = model::Model::Load(f.model, load);
  if (!model.ok()) {
    fmt::print(stderr, "meshlm generate: {}\n", model.status().message());
    return 1;
  }
  auto prompt = ParseIds(f.ids);
  if (!prompt.ok()) {
    fmt::print(stderr, "meshlm generate: {}\n", prompt.status().message());
    return 1;
  }
  const auto& defaults = (*model)->generation_defaults();
  engine::GenerateOptions opt;
  opt.max_new_tokens = f.max_tokens;
  opt.eos_ids = defaults.eos_token_ids;
  opt.ignore_eos = f.ignore_eos;
  opt.sampling.temperature = f.temperature >= 0 ? f.temperature : defaults.temperature;
  opt.sampling.top_k = f.top_k >= 0 ? f.top_k : defaults.top_k;
  opt.sampling.top_p = f.top_p >= 0 ? f.top_p : defaults.top_p;
  opt.sampling.min_p = f.min_p >= 0 ? f.min_p : defaults.min_p;
  opt.sampling.repetition_penalty =
      f.repetition_penalty >= 0 ? f.repetition_penalty : defaults.repetition_penalty;
  opt.sampling.seed = f.seed;
  ThreadPool pool(f.threads);
  bool first = true;
  auto stats = engine::Generate(**model, pool, *prompt, opt, [&](int32_t token) {
    fmt::print("{}{}", first ? "" : ",", token);
    std::fflush(stdout);
    first = false;
    return true;
  });
  fmt::print("\n");
  if (!stats.ok()) {
    fmt::print(stderr, "meshlm generate: {}\n", stats.status().message());
    return 1;
  }
  fmt::print(stderr, "[generate] prompt {} tokens in {:.3f} s, {} tokens generated at {:.2f} tok/s\n",
             stats->prompt_tokens, stats->prefill_seconds, stats->gen_tokens,
             stats->decode_steps / std::max(stats->decode_seconds, 1e-9));
  return 0;
}

}  // namespace

void AddGenerateCommand(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<GenerateFlags>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate tokens from a prompt on one process");
  cmd->add_option("--model", flags->model, "Model folder (Hugging Face layout)")->required();
  cmd->add_option("--ids", flags->ids, "Prompt as comma-separated token ids")->required();
  cmd->add_option("--max-tokens", flags->max_tokens, "Tokens to generate at most");
  cmd->add_option("--threads", flags->threads, "Worker threads (0 = one per core)");
  cmd->add_option("--ctx", flags->ctx, "Context limit in tokens (default: the model's)");
  cmd->add_option("--temperature", flags->temperature, "0 = greedy (default: the model's)");
  cmd->add_option("--top-k", flags->top_k, "Keep the k most likely tokens (0 = off)");
  cmd->add_option("--top-p", flags->top_p, "Nucleus sampling mass (1 = off)");
  cmd->add_option("--min-p", flags->min_p, "Drop tokens below min_p x the top probability");
  cmd->add_option("--repetition-penalty", flags->repetition_penalty, "1 = off");
  cmd->add_option("--seed", flags->seed, "Sampling seed; the same seed gives the same tokens");
  cmd->add_flag("--ignore-eos", flags->ignore_eos, "Keep generating past end-of-sequence");
  cmd->callback([flags, exit_code] { *exit_code = RunGenerate(*flags); });
}

}  // namespace meshlm::cli
