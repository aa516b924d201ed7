#pragma once
// Runs the shore-events program (built beside the tests) and captures its exit code, stdout and
// stderr.

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace shoredaq::storage::testing {

struct Run {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline Run run_tool(const std::string& args) {
  static std::atomic<int> counter{0};
  const std::string err_file = (std::filesystem::temp_directory_path() /
                                ("shore-events-err-" + std::to_string(::getpid()) + "-" + std::to_string(counter++)))
                                   .string();
  const std::string cmd = std::string(SHOREDAQ_BINARY_DIR) + "/storage/shore-events " + args + " 2>" + err_file;
  Run r;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.out.append(buf, n);
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream err(err_file);
  r.err.assign(std::istreambuf_iterator<char>(err), std::istreambuf_iterator<char>());
  std::filesystem::remove(err_file);
  return r;
}

}  // namespace shoredaq::storage::testing
