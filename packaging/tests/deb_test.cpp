// The Debian package as built (by the ctest fixture packaging.build_test_debs, the same
// packaging/build-deb that `./dev package` runs): lintian finds no error, and the package holds
// the programs, units, snippets, conffile and documentation, a Depends: that covers every shared
// library the programs load, maintainer scripts filled in for every unit, and the version derived
// from the `git describe` string the programs report. Skipped where dpkg-deb (or lintian, for
// its test) is missing.
#include "package_test_support.hpp"

#include <map>
#include <regex>
#include <iterator>
#include <set>
#include <sstream>

namespace {

using namespace shoredaq::packaging_test;

const std::vector<std::string> programs = {"shoredaq", "shorectl", "du-sim", "shore-events", "shore-transfer",
                                           "clb-bridge"};
const std::vector<std::string> units = {"shoredaq.service",         "shoredaq@.service",         "du-sim@.service",
                                        "shore-transfer.service",   "shoredaq-ingest@.service",  "shoredaq-filter@.service",
                                        "shoredaq-writer@.service"};

class Deb : public ::testing::Test {
protected:
  void SetUp() override {
    SHOREDAQ_REQUIRE_TEST_DEBS();
    deb_ = fs::canonical(release_deb());
  }

  // The files of the package, unpacked (dpkg-deb -x) into a scratch folder.
  fs::path unpacked() {
    const fs::path root = scratch_.path() / "files";
    if (!fs::exists(root)) {
      const Result r = run("dpkg-deb -x " + quote(deb_) + " " + quote(root));
      EXPECT_EQ(r.exit_code, 0) << r.output;
    }
    return root;
  }

  // The control area (control, conffiles, md5sums, maintainer scripts).
  fs::path control_area() {
    const fs::path dir = scratch_.path() / "DEBIAN";
    if (!fs::exists(dir)) {
      const Result r = run("dpkg-deb -e " + quote(deb_) + " " + quote(dir));
      EXPECT_EQ(r.exit_code, 0) << r.output;
    }
    return dir;
  }

  // Runs lintian on a package: its exit code, and "E:"/"W:"/"I:"... lines, tag summary.
  struct Lint {
    int exit_code = -1;
    std::vector<std::string> errors;
    std::map<std::string, int> tags;  // "W: tag" -> count
  };
  static Lint lintian(const fs::path& deb) {
    const Result r = run("lintian --display-level '>=pedantic' --tag-display-limit 0 " + quote(deb));
    Lint lint;
    lint.exit_code = r.exit_code;
    static const std::regex tag_line(R"(^([EWIPX]): shoredaq: (\S+))");
    for (const std::string& line : lines_of(r.output)) {
      std::smatch match;
      if (!std::regex_search(line, match, tag_line)) continue;
      ++lint.tags[match[1].str() + ": " + match[2].str()];
      if (match[1].str() == "E") lint.errors.push_back(line);
    }
    if (r.exit_code != 0 && lint.errors.empty()) lint.errors.push_back("lintian failed: " + r.output);
    return lint;
  }

  fs::path deb_;
  ScratchDir scratch_{"deb-test"};
};

// Acceptance: lintian reports no error (warnings and infos are printed and explained in
// packaging/README.md).
TEST_F(Deb, LintianReportsNoErrors) {
  if (!find_program("lintian")) GTEST_SKIP() << "lintian is not installed (Debian: lintian; ./dev deps)";
  const Lint lint = lintian(deb_);
  for (const auto& [tag, count] : lint.tags) std::printf("lintian %s x%d\n", tag.c_str(), count);
  EXPECT_TRUE(lint.errors.empty()) << ::testing::PrintToString(lint.errors);
  EXPECT_EQ(lint.exit_code, 0);
}

// The check above can fail: the same package without its conffiles list is an error
// (file-in-etc-not-marked-as-conffile).
TEST_F(Deb, LintianCatchesAnEtcFileThatIsNotAConffile) {
  if (!find_program("lintian")) GTEST_SKIP() << "lintian is not installed (Debian: lintian; ./dev deps)";
  const fs::path tree = scratch_.path() / "broken";
  ASSERT_EQ(run("dpkg-deb -R " + quote(deb_) + " " + quote(tree)).exit_code, 0);
  fs::remove(tree / "DEBIAN" / "conffiles");
  const fs::path broken = scratch_.path() / "shoredaq_0_amd64.deb";
  const Result build = run("dpkg-deb --root-owner-group -b " + quote(tree) + " " + quote(broken));
  ASSERT_EQ(build.exit_code, 0) << build.output;
  const Lint lint = lintian(broken);
  EXPECT_EQ(lint.tags.count("E: file-in-etc-not-marked-as-conffile"), 1u) << ::testing::PrintToString(lint.tags);
}

TEST_F(Deb, ShipsProgramsUnitsSnippetsConfigurationAndDocumentation) {
  const Result listing = run("dpkg-deb --contents " + quote(deb_));
  ASSERT_EQ(listing.exit_code, 0) << listing.output;
  // "-rwxr-xr-x root/root 630616 2026-01-01 00:00 ./usr/bin/clb-bridge" -> path: mode owner
  std::map<std::string, std::string> entries;
  static const std::regex entry(R"(^(\S+)\s+(\S+)\s+\d+\s+\S+\s+\S+\s+\./(\S*?)(?: -> .*)?$)");
  for (const std::string& line : lines_of(listing.output)) {
    std::smatch match;
    ASSERT_TRUE(std::regex_match(line, match, entry)) << line;
    entries["/" + match[3].str()] = match[1].str() + " " + match[2].str();
  }
  const auto expect_file = [&](const std::string& path, const std::string& mode) {
    ASSERT_TRUE(entries.count(path)) << path << " is not in the package:\n" << listing.output;
    EXPECT_EQ(entries[path], mode + " root/root") << path;
  };
  for (const std::string& program : programs) {
    expect_file("/usr/bin/" + program, "-rwxr-xr-x");
    expect_file("/usr/share/man/man1/" + program + ".1.gz", "-rw-r--r--");
  }
  for (const std::string& unit : units) expect_file("/lib/systemd/system/" + unit, "-rw-r--r--");
  for (const char* file :
       {"/usr/lib/sysusers.d/shoredaq.conf", "/usr/lib/tmpfiles.d/shoredaq.conf", "/etc/shoredaq/shoredaq.toml",
        "/usr/share/shoredaq/shoredaq.example.toml", "/usr/share/shoredaq/shore-transfer.example.toml",
        "/usr/share/shoredaq/tier0_manifest.schema.json", "/usr/share/doc/shoredaq/copyright",
        "/usr/share/doc/shoredaq/changelog.gz", "/usr/share/doc/shoredaq/README.md"})
    expect_file(file, "-rw-r--r--");
  for (const auto& [path, mode] : entries) {
    EXPECT_FALSE(path.starts_with("/usr/local")) << path << ": a package never installs into /usr/local";
    EXPECT_TRUE(mode.ends_with("root/root")) << path << " " << mode;
    if (mode.starts_with("d")) {
      EXPECT_TRUE(mode.starts_with("drwxr-xr-x")) << path << " " << mode;
    }
  }

  // Each man page is the program's own --help.
  const std::string shoredaq_man = run("zcat " + quote(unpacked() / "usr/share/man/man1/shoredaq.1.gz")).output;
  EXPECT_TRUE(contains(shoredaq_man, "check\\-config")) << shoredaq_man;
}

// The node's configuration is the documented example, and a conffile: dpkg keeps an edited copy.
TEST_F(Deb, ExampleConfigurationIsTheOnlyConffile) {
  EXPECT_EQ(read_text(control_area() / "conffiles"), "/etc/shoredaq/shoredaq.toml\n");
  EXPECT_EQ(read_text(unpacked() / "etc/shoredaq/shoredaq.toml"),
            read_text(source_dir / "firmware/shoredaq.example.toml"));
}

// The units are systemd/'s templates with Debian's paths: programs from /usr/bin, the example
// configuration from /usr/share/shoredaq, nothing left unsubstituted.
TEST_F(Deb, UnitsAndSnippetsAreTheTemplatesWithDebianPaths) {
  const std::map<std::string, std::string> values = {
      {"@CMAKE_INSTALL_FULL_BINDIR@", "/usr/bin"},
      {"@SHOREDAQ_CONFIG_DIR@", "/etc/shoredaq"},
      {"@SHOREDAQ_STATE_DIR@", "/var/lib/shoredaq"},
      {"@SHOREDAQ_LOG_DIR@", "/var/log/shoredaq"},
      {"@SHOREDAQ_EXAMPLE_CONFIG@", "/usr/share/shoredaq/shoredaq.example.toml"},
      {"@SHOREDAQ_EXAMPLE_TRANSFER_CONFIG@", "/usr/share/shoredaq/shore-transfer.example.toml"}};
  const auto configured = [&](const fs::path& template_file) {
    std::string text = read_text(template_file);
    for (const auto& [placeholder, value] : values) {
      for (auto at = text.find(placeholder); at != std::string::npos; at = text.find(placeholder, at))
        text.replace(at, placeholder.size(), value);
    }
    return text;
  };
  const fs::path root = unpacked();
  for (const std::string& unit : units) {
    const std::string text = read_text(root / "lib/systemd/system" / unit);
    EXPECT_EQ(text, configured(source_dir / "systemd" / (unit + ".in"))) << unit;
    EXPECT_FALSE(std::regex_search(text, std::regex("@[A-Z_]+@"))) << unit;
    std::smatch exec;
    ASSERT_TRUE(std::regex_search(text, exec, std::regex(R"(ExecStart=(\S+))"))) << unit;
    EXPECT_TRUE(fs::exists(root / fs::path(exec[1].str()).relative_path())) << unit << " runs " << exec[1];
  }
  EXPECT_EQ(read_text(root / "usr/lib/sysusers.d/shoredaq.conf"),
            configured(source_dir / "systemd/sysusers.d/shoredaq.conf.in"));
  EXPECT_EQ(read_text(root / "usr/lib/tmpfiles.d/shoredaq.conf"),
            configured(source_dir / "systemd/tmpfiles.d/shoredaq.conf.in"));
}

// Depends: names the package of every shared library a program needs (dpkg-shlibdeps), with
// the minimum versions from the libraries' symbols, plus what the maintainer scripts run.
TEST_F(Deb, DependsCoversEverySharedLibraryOfThePrograms) {
  const std::string depends = control_field(deb_, "Depends");
  ASSERT_FALSE(depends.empty());
  EXPECT_FALSE(contains(depends, "${")) << depends;
  EXPECT_TRUE(contains(depends, "systemd | systemd-standalone-sysusers")) << depends;
  EXPECT_TRUE(contains(depends, "systemd | systemd-standalone-tmpfiles")) << depends;
  EXPECT_TRUE(std::regex_search(depends, std::regex(R"(libc6 \(>= [0-9.]+\))"))) << depends;

  std::set<std::string> depended;  // package names in Depends
  static const std::regex package_name(R"((?:^|[,|]\s*)([a-z0-9][a-z0-9+.-]+))");
  for (auto it = std::sregex_iterator(depends.begin(), depends.end(), package_name); it != std::sregex_iterator();
       ++it)
    depended.insert((*it)[1].str());

  const fs::path root = unpacked();
  std::set<std::string> sonames;
  for (const std::string& program : programs) {
    const Result needed = run("readelf -d " + quote(root / "usr/bin" / program));
    ASSERT_EQ(needed.exit_code, 0) << needed.output;
    static const std::regex needed_line(R"(\(NEEDED\)\s+Shared library: \[([^\]]+)\])");
    for (auto it = std::sregex_iterator(needed.output.begin(), needed.output.end(), needed_line);
         it != std::sregex_iterator(); ++it)
      sonames.insert((*it)[1].str());
  }
  ASSERT_TRUE(sonames.count("libzmq.so.5")) << "the programs link ZeroMQ";
  for (const std::string& soname : sonames) {
    // The installed package(s) that own this library on the build machine.
    const Result owner = run("dpkg -S " + quote("*/" + soname));
    ASSERT_EQ(owner.exit_code, 0) << soname << ": " << owner.output;
    // Covered by the owner's name or by a name it provides (libspdlog1.10: libspdlog1.10-fmt9).
    bool covered = false;
    for (const std::string& line : lines_of(owner.output)) {
      const std::string package = line.substr(0, line.find_first_of(":,"));
      std::string names = package + ", " + run("dpkg-query --show --showformat='${Provides}' " + quote(package)).output;
      for (auto it = std::sregex_iterator(names.begin(), names.end(), package_name); it != std::sregex_iterator(); ++it)
        covered = covered || depended.count((*it)[1].str()) > 0;
    }
    EXPECT_TRUE(covered) << soname << " (" << owner.output << ") is not in Depends: " << depends;
  }
}

// Maintainer scripts: POSIX sh that stops at the first error, filled in with every unit.
TEST_F(Deb, MaintainerScriptsNameEveryUnit) {
  const fs::path control = control_area();
  for (const std::string script : {"postinst", "prerm", "postrm"}) {
    const fs::path path = control / script;
    ASSERT_TRUE(fs::exists(path)) << script;
    EXPECT_EQ((fs::status(path).permissions() & fs::perms::owner_exec), fs::perms::owner_exec) << script;
    const std::string text = read_text(path);
    EXPECT_TRUE(text.starts_with("#!/bin/sh\n")) << script;
    EXPECT_TRUE(contains(text, "\nset -e\n")) << script;
    EXPECT_FALSE(std::regex_search(text, std::regex("@[A-Z_]+@"))) << script << " has an unfilled placeholder";
    const Result syntax = run("sh -n " + quote(path));
    EXPECT_EQ(syntax.exit_code, 0) << script << ": " << syntax.output;
  }
  const std::string postinst = read_text(control / "postinst");
  EXPECT_TRUE(contains(postinst, "SERVICE_UNITS=\"shore-transfer.service shoredaq.service\"")) << postinst;
  EXPECT_TRUE(contains(postinst, "systemd-sysusers")) << postinst;
  EXPECT_TRUE(contains(postinst, "systemd-tmpfiles")) << postinst;
  EXPECT_TRUE(contains(postinst, "deb-systemd-helper enable")) << postinst;
  EXPECT_TRUE(contains(postinst, "daemon-reload")) << postinst;
  const std::string prerm = read_text(control / "prerm");
  // Every unit the package ships (the glob's order depends on the locale: compared as a set).
  const auto at = prerm.find("UNIT_PATTERNS=\"");
  ASSERT_NE(at, std::string::npos) << prerm;
  std::istringstream patterns(prerm.substr(at + 15, prerm.find('"', at + 15) - at - 15));
  std::set<std::string> shipped{std::istream_iterator<std::string>(patterns), std::istream_iterator<std::string>()};
  EXPECT_EQ(shipped, (std::set<std::string>{"du-sim@*.service", "shore-transfer.service", "shoredaq.service", "shoredaq@*.service",
                                            "shoredaq-ingest@*.service", "shoredaq-filter@*.service",
                                            "shoredaq-writer@*.service"}))
      << prerm;
  EXPECT_TRUE(contains(prerm, "deb-systemd-invoke stop")) << prerm;
  const std::string postrm = read_text(control / "postrm");
  EXPECT_TRUE(contains(postrm, "SHOREDAQ_PURGE_DATA")) << postrm;
  EXPECT_TRUE(contains(postrm, "deb-systemd-helper purge")) << postrm;
}

// The Debian version of each form `git describe --tags --always --dirty` takes, and that they
// sort the way the builds were made.
TEST_F(Deb, VersionRulesForEveryFormOfGitDescribe) {
  const auto debian_version = [](const std::string& describe) {
    const Result r = run(quote(build_deb_script) + " --debian-version-of " + quote(describe) + " 0.1.0");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    std::string version = r.output;
    if (!version.empty() && version.back() == '\n') version.pop_back();
    EXPECT_EQ(run("dpkg --validate-version " + quote(version)).exit_code, 0) << version;
    return version;
  };
  EXPECT_EQ(debian_version("v0.1.0"), "0.1.0");
  EXPECT_EQ(debian_version("v0.1.0-dirty"), "0.1.0+dirty");
  EXPECT_EQ(debian_version("v0.1.0-12-gabc1234"), "0.1.0+git12.gabc1234");
  EXPECT_EQ(debian_version("v0.1.0-12-gabc1234-dirty"), "0.1.0+git12.gabc1234.dirty");
  EXPECT_EQ(debian_version("v0.2.0-rc1-3-gabc1234"), "0.2.0~rc1+git3.gabc1234");
  EXPECT_EQ(debian_version("78230cc-dirty"), "0.1.0~g78230cc.dirty");  // no source tree to count in
  EXPECT_EQ(debian_version("0.1.0"), "0.1.0");                          // not a git checkout
  EXPECT_EQ(debian_version("nightly_build"), "0.1.0+nightly.build");

  const auto sorts_before = [](const std::string& a, const std::string& b) {
    return run("dpkg --compare-versions " + quote(a) + " lt " + quote(b)).exit_code == 0;
  };
  const std::vector<std::string> in_build_order = {
      debian_version("78230cc"),           debian_version("78230cc-dirty"),
      debian_version("v0.1.0"),            debian_version("v0.1.0-dirty"),
      debian_version("v0.1.0-9-gfff0000"), debian_version("v0.1.0-12-gabc1234"),
      debian_version("v0.1.0-12-gabc1234-dirty"), debian_version("v0.2.0-rc1-3-gabc1234"),
      debian_version("v0.2.0")};
  for (std::size_t i = 1; i < in_build_order.size(); ++i)
    EXPECT_TRUE(sorts_before(in_build_order[i - 1], in_build_order[i]))
        << in_build_order[i - 1] << " should sort before " << in_build_order[i];

  // A commit with no tag yet counts its commits in the source tree: later commits sort later.
  const Result head = run("git -C " + quote(source_dir) + " rev-parse --short=7 HEAD");
  if (head.exit_code == 0) {
    const std::string hash = head.output.substr(0, 7);
    const Result counted = run(quote(build_deb_script) + " --debian-version-of " + hash + " 0.1.0 " + quote(source_dir));
    EXPECT_TRUE(std::regex_match(counted.output, std::regex("0\\.1\\.0~git[0-9]+\\.g" + hash + "\n"))) << counted.output;
  }
}

// The package's version is the one derived from the string its programs report (git describe).
TEST_F(Deb, PackageVersionIsDerivedFromTheVersionTheDaemonReports) {
  const Result reported = run(quote(unpacked() / "usr/bin/shoredaq") + " --version");
  ASSERT_EQ(reported.exit_code, 0) << reported.output;
  std::string describe = reported.output;
  while (!describe.empty() && describe.back() == '\n') describe.pop_back();
  EXPECT_EQ(control_field(deb_, "Version"), debian_version_of(describe)) << "shoredaq --version: " << describe;
  const std::string changelog = run("zcat " + quote(unpacked() / "usr/share/doc/shoredaq/changelog.gz")).output;
  EXPECT_TRUE(changelog.starts_with("shoredaq (" + control_field(deb_, "Version") + ") ")) << changelog;
  EXPECT_TRUE(contains(changelog, describe)) << changelog;
}

}  // namespace
