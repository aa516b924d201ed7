// The systemd units as configured for installation (<build>/systemd/units/) must pass
// `systemd-analyze verify` without a single warning and score an exposure of at most 2.0 in
// `systemd-analyze security --offline=true`; sysusers.d/tmpfiles.d snippets must apply.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <string>

namespace fs = std::filesystem;

namespace {

const fs::path units_dir = fs::path(SHOREDAQ_BINARY_DIR) / "systemd" / "units";
constexpr double max_exposure = 2.0;

std::optional<fs::path> find_program(const std::string& name) {
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

Result run(const std::string& command) {
  Result result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string quote(const fs::path& p) { return "'" + p.string() + "'"; }

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

std::optional<double> exposure_score(const std::string& security_output) {
  static const std::regex overall(R"(Overall exposure level for [^:]+: ([0-9]+\.[0-9]+))");
  std::smatch match;
  if (!std::regex_search(security_output, match, overall)) return std::nullopt;
  return std::stod(match[1].str());
}

class SystemdUnits : public ::testing::Test {
protected:
  void SetUp() override {
    analyze_ = find_program("systemd-analyze");
    if (!analyze_) GTEST_SKIP() << "systemd-analyze not installed: cannot verify the units";
    ASSERT_TRUE(fs::exists(units_dir / "shoredaq.service")) << "units not configured in " << units_dir;
    dir_ = fs::temp_directory_path() /
           ("shoredaq-units-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  // A copy of the configured unit under `instance_name` whose ExecStart program exists: the
  // built program if there is one, otherwise a stub (verify checks the program is executable,
  // not what it does). Everything else stays byte-identical.
  fs::path prepare(const std::string& unit, const std::string& instance_name, const std::string& built_program) {
    std::string text = read_text(units_dir / unit);
    const std::regex exec_start(R"(ExecStart=(\S+))");
    std::smatch match;
    EXPECT_TRUE(std::regex_search(text, match, exec_start)) << unit;
    const std::string installed_program = match[1].str();
    EXPECT_EQ(installed_program.front(), '/') << "ExecStart must be absolute: " << installed_program;
    fs::path program = fs::path(SHOREDAQ_BINARY_DIR) / built_program;
    if (!fs::exists(program)) {
      program = dir_ / "bin" / fs::path(installed_program).filename();
      write_text(program, "#!/bin/sh\nexit 0\n");
      fs::permissions(program, fs::perms::owner_all);
    }
    text.replace(static_cast<std::size_t>(match.position(1)), static_cast<std::size_t>(match.length(1)), program.string());
    const fs::path copy = dir_ / instance_name;
    write_text(copy, text);
    return copy;
  }

  void expect_verifies_and_scores(const fs::path& unit) {
    const Result verify = run(quote(*analyze_) + " verify " + quote(unit));
    EXPECT_EQ(verify.exit_code, 0) << verify.output;
    EXPECT_EQ(verify.output, "") << "systemd-analyze verify warns about " << unit.filename();

    const Result security = run(quote(*analyze_) + " security --offline=true " + quote(unit));
    const auto score = exposure_score(security.output);
    ASSERT_TRUE(score.has_value()) << security.output;
    std::printf("%s: exposure %.1f\n", unit.filename().c_str(), *score);
    RecordProperty(unit.filename().string() + "_exposure", std::to_string(*score));
    EXPECT_LE(*score, max_exposure) << security.output;
  }

  std::optional<fs::path> analyze_;
  fs::path dir_;
};

}  // namespace

TEST_F(SystemdUnits, DaemonUnitVerifiesAndIsHardened) {
  const std::string text = read_text(units_dir / "shoredaq.service");
  EXPECT_NE(text.find("Type=notify"), std::string::npos);
  EXPECT_NE(text.find("WatchdogSec="), std::string::npos);
  EXPECT_NE(text.find("Restart=on-failure"), std::string::npos);
  EXPECT_NE(text.find("User=shoredaq"), std::string::npos);
  EXPECT_NE(text.find("/shoredaq --config %E/shoredaq/shoredaq.toml"), std::string::npos);
  EXPECT_EQ(text.find("@CMAKE"), std::string::npos) << "unsubstituted template variable";
  expect_verifies_and_scores(prepare("shoredaq.service", "shoredaq.service", "firmware/shoredaq"));
}

TEST_F(SystemdUnits, InstanceTemplateVerifiesAndIsHardened) {
  const std::string text = read_text(units_dir / "shoredaq@.service");
  EXPECT_NE(text.find("--config %E/shoredaq/%i.toml"), std::string::npos);
  EXPECT_NE(text.find("StateDirectory=shoredaq/%i"), std::string::npos);
  expect_verifies_and_scores(prepare("shoredaq@.service", "shoredaq@detector49.service", "firmware/shoredaq"));
}

// The farm's per-role templates (issue 13): each runs the daemon with its --role, so a process
// cannot come up with another role's configuration.
TEST_F(SystemdUnits, FarmRoleTemplatesVerifyAndAreHardened) {
  for (const std::string role : {"ingest", "filter", "writer"}) {
    const std::string name = "shoredaq-" + role + "@.service";
    const std::string text = read_text(units_dir / name);
    EXPECT_NE(text.find("--config %E/shoredaq/%i.toml --role " + role), std::string::npos) << name;
    EXPECT_NE(text.find("StateDirectory=shoredaq/%i"), std::string::npos) << name;
    EXPECT_NE(text.find("Type=notify"), std::string::npos) << name;
    EXPECT_EQ(text.find("@CMAKE"), std::string::npos) << "unsubstituted template variable in " << name;
    expect_verifies_and_scores(prepare(name, "shoredaq-" + role + "@b1.service", "firmware/shoredaq"));
  }
}

TEST_F(SystemdUnits, DuSimulatorTemplateVerifiesAndIsHardened) {
  expect_verifies_and_scores(prepare("du-sim@.service", "du-sim@rig1.service", "drivers/du-sim"));
}

// The Tier-0 transfer agent: the spool's owner, its own config, started only once configured.
TEST_F(SystemdUnits, TransferAgentUnitVerifiesAndIsHardened) {
  const std::string text = read_text(units_dir / "shore-transfer.service");
  EXPECT_NE(text.find("User=shoredaq"), std::string::npos);
  EXPECT_NE(text.find("StateDirectory=shoredaq\n"), std::string::npos);
  EXPECT_NE(text.find("/shore-transfer --config %E/shoredaq/shore-transfer.toml"), std::string::npos);
  EXPECT_NE(text.find("ConditionPathExists=%E/shoredaq/shore-transfer.toml"), std::string::npos);
  EXPECT_NE(text.find("Restart=on-failure"), std::string::npos);
  EXPECT_EQ(text.find("@CMAKE"), std::string::npos) << "unsubstituted template variable";
  EXPECT_EQ(text.find("@SHOREDAQ"), std::string::npos) << "unsubstituted template variable";
  expect_verifies_and_scores(prepare("shore-transfer.service", "shore-transfer.service", "storage/shore-transfer"));
}

// The check above must be able to fail: a bare unit scores far above the limit, and a typo'd
// key makes verify talk.
TEST_F(SystemdUnits, ChecksCatchAnUnhardenedOrMistypedUnit) {
  const fs::path bare = dir_ / "bare.service";
  write_text(bare, "[Service]\nExecStart=/bin/true\n");
  const auto score = exposure_score(run(quote(*analyze_) + " security --offline=true " + quote(bare)).output);
  ASSERT_TRUE(score.has_value());
  EXPECT_GT(*score, max_exposure);

  std::string text = read_text(prepare("shoredaq.service", "typo.service", "firmware/shoredaq"));
  text.replace(text.find("ProtectSystem="), 14, "ProtectSystm=");
  write_text(dir_ / "typo.service", text);
  EXPECT_NE(run(quote(*analyze_) + " verify " + quote(dir_ / "typo.service")).output, "");
}

TEST_F(SystemdUnits, SysusersAndTmpfilesApplyToAScratchRoot) {
  const auto sysusers = find_program("systemd-sysusers");
  const auto tmpfiles = find_program("systemd-tmpfiles");
  if (!sysusers || !tmpfiles) GTEST_SKIP() << "systemd-sysusers/systemd-tmpfiles not installed";
  if (::geteuid() != 0) GTEST_SKIP() << "applying sysusers/tmpfiles to a scratch root needs root";

  const fs::path root = dir_ / "root";
  fs::create_directories(root / "etc");
  write_text(root / "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
  write_text(root / "etc/group", "root:x:0:\n");
  Result r = run(quote(*sysusers) + " --root=" + quote(root) + " " + quote(units_dir / "sysusers.d/shoredaq.conf"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string passwd = read_text(root / "etc/passwd");
  EXPECT_NE(passwd.find("\nshoredaq:x:"), std::string::npos) << passwd;
  EXPECT_NE(passwd.find(":/usr/sbin/nologin"), std::string::npos) << passwd;

  // The example config must be copied to /etc/shoredaq/shoredaq.toml when none exists...
  const std::string tmpfiles_conf = read_text(units_dir / "tmpfiles.d/shoredaq.conf");
  const std::regex copy_line(R"(\nC\s+(\S+)\s+\S+\s+\S+\s+\S+\s+\S+\s+(\S+))");
  std::smatch match;
  ASSERT_TRUE(std::regex_search(tmpfiles_conf, match, copy_line)) << tmpfiles_conf;
  EXPECT_EQ(match[1].str(), "/etc/shoredaq/shoredaq.toml");
  write_text(root / fs::path(match[2].str()).relative_path(), "# example\n");
  r = run(quote(*tmpfiles) + " --root=" + quote(root) + " --create " + quote(units_dir / "tmpfiles.d/shoredaq.conf"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_text(root / "etc/shoredaq/shoredaq.toml"), "# example\n");
  struct stat st {};
  ASSERT_EQ(::stat((root / "var/lib/shoredaq").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_NE(st.st_uid, 0u);  // owned by the shoredaq user, not root

  // ...and never overwrite an operator's file.
  write_text(root / "etc/shoredaq/shoredaq.toml", "# edited by the operator\n");
  r = run(quote(*tmpfiles) + " --root=" + quote(root) + " --create " + quote(units_dir / "tmpfiles.d/shoredaq.conf"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_text(root / "etc/shoredaq/shoredaq.toml"), "# edited by the operator\n");
}
