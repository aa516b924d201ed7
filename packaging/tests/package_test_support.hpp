// Shared by the packaging tests: running commands, reading files, the packages the ctest fixture
// `packaging.build_test_debs` built (packaging/tests/build_test_debs.sh), scratch folders.
#pragma once

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace shoredaq::packaging_test {

namespace fs = std::filesystem;

inline const fs::path test_debs_dir = SHOREDAQ_TEST_DEBS_DIR;
inline const fs::path source_dir = SHOREDAQ_SOURCE_DIR;
inline const fs::path build_deb_script = source_dir / "packaging" / "build-deb";

inline std::optional<fs::path> find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const fs::path candidate = fs::path(dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

struct Result {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs a shell command line with no standard input (dpkg must never wait for an answer).
inline Result run(const std::string& command) {
  Result result;
  FILE* pipe = ::popen(("(" + command + ") </dev/null 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// Single-quoted for the shell (paths here never hold a quote, but be exact anyway).
inline std::string quote(const std::string& text) {
  std::string quoted = "'";
  for (const char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}
inline std::string quote(const fs::path& p) { return quote(p.string()); }

inline std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

inline void append_text(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary | std::ios::app) << text;
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A fresh folder removed with everything in it at the end of the test.
class ScratchDir {
public:
  explicit ScratchDir(const std::string& purpose) {
    path_ = fs::temp_directory_path() / ("shoredaq-" + purpose + "-" + std::to_string(::getpid()) + "-" +
                                         std::to_string(std::random_device{}()));
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const fs::path& path() const { return path_; }

private:
  fs::path path_;
};

// The fixture's packages: the release and its rebuild with a higher version.
inline fs::path release_deb() { return test_debs_dir / "release.deb"; }
inline fs::path rebuild_deb() { return test_debs_dir / "rebuild.deb"; }

// Skips where Debian's package tools are missing; fails when the fixture did not build.
#define SHOREDAQ_REQUIRE_TEST_DEBS()                                                                   \
  do {                                                                                                \
    if (!::shoredaq::packaging_test::find_program("dpkg-deb"))                                        \
      GTEST_SKIP() << "dpkg-deb is not installed (Debian: dpkg): the package cannot be inspected";    \
    if (!::shoredaq::packaging_test::find_program("help2man") ||                                      \
        !::shoredaq::packaging_test::find_program("dpkg-shlibdeps"))                                  \
      GTEST_SKIP() << "help2man or dpkg-shlibdeps is not installed: the fixture built no package";    \
    ASSERT_TRUE(std::filesystem::exists(::shoredaq::packaging_test::release_deb()) &&                 \
                std::filesystem::exists(::shoredaq::packaging_test::rebuild_deb()))                   \
        << "no packages in " << ::shoredaq::packaging_test::test_debs_dir                             \
        << ": run the tests through ctest (fixture packaging.build_test_debs builds them)";           \
  } while (false)

// One control field of a package (dpkg-deb --field).
inline std::string control_field(const fs::path& deb, const std::string& field) {
  const Result r = run("dpkg-deb --field " + quote(deb) + " " + field);
  std::string value = r.output;
  while (!value.empty() && (value.back() == '\n' || value.back() == ' ')) value.pop_back();
  return value;
}

// The Debian version build-deb derives from a `git describe` string, with this build tree's project
// version (top CMakeLists.txt, as packaging/CMakeLists.txt wrote it for build-deb).
inline std::string debian_version_of(const std::string& describe) {
  const std::string env = read_text(fs::path(SHOREDAQ_BINARY_DIR) / "packaging/build-deb.env");
  const std::string key = "SHOREDAQ_PROJECT_VERSION='";
  const auto at = env.find(key);
  EXPECT_NE(at, std::string::npos) << env;
  if (at == std::string::npos) return "";
  const std::string project_version = env.substr(at + key.size(), env.find('\'', at + key.size()) - at - key.size());
  const Result r = run(quote(build_deb_script) + " --debian-version-of " + quote(describe) + " " +
                       quote(project_version) + " " + quote(source_dir));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::string version = r.output;
  while (!version.empty() && version.back() == '\n') version.pop_back();
  return version;
}

}  // namespace shoredaq::packaging_test
