// Placeholder: `meshlm sync` is being written.
#include "cli/commands.h"

namespace meshlm::cli {

void AddSyncCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("sync", "(not available yet)");
  cmd->callback([exit_code] { *exit_code = 2; });
}

}  // namespace meshlm::cli
