// Registration of the `meshlm` subcommands; each lives in its own file.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace meshlm::cli {

/// Each Add*Command adds one subcommand to `app`. The subcommand's callback stores its
/// exit code in *exit_code.
void AddGenerateCommand(CLI::App& app, int* exit_code);
void AddBenchCommand(CLI::App& app, int* exit_code);
void AddPlanCommand(CLI::App& app, int* exit_code);
void AddLaunchCommand(CLI::App& app, int* exit_code);
void AddCommtestCommand(CLI::App& app, int* exit_code);
void AddTokenizeCommand(CLI::App& app, int* exit_code);
void AddServeCommand(CLI::App& app, int* exit_code);
void AddStopCommand(CLI::App& app, int* exit_code);
void AddConfigCommand(CLI::App& app, int* exit_code);
void AddVerifyCommand(CLI::App& app, int* exit_code);
void AddSyncCommand(CLI::App& app, int* exit_code);

/// The bundled demo model that commands use without --model: the installed copy
/// (BINDIR/../share/meshlm/models/meshlm-demo-6m) when there is one, else the source
/// tree's.
std::string DefaultModel();

}  // namespace meshlm::cli
