// The maintainer scripts' dealings with a running systemd, which the scratch-root install cannot
// show (there, DPKG_ROOT keeps the scripts away from the running system, and this machine's PID 1
// is no systemd): an upgrade stops every running unit of the package before the binaries are
// replaced and starts exactly those again afterwards; the first install enables the services and
// starts nothing; a removal stops and forgets; an administrator's `disable` is kept.
//
// How: the scripts from the built package run in a private mount namespace (unshare --mount) whose
// /run is an empty tmpfs holding /run/systemd/system (what "systemd is running" looks like to
// them), with stand-ins first on PATH for every program that would act on the system
// (systemctl, deb-systemd-invoke, deb-systemd-helper, systemd-sysusers, systemd-tmpfiles): each
// records its arguments; systemctl lists the units a file says are active. Nothing reaches the
// real /run or the real services. Skipped where unshare is not allowed.
#include "package_test_support.hpp"

namespace {

using namespace shoredaq::packaging_test;

class MaintainerScripts : public ::testing::Test {
protected:
  void SetUp() override {
    SHOREDAQ_REQUIRE_TEST_DEBS();
    if (::geteuid() != 0 || run("unshare --mount --propagation private true").exit_code != 0)
      GTEST_SKIP() << "unshare --mount is not allowed here: cannot fake a running systemd";
    const fs::path control = scratch_.path() / "DEBIAN";
    const Result extracted = run("dpkg-deb -e " + quote(fs::canonical(release_deb())) + " " + quote(control));
    ASSERT_EQ(extracted.exit_code, 0) << extracted.output;
    scripts_ = control;
    log_ = scratch_.path() / "calls.log";
    active_units_ = scratch_.path() / "active-units";
    write_text(active_units_, "");
    write_text(log_, "");
    const fs::path shims = scratch_.path() / "shims";
    // systemctl: `list-units` prints the "active" units (as --plain --no-legend does).
    make_shim(shims / "systemctl", "case \"$1\" in list-units) cat \"$SHIM_ACTIVE_UNITS\" ;; esac\n");
    // deb-systemd-helper: `was-enabled` answers from $SHIM_WAS_ENABLED (a first install: yes).
    make_shim(shims / "deb-systemd-helper",
              "[ \"$1 $2\" = \"--quiet was-enabled\" ] && [ \"${SHIM_WAS_ENABLED:-yes}\" = no ] && exit 1\n");
    for (const char* name : {"deb-systemd-invoke", "systemd-sysusers", "systemd-tmpfiles"}) make_shim(shims / name, "");
    shims_ = shims;
    // A file named like an instance in the scripts' working folder: a pattern the shell expanded
    // instead of passing it to systemctl would show up as this name.
    work_ = scratch_.path() / "cwd";
    write_text(work_ / "shoredaq@north.service", "");
  }

  void make_shim(const fs::path& path, const std::string& behaviour) {
    write_text(path, "#!/bin/sh\necho \"$(basename \"$0\") $*\" >>\"$SHIM_LOG\"\n" + behaviour + "exit 0\n");
    fs::permissions(path, fs::perms::owner_all);
  }

  // Runs maintainer script calls one after the other in one namespace (so /run persists between
  // them, as it does between prerm and postinst), e.g. {"prerm upgrade 2", "postinst configure 1"}.
  Result run_scripts(const std::vector<std::string>& calls, const std::string& was_enabled = "yes") {
    std::string body = "set -e; mount -t tmpfs tmpfs /run; mkdir -p /run/systemd/system; cd " + quote(work_) + "; ";
    for (const std::string& call : calls) body += "echo \"== " + call + "\" >>\"$SHIM_LOG\"; sh " + quote(scripts_) + "/" + call + "; ";
    return run("env -u DPKG_ROOT SHIM_LOG=" + quote(log_) + " SHIM_ACTIVE_UNITS=" + quote(active_units_) +
               " SHIM_WAS_ENABLED=" + was_enabled + " PATH=" + quote(shims_.string() + ":/usr/sbin:/usr/bin:/sbin:/bin") +
               " unshare --mount --propagation private sh -c " + quote(body));
  }

  std::vector<std::string> calls() { return lines_of(read_text(log_)); }

  // The recorded calls of the given program, in order.
  std::vector<std::string> calls_of(const std::string& program) {
    std::vector<std::string> out;
    for (const std::string& line : calls())
      if (line.starts_with(program + " ")) out.push_back(line);
    return out;
  }

  ScratchDir scratch_{"deb-scripts"};
  fs::path scripts_, log_, active_units_, shims_, work_;
};

TEST_F(MaintainerScripts, FirstInstallCreatesTheUserEnablesTheServicesAndStartsNothing) {
  const Result r = run_scripts({"postinst configure"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::vector<std::string> expected_order = {"systemd-sysusers shoredaq.conf", "systemd-tmpfiles --create shoredaq.conf",
                                                   "systemctl --system daemon-reload"};
  std::size_t next = 0;
  for (const std::string& line : calls())
    if (next < expected_order.size() && line == expected_order[next]) ++next;
  EXPECT_EQ(next, expected_order.size()) << "user, then folders, then reload:\n" << read_text(log_);
  const auto helper = calls_of("deb-systemd-helper");
  for (const char* unit : {"shoredaq.service", "shore-transfer.service"})
    EXPECT_NE(std::find(helper.begin(), helper.end(), std::string("deb-systemd-helper enable ") + unit), helper.end())
        << read_text(log_);
  EXPECT_TRUE(calls_of("deb-systemd-invoke").empty()) << "the first install starts nothing:\n" << read_text(log_);
  EXPECT_TRUE(contains(r.output, "not started")) << r.output;
}

TEST_F(MaintainerScripts, UpgradeStopsTheRunningUnitsFirstAndStartsExactlyThoseAfter) {
  write_text(active_units_,
             "shoredaq.service loaded active running shoredaq shore-station DAQ node\n"
             "shoredaq@north.service loaded active running shoredaq shore-station DAQ node (north)\n");
  const Result r = run_scripts({"prerm upgrade 0.2.0", "postinst configure 0.1.0", "postinst configure 0.1.0"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto listed = calls_of("systemctl list-units");
  ASSERT_EQ(listed.size(), 1u) << read_text(log_);
  for (const char* pattern : {" shoredaq.service", " shoredaq@*.service", " du-sim@*.service", " shore-transfer.service"})
    EXPECT_TRUE(contains(listed[0], pattern)) << pattern << " not asked for (or expanded by the shell): " << listed[0];
  EXPECT_EQ(calls_of("deb-systemd-invoke"),
            (std::vector<std::string>{"deb-systemd-invoke stop shoredaq.service shoredaq@north.service",
                                      "deb-systemd-invoke start shoredaq.service shoredaq@north.service"}))
      << "stopped before, started once after (the second configure finds nothing to restart):\n"
      << read_text(log_);
  // The start comes after systemd reloaded the new units.
  const std::vector<std::string> all = calls();
  const auto reload = std::find(all.begin(), all.end(), "systemctl --system daemon-reload");
  const auto start = std::find(all.begin(), all.end(), "deb-systemd-invoke start shoredaq.service shoredaq@north.service");
  EXPECT_LT(reload, start) << read_text(log_);
}

TEST_F(MaintainerScripts, UpgradeWithNothingRunningStartsNothing) {
  const Result r = run_scripts({"prerm upgrade 0.2.0", "postinst configure 0.1.0"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(calls_of("systemctl list-units").size(), 1u) << read_text(log_);
  EXPECT_TRUE(calls_of("deb-systemd-invoke").empty()) << read_text(log_);
}

TEST_F(MaintainerScripts, RemoveStopsTheUnitsAndMasksTheServices) {
  write_text(active_units_, "shore-transfer.service loaded active running shoredaq Tier-0 transfer agent\n");
  const Result r = run_scripts({"prerm remove", "postrm remove"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(calls_of("deb-systemd-invoke"), (std::vector<std::string>{"deb-systemd-invoke stop shore-transfer.service"}))
      << read_text(log_);
  const auto helper = calls_of("deb-systemd-helper");
  EXPECT_EQ(helper, (std::vector<std::string>{"deb-systemd-helper mask shore-transfer.service",
                                              "deb-systemd-helper mask shoredaq.service"}))
      << read_text(log_);
}

TEST_F(MaintainerScripts, UpgradeKeepsAServiceTheAdministratorDisabled) {
  const Result r = run_scripts({"postinst configure 0.1.0"}, "no");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto helper = calls_of("deb-systemd-helper");
  for (const std::string& call : helper) EXPECT_FALSE(call.starts_with("deb-systemd-helper enable")) << call;
  EXPECT_NE(std::find(helper.begin(), helper.end(), "deb-systemd-helper update-state shoredaq.service"), helper.end())
      << read_text(log_);
}

}  // namespace
