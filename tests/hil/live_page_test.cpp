// HIL: the live page at / as a browser shows it. The node runs with its HTTP port on loopback and is
// fed by two du-sims (one DU with a silent DOM, the other DU at a high singles rate); headless
// Chromium loads the page, runs its scripts (they poll /status and /ratemap.json), dumps the DOM
// they built and takes a screenshot into the build folder (live-page.png). The page must log no
// console message at all (Chromium prints every one to stderr with --enable-logging=stderr: errors,
// failed loads, CSP violations; the test also checks that it sees a deliberate error), show the run
// number, draw one cell per DOM of the detector, and mark the silent DOM missing. Skips when
// chromium is not installed.
#include <gtest/gtest.h>

#include <spawn.h>

#include "hil_support.hpp"
#include "shoredaq/formats/detector.hpp"

using namespace hil;

namespace {

std::string find_chromium() {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    for (const char* name : {"chromium", "chromium-browser"}) {
      const fs::path candidate = fs::path(dir) / name;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    }
  }
  return "";
}

// Chromium in a process group of its own: it starts helper processes (zygote, renderer, GPU) that
// must go with it, whether it finished or overran its deadline (or the test failed meanwhile).
struct BrowserRun {
  int code = -1;  // -1: killed at the deadline
  std::string err;
};

class Browser {
 public:
  Browser(const std::vector<std::string>& argv, fs::path err_file) : err_file_(std::move(err_file)) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out_file().c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attributes, 0);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int rc = posix_spawn(&pid_, args[0], &actions, &attributes, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    if (rc != 0) throw std::runtime_error("cannot start " + argv[0]);
  }
  Browser(const Browser&) = delete;
  Browser& operator=(const Browser&) = delete;
  ~Browser() { finish(0ms); }

  // Waits for the browser to exit (at most `deadline`), then kills what is left of its group.
  BrowserRun finish(std::chrono::milliseconds deadline) {
    BrowserRun result;
    if (pid_ <= 0) return result;
    int status = 0;
    const bool exited = wait_until([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, deadline, 20ms);
    ::kill(-pid_, SIGKILL);  // the whole group, also when the browser itself has exited
    if (!exited) ::waitpid(pid_, &status, 0);
    else if (WIFEXITED(status)) result.code = WEXITSTATUS(status);
    pid_ = -1;
    result.err = read_file(err_file_);
    return result;
  }
  fs::path out_file() const { return err_file_.string() + ".out"; }  // stdout: --dump-dom's DOM

 private:
  pid_t pid_ = -1;
  fs::path err_file_;
};

std::vector<std::string> browser_args(const std::string& chromium, const fs::path& profile) {
  return {chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
          "--enable-logging=stderr", "--v=0", "--user-data-dir=" + profile.string(),
          // Virtual time: the page's 2 s poll runs at least once more without waiting 2 s.
          "--virtual-time-budget=3000"};
}

// Chromium's console lines: `[pid:tid:date:INFO:CONSOLE:12] "message", source: url (12)` (older
// versions: `CONSOLE(12)`), whatever the level of the message.
std::vector<std::string> console_messages(const std::string& browser_log) {
  static const std::regex console(R"(:CONSOLE[:(])");
  std::vector<std::string> out;
  std::istringstream lines(browser_log);
  std::string line;
  while (std::getline(lines, line)) {
    if (std::regex_search(line, console)) out.push_back(line);
  }
  return out;
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++n;
  return n;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

TEST(HilLivePage, ShowsTheRunAndARateMapWithTheSilentDomMarkedWithoutConsoleErrors) {
  const std::string chromium = find_chromium();
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (Debian: apt-get install chromium): the live page is not checked";

  const int port = free_port();
  ASSERT_GT(port, 0);
  // The hot DU's simulator may fall behind the other (slower under ASan), so slices expire by wall
  // clock only (8 s after their first datagram), not when the quicker DU has moved on in data time.
  Rig rig("livepage", "first:2",
          "[metrics]\nenabled = true\nlisten_address = \"127.0.0.1\"\nport = " + std::to_string(port) +
              "\n[builder]\nexpiry_ms = 600000\nwall_clock_expiry_ms = 8000\n");
  const auto detector = shoredaq::dataflow::Detector::load(rig.detx());
  const auto dus = detector.du_ids();
  ASSERT_EQ(dus.size(), 2u);
  const int quiet_du = dus[0], hot_du = dus[1];
  const std::uint32_t silent_dom = detector.modules_of_du(quiet_du).at(4)->id;

  // The browser's own check, while the node runs: a page with a deliberate error must show up in
  // its console lines, or the "no console messages" assertion below could never fail.
  write_file(rig.tmp() / "broken.html", "<html><body><script>console.error('deliberate'); undefinedFunction();</script></body></html>");
  auto broken_args = browser_args(chromium, rig.tmp() / "profile-broken");
  broken_args.insert(broken_args.end(), {"--dump-dom", "file://" + (rig.tmp() / "broken.html").string()});
  Browser broken_page(broken_args, rig.tmp() / "chromium-broken.err");

  const std::uint32_t run_number = 7;
  rig.start_run(run_number);
  // Both DUs' simulators send the same slices (same first slice time), each its own DU, paced at
  // one slice per 100 ms so that neither runs ahead of the other (its slices would expire without
  // the other DU).
  const std::string start_utc_s = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                                     std::chrono::system_clock::now().time_since_epoch()).count());
  auto feed_args = [&](int du, std::uint64_t seed) {
    auto a = rig.du_sim_args(run_number, 20, seed);
    a.insert(a.end(), {"--dus", std::to_string(du), "--start-utc", start_utc_s, "--realtime"});
    return a;
  };
  auto quiet_args = feed_args(quiet_du, 31);
  quiet_args.insert(quiet_args.end(), {"--silent-dom", std::to_string(silent_dom)});
  auto hot_args = feed_args(hot_du, 32);
  hot_args.insert(hot_args.end(), {"--singles-hz", "14000"});
  Child quiet(quiet_args, rig.tmp() / "du-sim-quiet.out", rig.tmp() / "du-sim-quiet.err");
  Child hot(hot_args, rig.tmp() / "du-sim-hot.out", rig.tmp() / "du-sim-hot.err");
  ASSERT_EQ(quiet.wait(60s).value_or(-1), 0) << quiet.err();
  ASSERT_EQ(hot.wait(60s).value_or(-1), 0) << hot.err();

  // The node has built slices with both DUs in them: the map the browser will get.
  nlohmann::json map;
  const bool both_dus = wait_until([&] {
    map = nlohmann::json::parse(http_get(port, "/ratemap.json"), nullptr, false);
    if (map.is_discarded() || !map.is_object() || map["frame_index"].is_null()) return false;
    bool quiet_seen = false, hot_seen = false;
    for (const auto& d : map["doms"]) {
      if (d["rate_hz"].get<double>() > 0) (d["du"] == quiet_du ? quiet_seen : hot_seen) = true;
    }
    return quiet_seen && hot_seen;
  }, 20s, 100ms);
  ASSERT_TRUE(both_dus) << map.dump();
  ASSERT_EQ(map["doms"].size(), detector.optical_module_count());
  double quiet_rate_hz = 0, hot_rate_hz = 0;
  for (const auto& d : map["doms"]) {
    if (d["id"] == silent_dom) {
      EXPECT_EQ(d["flags"], nlohmann::json({"missing"})) << d.dump();
    } else {
      EXPECT_EQ(d["pmt_khz"].size(), 31u) << d.dump();
      (d["du"] == quiet_du ? quiet_rate_hz : hot_rate_hz) += d["rate_hz"].get<double>();
    }
  }
  EXPECT_GT(hot_rate_hz / 18, 1.6 * quiet_rate_hz / 17) << "the hot DU should show 14 kHz singles against ~7 kHz";

  // One browser run dumps the DOM the scripts built and takes the screenshot (build folder).
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";
  const fs::path screenshot = fs::path(SHOREDAQ_BINARY_DIR) / "live-page.png";
  fs::remove(screenshot);
  auto args = browser_args(chromium, rig.tmp() / "profile");
  args.insert(args.end(), {"--dump-dom", "--screenshot=" + screenshot.string(), "--window-size=1400,1000", url});
  Browser live_page(args, rig.tmp() / "chromium.err");
  const auto browser = live_page.finish(30s);
  ASSERT_EQ(browser.code, 0) << browser.err;
  const std::string dom = read_file(live_page.out_file());
  EXPECT_TRUE(console_messages(browser.err).empty()) << "console messages of the page:\n" << joined(console_messages(browser.err));
  const std::string header = dom.substr(0, dom.find("<main>"));  // the run facts, short enough to print
  EXPECT_NE(header.find("id=\"run-number\">" + std::to_string(run_number) + "<"), std::string::npos) << header;
  EXPECT_NE(header.find(">Running<"), std::string::npos) << header;
  EXPECT_EQ(count_of(dom, "data-dom-id=\""), detector.optical_module_count()) << dom;
  std::smatch cell;
  const std::regex silent_cell("<button[^>]*data-dom-id=\"" + std::to_string(silent_dom) + "\"[^>]*>");
  ASSERT_TRUE(std::regex_search(dom, cell, silent_cell)) << dom;
  EXPECT_NE(cell.str().find("missing"), std::string::npos) << cell.str();
  EXPECT_EQ(count_of(dom, "data-flags=\"missing\""), 1u) << "only the silent DOM is missing:\n" << dom;
  // The page's own error banner stayed hidden (it shows uncaught errors to the shifter).
  EXPECT_NE(header.find("id=\"page-error\" class=\"banner page-error\" hidden"), std::string::npos) << header;
  ASSERT_TRUE(fs::exists(screenshot)) << browser.err;
  EXPECT_EQ(read_file(screenshot).substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));

  const auto broken = broken_page.finish(30s);
  ASSERT_EQ(broken.code, 0) << broken.err;
  EXPECT_NE(joined(console_messages(broken.err)).find("undefinedFunction is not defined"), std::string::npos) << broken.err;

  rig.quit();
}

}  // namespace
