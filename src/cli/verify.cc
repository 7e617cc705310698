// Placeholder: `meshlm verify` is being written.
#include "cli/commands.h"

namespace meshlm::cli {

void AddVerifyCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("verify", "(not available yet)");
  cmd->callback([exit_code] { *exit_code = 2; });
}

}  // namespace meshlm::cli
