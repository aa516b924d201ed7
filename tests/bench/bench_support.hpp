#pragma once
// What every benchmark prints besides its own figures.

#include <cstdlib>
#include <fstream>
#include <string>

namespace bench {

// This process's peak resident memory (VmHWM), MiB.
inline long peak_rss_mb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6) / 1024;
  }
  return 0;
}

}  // namespace bench
