// meshlm bench (being written).
#include "cli/commands.h"

namespace meshlm::cli {
void AddBenchCommand(CLI::App& app, int* exit_code) { (void)app; (void)exit_code; }
}  // namespace meshlm::cli
