// The flags that `generate`, `bench` and `serve` share (model, threads, sharding, the
// start gate), and their job start-up and run (engine/job.h) with the start gate and
// error printing of the command line.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "base/status.h"
#include "cluster/gate.h"
#include "engine/job.h"

namespace meshlm::cli {

struct JobFlags : engine::JobOptions {
  bool no_gate = false;  // skip the start gate (cluster/gate.h)
};

/// Adds --model, --threads, --ctx, --tp, --pp, --ep, --layers, --no-gate to a subcommand.
void AddJobFlags(CLI::App* cmd, JobFlags* flags);

/// engine::StartJob with the start gate unless --no-gate. `default_ctx` applies when
/// --ctx is not given (0 = the model's). `gate_report`, when given, receives this rank's
/// gate measurements (untouched with --no-gate).
Result<engine::Job> StartJob(const JobFlags& flags, size_t default_ctx,
                             cluster::GateReport* gate_report = nullptr);

/// engine::RunJob; returns the process exit code, printing an error with `what` and the
/// rank.
int RunJob(engine::Job& job, const char* what, const std::function<Status()>& drive);

}  // namespace meshlm::cli
