#include "base/meminfo.h"

#include <fstream>
#include <string>

namespace meshlm {

size_t MemAvailableBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  size_t kb = 0;
  while (in >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  return 0;
}

}  // namespace meshlm
