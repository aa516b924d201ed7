// HIL-style: the package installed, upgraded, removed and purged by dpkg itself, with its real
// maintainer scripts, in a scratch root: nothing of this machine changes and nothing is left
// behind (the root is a temporary folder, removed by each test), so a failed earlier run cannot
// disturb this one and no other test ever sees the package.
//
// How: `dpkg --root=R --force-script-chrootless` runs the maintainer scripts on this machine with
// DPKG_ROOT=R instead of chrooting into R (which holds no shell). The scripts honour DPKG_ROOT:
// `systemd-sysusers --root`, `systemd-tmpfiles --root`, deb-systemd-helper (DPKG_ROOT-aware),
// and they never touch the running system's services then. --force-depends: R holds no
// libraries; the programs in R run with this machine's, which the package's Depends names.
// R gets what a Debian root has and this test needs: dpkg's database, /etc/passwd and /etc/group
// with root, and a copy of this machine's systemd units (systemd-analyze verify --root resolves
// sysinit.target & co in R). Needs root (dpkg sets owners) and the fixture's packages.
#include "package_test_support.hpp"

#include <sys/stat.h>

#include <regex>

namespace {

using namespace shoredaq::packaging_test;

class ScratchRootInstall : public ::testing::Test {
protected:
  void SetUp() override {
    SHOREDAQ_REQUIRE_TEST_DEBS();
    if (!find_program("dpkg")) GTEST_SKIP() << "dpkg is not installed";
    if (::geteuid() != 0) GTEST_SKIP() << "installing into a scratch root needs root (dpkg sets owners)";
    for (const char* tool : {"systemd-sysusers", "systemd-tmpfiles", "deb-systemd-helper"})
      if (!find_program(tool)) GTEST_SKIP() << tool << " is not installed (Debian: systemd, init-system-helpers)";
    root_ = scratch_.path() / "root";
    fs::create_directories(root_ / "var/lib/dpkg/info");
    fs::create_directories(root_ / "var/lib/dpkg/updates");
    write_text(root_ / "var/lib/dpkg/status", "");
    write_text(root_ / "var/lib/dpkg/available", "");
    write_text(root_ / "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
    write_text(root_ / "etc/group", "root:x:0:\n");
    if (fs::is_directory("/lib/systemd/system")) {
      fs::create_directories(root_ / "usr/lib/systemd");
      const Result copied = run("cp -a /lib/systemd/system " + quote(root_ / "usr/lib/systemd/system"));
      ASSERT_EQ(copied.exit_code, 0) << copied.output;
    }
  }

  // dpkg on the scratch root, never asking (old conffiles kept, as `apt` does non-interactively
  // with --force-confold); SHOREDAQ_PURGE_DATA only when given.
  Result dpkg(const std::string& action, const std::string& purge_data = "") {
    const std::string env = purge_data.empty() ? "env -u SHOREDAQ_PURGE_DATA -u DPKG_ROOT"
                                               : "env -u DPKG_ROOT SHOREDAQ_PURGE_DATA=" + purge_data;
    return run(env + " dpkg --root=" + quote(root_) + " --log=" + quote(root_ / "var/log/dpkg.log") +
               " --force-script-chrootless --force-depends --force-confdef --force-confold " + action);
  }
  Result install(const fs::path& deb) { return dpkg("--install " + quote(fs::canonical(deb))); }

  // "install ok installed 0.1.0..." or "" when dpkg does not know the package.
  std::string status() {
    const Result r = run("dpkg-query --admindir=" + quote(root_ / "var/lib/dpkg") +
                         " --show --showformat='${Status} ${Version}' shoredaq");
    return r.exit_code == 0 ? r.output : "";
  }

  fs::path in_root(const std::string& path) const { return root_ / fs::path(path).relative_path(); }

  // uid and gid of a user in the root's /etc/passwd, or nullopt.
  std::optional<std::pair<unsigned, unsigned>> user(const std::string& name) {
    std::smatch match;
    const std::string passwd = read_text(in_root("/etc/passwd"));
    if (!std::regex_search(passwd, match, std::regex("(^|\n)" + name + ":x:([0-9]+):([0-9]+):[^:\n]*:([^:\n]*):([^:\n]*)")))
      return std::nullopt;
    home_ = match[4].str();
    shell_ = match[5].str();
    return std::make_pair(static_cast<unsigned>(std::stoul(match[2].str())),
                          static_cast<unsigned>(std::stoul(match[3].str())));
  }

  bool enabled(const std::string& unit) {
    return fs::is_symlink(in_root("/etc/systemd/system/multi-user.target.wants/" + unit));
  }

  ScratchDir scratch_{"deb-install"};
  fs::path root_;
  std::string home_, shell_;
};

struct Stat {
  unsigned mode = 0, uid = 0, gid = 0;
};
std::optional<Stat> stat_of(const fs::path& p) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return std::nullopt;
  return Stat{st.st_mode & 07777u, st.st_uid, st.st_gid};
}

// Acceptance: installed, the programs run and report the version, the user and its folders exist,
// the units verify where they are installed, the services are enabled but nothing was started.
TEST_F(ScratchRootInstall, InstallCreatesUserFoldersConfigurationAndEnablesTheServices) {
  const Result installed = install(release_deb());
  ASSERT_EQ(installed.exit_code, 0) << installed.output;
  EXPECT_TRUE(contains(installed.output, "enabled, not started")) << installed.output;
  EXPECT_EQ(status(), "install ok installed " + control_field(release_deb(), "Version"));

  const Result version = run(quote(in_root("/usr/bin/shoredaq")) + " --version");
  ASSERT_EQ(version.exit_code, 0) << version.output;
  std::string describe = version.output;
  while (!describe.empty() && describe.back() == '\n') describe.pop_back();
  EXPECT_EQ(status(), "install ok installed " + debian_version_of(describe)) << "shoredaq --version: " << describe;
  EXPECT_EQ(run(quote(in_root("/usr/bin/shorectl")) + " --version").output, version.output);
  for (const char* program : {"du-sim", "shore-events", "shore-transfer", "clb-bridge"})
    EXPECT_EQ(run(quote(in_root(std::string("/usr/bin/") + program)) + " --help").exit_code, 0) << program;

  const auto ids = user("shoredaq");
  ASSERT_TRUE(ids.has_value()) << read_text(in_root("/etc/passwd"));
  EXPECT_NE(ids->first, 0u);
  EXPECT_EQ(home_, "/var/lib/shoredaq");
  EXPECT_EQ(shell_, "/usr/sbin/nologin");
  EXPECT_TRUE(contains(read_text(in_root("/etc/group")), "shoredaq:x:" + std::to_string(ids->second) + ":"));
  for (const char* dir : {"/var/lib/shoredaq", "/var/log/shoredaq"}) {
    const auto st = stat_of(in_root(dir));
    ASSERT_TRUE(st.has_value()) << dir;
    EXPECT_EQ(st->mode, 0750u) << dir;
    EXPECT_EQ(st->uid, ids->first) << dir;
    EXPECT_EQ(st->gid, ids->second) << dir;
  }
  const auto etc = stat_of(in_root("/etc/shoredaq"));
  ASSERT_TRUE(etc.has_value());
  EXPECT_EQ(etc->mode, 0755u);
  EXPECT_EQ(etc->uid, 0u);
  EXPECT_EQ(read_text(in_root("/etc/shoredaq/shoredaq.toml")), read_text(source_dir / "firmware/shoredaq.example.toml"));
  const Result check = run(quote(in_root("/usr/bin/shoredaq")) + " --check-config " +
                           quote(in_root("/etc/shoredaq/shoredaq.toml")));
  EXPECT_EQ(check.exit_code, 0) << check.output;

  EXPECT_TRUE(enabled("shoredaq.service"));
  EXPECT_TRUE(enabled("shore-transfer.service"));
  EXPECT_EQ(fs::read_symlink(in_root("/etc/systemd/system/multi-user.target.wants/shoredaq.service")),
            "/lib/systemd/system/shoredaq.service");
  EXPECT_FALSE(enabled("shoredaq@.service"));
  EXPECT_FALSE(enabled("du-sim@.service"));
  EXPECT_FALSE(enabled("shoredaq-filter@.service"));
  EXPECT_FALSE(fs::exists(in_root("/run/shoredaq.dpkg-restart"))) << "nothing was running, nothing to restart";

  if (const auto analyze = find_program("systemd-analyze")) {
    const Result verify = run(quote(*analyze) + " verify --root=" + quote(root_) +
                              " shoredaq.service shoredaq@north.service du-sim@rig1.service shore-transfer.service"
                              " shoredaq-ingest@du1.service shoredaq-filter@f1.service shoredaq-writer@b1.service");
    EXPECT_EQ(verify.exit_code, 0) << verify.output;
    EXPECT_EQ(verify.output, "") << "systemd-analyze verify warns about the installed units";
  }
}

// Acceptance: an upgrade to a rebuilt package keeps the operator's edited configuration
// (a conffile) and the services' enablement.
TEST_F(ScratchRootInstall, UpgradeKeepsAnEditedConffileAndTheEnabledServices) {
  ASSERT_EQ(install(release_deb()).exit_code, 0);
  const fs::path config = in_root("/etc/shoredaq/shoredaq.toml");
  std::string edited = read_text(config);
  const std::string default_level = "log_level = \"info\"";
  ASSERT_TRUE(contains(edited, default_level));
  edited.replace(edited.find(default_level), default_level.size(), "log_level = \"debug\"");
  edited += "# edited by the operator\n";
  write_text(config, edited);

  const Result upgraded = install(rebuild_deb());
  ASSERT_EQ(upgraded.exit_code, 0) << upgraded.output;
  const std::string new_version = control_field(rebuild_deb(), "Version");
  EXPECT_EQ(run("dpkg --compare-versions " + quote(new_version) + " gt " +
                quote(control_field(release_deb(), "Version")))
                .exit_code,
            0);
  EXPECT_EQ(status(), "install ok installed " + new_version);
  EXPECT_EQ(read_text(config), edited);
  for (const char* leftover : {".dpkg-dist", ".dpkg-new", ".dpkg-old"})
    EXPECT_FALSE(fs::exists(config.string() + leftover)) << leftover;
  const Result check = run(quote(in_root("/usr/bin/shoredaq")) + " --check-config " + quote(config));
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_TRUE(enabled("shoredaq.service"));
  EXPECT_TRUE(enabled("shore-transfer.service"));
}

// An administrator who disabled a service keeps it disabled across upgrades (deb-systemd-helper's
// record, as Debian packages do).
TEST_F(ScratchRootInstall, UpgradeKeepsAServiceTheAdministratorDisabled) {
  const auto systemctl = find_program("systemctl");
  if (!systemctl) GTEST_SKIP() << "systemctl is not installed";
  ASSERT_EQ(install(release_deb()).exit_code, 0);
  const Result disabled = run(quote(*systemctl) + " --root=" + quote(root_) + " disable shoredaq.service");
  ASSERT_EQ(disabled.exit_code, 0) << disabled.output;
  ASSERT_FALSE(enabled("shoredaq.service"));

  ASSERT_EQ(install(rebuild_deb()).exit_code, 0);
  EXPECT_FALSE(enabled("shoredaq.service"));
  EXPECT_TRUE(enabled("shore-transfer.service"));
}

// Acceptance: remove keeps configuration and data; purge removes the configuration, logs and
// the package's records but keeps /var/lib/shoredaq unless the administrator asks for it with
// SHOREDAQ_PURGE_DATA=1.
TEST_F(ScratchRootInstall, RemoveKeepsDataAndPurgeRemovesItOnlyWhenAsked) {
  ASSERT_EQ(install(release_deb()).exit_code, 0);
  const fs::path store_file = in_root("/var/lib/shoredaq/store/data.mdb");
  write_text(store_file, "events\n");
  write_text(in_root("/var/log/shoredaq/shoredaq.log"), "log\n");
  const fs::path operator_key = in_root("/etc/shoredaq/node.secret");

  const Result removed = dpkg("--remove shoredaq");
  ASSERT_EQ(removed.exit_code, 0) << removed.output;
  EXPECT_TRUE(status().starts_with("deinstall ok config-files")) << status();
  EXPECT_FALSE(fs::exists(in_root("/usr/bin/shoredaq")));
  EXPECT_FALSE(fs::exists(in_root("/lib/systemd/system/shoredaq.service")));
  EXPECT_TRUE(fs::exists(in_root("/etc/shoredaq/shoredaq.toml")));
  EXPECT_EQ(read_text(store_file), "events\n");
  EXPECT_TRUE(user("shoredaq").has_value());

  write_text(operator_key, "secret\n");
  const Result purged = dpkg("--purge shoredaq");
  ASSERT_EQ(purged.exit_code, 0) << purged.output;
  EXPECT_EQ(status(), "");
  EXPECT_FALSE(fs::exists(in_root("/etc/shoredaq/shoredaq.toml")));
  EXPECT_TRUE(fs::exists(operator_key)) << "a file the administrator made is not the package's to remove";
  EXPECT_FALSE(fs::exists(in_root("/var/log/shoredaq")));
  EXPECT_EQ(read_text(store_file), "events\n") << "purge must not remove data silently";
  EXPECT_TRUE(contains(purged.output, "SHOREDAQ_PURGE_DATA=1")) << purged.output;
  EXPECT_FALSE(enabled("shoredaq.service"));
  EXPECT_FALSE(fs::exists(in_root("/etc/systemd/system/shoredaq.service"))) << "the removal's mask is lifted";
  EXPECT_FALSE(fs::exists(in_root("/var/lib/systemd/deb-systemd-helper-enabled/shoredaq.service.dsh-also")));

  // Asked for: the data goes too; the system user stays (Debian never removes one).
  fs::remove(operator_key);
  ASSERT_EQ(install(release_deb()).exit_code, 0);
  const Result purged_with_data = dpkg("--purge shoredaq", "1");
  ASSERT_EQ(purged_with_data.exit_code, 0) << purged_with_data.output;
  EXPECT_FALSE(fs::exists(in_root("/var/lib/shoredaq")));
  EXPECT_FALSE(fs::exists(in_root("/etc/shoredaq")));
  EXPECT_TRUE(user("shoredaq").has_value());
}

}  // namespace
