// Placeholder: `meshlm config` is being written.
#include "cli/commands.h"

namespace meshlm::cli {

void AddConfigCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("config", "(not available yet)");
  cmd->callback([exit_code] { *exit_code = 2; });
}

}  // namespace meshlm::cli
