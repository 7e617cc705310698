// What the kernel says about this host's memory.
#pragma once

#include <cstddef>

namespace meshlm {

/// MemAvailable of /proc/meminfo in bytes (what can be allocated without swapping), or 0
/// when it cannot be read.
size_t MemAvailableBytes();

}  // namespace meshlm
