// meshlm bench: prompt and generation speed of one process on a model folder.
#include <fmt/format.h>

#include <memory>

#include "cli/commands.h"
#include "engine/generate.h"
#include "kernels/kernels.h"

namespace meshlm::cli {
namespace {

struct BenchFlags {
  std::string model;
  size_t prompt_tokens = 128;
  size_t gen_tokens = 64;
  size_t threads = 0;
  size_t repeats = 1;
  size_t ctx = 0;
  bool json = false;
};

int RunBenchCommand(const BenchFlags& f) {
  model::LoadOptions load;
  load.max_context = f.ctx ? f.ctx : f.prompt_tokens + f.gen_tokens;
  auto model = model::Model::Load(f.model, load);
  if (!model.ok()) {
    fmt::print(stderr, "meshlm bench: {}\n", model.status().message());
    return 1;
  }
  ThreadPool pool(f.threads);
  auto r = engine::RunBench(**model, pool, f.prompt_tokens, f.gen_tokens, f.repeats);
  if (!r.ok()) {
    fmt::print(stderr, "meshlm bench: {}\n", r.status().message());
    return 1;
  }
  const double gbps = (*model)->weight_bytes() * r->gen_tps() / 1e9;
  if (f.json) {
    fmt::print("{{\"prompt_tokens\": {}, \"gen_tokens\": {}, \"prompt_tokens_per_sec\": {:.3f}, "
               "\"tokens_per_sec\": {:.3f}, \"seconds\": {:.3f}, \"peak_rss_bytes\": {}, "
               "\"threads\": {}, \"target\": \"{}\", \"weight_gb_per_sec\": {:.2f}}}\n",
               r->prompt_tokens, r->gen_tokens, r->prompt_tps(), r->gen_tps(), r->seconds,
               r->peak_rss_bytes, pool.num_threads(), kernels::CurrentTarget(), gbps);
  } else {
    fmt::print("model           {}\n", f.model);
    fmt::print("threads         {} ({})\n", pool.num_threads(), kernels::CurrentTarget());
    fmt::print("prompt_tokens   {}\n", r->prompt_tokens);
    fmt::print("gen_tokens      {}\n", r->gen_tokens);
    fmt::print("prompt tok/s    {:.2f}\n", r->prompt_tps());
    fmt::print("gen tok/s       {:.2f}  ({:.1f} GB/s of weights)\n", r->gen_tps(), gbps);
    fmt::print("seconds         {:.3f}\n", r->seconds);
    fmt::print("peak RSS        {:.1f} MiB\n", r->peak_rss_bytes / 1048576.0);
  }
  return 0;
}

}  // namespace

void AddBenchCommand(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<BenchFlags>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prompt and generation speed");
  cmd->add_option("--model", flags->model, "Model folder (Hugging Face layout)")->required();
  cmd->add_option("--prompt-tokens", flags->prompt_tokens, "Prompt length");
  cmd->add_option("--gen-tokens", flags->gen_tokens, "Tokens to generate");
  cmd->add_option("--threads", flags->threads, "Worker threads (0 = one per core)");
  cmd->add_option("--repeats", flags->repeats, "Runs; the median is reported");
  cmd->add_option("--ctx", flags->ctx, "Context limit (default: prompt + generated tokens)");
  cmd->add_flag("--json", flags->json, "Print one JSON object");
  cmd->callback([flags, exit_code] { *exit_code = RunBenchCommand(*flags); });
}

}  // namespace meshlm::cli
