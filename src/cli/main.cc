// The meshlm binary: parses the subcommand and hands over to a library.
#include <cstdio>

#include "cli/commands.h"
#include "cluster/launcher.h"

int main(int argc, char** argv) {
  meshlm::cluster::WatchLauncher();
  CLI::App app{"meshlm: run one large language model across several machines"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(MESHLM_VERSION));
  // --help shows every option's default; subcommands inherit this when they are added.
  app.option_defaults()->always_capture_default();
  int exit_code = 0;
  meshlm::cli::AddGenerateCommand(app, &exit_code);
  meshlm::cli::AddBenchCommand(app, &exit_code);
  meshlm::cli::AddPlanCommand(app, &exit_code);
  meshlm::cli::AddLaunchCommand(app, &exit_code);
  meshlm::cli::AddCommtestCommand(app, &exit_code);
  meshlm::cli::AddTokenizeCommand(app, &exit_code);
  meshlm::cli::AddServeCommand(app, &exit_code);
  meshlm::cli::AddStopCommand(app, &exit_code);
  meshlm::cli::AddConfigCommand(app, &exit_code);
  meshlm::cli::AddVerifyCommand(app, &exit_code);
  meshlm::cli::AddSyncCommand(app, &exit_code);
  // Options whose text already says their default (usually "0 = automatic" values,
  // which a bare [0] would misstate) show that text alone.
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    for (CLI::Option* opt : sub->get_options([](CLI::Option*) { return true; })) {
      if (opt->get_description().find("default") != std::string::npos) opt->default_str("");
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
