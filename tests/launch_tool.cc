// A stand-in for the meshlm binary with only the launch and commtest subcommands, so the
// launcher tests do not depend on the inference engine being built.
#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"meshlm launch/commtest (test build)"};
  app.require_subcommand(1);
  int exit_code = 0;
  meshlm::cli::AddLaunchCommand(app, &exit_code);
  meshlm::cli::AddCommtestCommand(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
