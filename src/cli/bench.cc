// meshlm bench: prompt and generation speed, on one process or under `meshlm launch`.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <memory>

#include "cli/commands.h"
#include "cli/job.h"
#include "engine/generate.h"
#include "kernels/kernels.h"

namespace meshlm::cli {
namespace {

struct BenchFlags {
  JobFlags job;
  size_t prompt_tokens = 128;
  size_t gen_tokens = 64;
  size_t repeats = 1;
  size_t batch = 1;
  bool json = false;
};

int RunBenchCommand(const BenchFlags& f) {
  auto job = StartJob(f.job, f.prompt_tokens + f.gen_tokens);
  if (!job.ok()) {
    fmt::print(stderr, "meshlm bench: {}\n", job.status().message());
    return 1;
  }
  engine::BenchResult r;
  const int code = RunJob(*job, "bench", [&]() -> Status {
    MESHLM_ASSIGN_OR_RETURN(
        r, engine::RunBench(*job->executor, f.prompt_tokens, f.gen_tokens, f.repeats, f.batch));
    return OkStatus();
  });
  if (code != 0 || job->world->rank() != 0) return code;
  {
    const size_t world = job->world->size(), threads = job->pool->num_threads();
    const double gbps = job->executor->model().weight_bytes() * world * r.gen_tps() / r.batch / 1e9;
    if (f.json) {
      fmt::print(
          "{{\"prompt_tokens\": {}, \"gen_tokens\": {}, \"prompt_tokens_per_sec\": {:.3f}, "
          "\"tokens_per_sec\": {:.3f}, \"batch\": {}, \"seconds\": {:.3f}, \"comm_ms_per_token\": "
          "{:.3f}, "
          "\"compute_ms_per_token\": {:.3f}, \"peak_rss_bytes\": [{}], \"ranks\": {}, "
          "\"threads\": {}, \"target\": \"{}\", \"load_seconds\": {:.3f}}}\n",
          r.prompt_tokens, r.gen_tokens, r.prompt_tps(), r.gen_tps(), r.batch, r.seconds,
          r.comm_seconds_per_token * 1e3, r.compute_seconds_per_token * 1e3,
          fmt::join(job->peak_rss, ", "), world, threads, kernels::CurrentTarget(),
          job->load_seconds);
    } else {
      fmt::print("model            {}\n", f.job.model);
      fmt::print("ranks x threads  {} x {} ({})\n", world, threads, kernels::CurrentTarget());
      fmt::print("load seconds     {:.3f}\n", job->load_seconds);
      fmt::print("prompt_tokens    {}\n", r.prompt_tokens);
      fmt::print("gen_tokens       {}{}\n", r.gen_tokens,
                 r.batch > 1 ? fmt::format(" x {} sequences", r.batch) : "");
      fmt::print("prompt tok/s     {:.2f}\n", r.prompt_tps());
      fmt::print("tokens_per_sec   {:.2f}  (~{:.1f} GB/s of weights)\n", r.gen_tps(), gbps);
      fmt::print("seconds          {:.3f}\n", r.seconds);
      fmt::print("per token        {:.3f} ms compute, {:.3f} ms communication\n",
                 r.compute_seconds_per_token * 1e3, r.comm_seconds_per_token * 1e3);
      for (size_t i = 0; i < job->peak_rss.size(); ++i) {
        fmt::print("peak RSS rank {}  {:.1f} MiB\n", i, job->peak_rss[i] / 1048576.0);
      }
    }
  }
  return 0;
}

}  // namespace

void AddBenchCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<BenchFlags>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prompt and generation speed");
  AddJobFlags(cmd, &f->job);
  cmd->add_option("--prompt-tokens", f->prompt_tokens, "Prompt length");
  cmd->add_option("--gen-tokens", f->gen_tokens, "Tokens to generate");
  cmd->add_option("--repeats", f->repeats, "Runs; the median is reported");
  cmd->add_option("--batch", f->batch,
                  "Sequences decoded together, one batched step for all (tokens_per_sec "
                  "counts all of them)");
  cmd->add_flag("--json", f->json, "Print one JSON object");
  cmd->callback([f, exit_code] { *exit_code = RunBenchCommand(*f); });
}

}  // namespace meshlm::cli
