#pragma once
// Helpers for the hardware-in-the-loop tests: real programs (shoredaq, du-sim, shorectl,
// shore-events) started with posix_spawn, each test in its own temp directory with ipc:// endpoints
// inside it (so parallel tests never share ports), waits on conditions with deadlines, and children
// killed when a test fails or ends.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

extern char** environ;

namespace hil {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

inline std::string program(const std::string& name) {
  static const std::pair<const char*, const char*> kWhere[] = {
      {"shoredaq", "firmware"}, {"shorectl", "firmware"}, {"du-sim", "drivers"}, {"shore-events", "storage"},
      {"shore-transfer", "storage"}};
  for (const auto& [n, dir] : kWhere) {
    if (name == n) return std::string(SHOREDAQ_BINARY_DIR) + "/" + dir + "/" + name;
  }
  throw std::invalid_argument("unknown program " + name);
}

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

inline void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

// A fresh directory under the system temp dir, removed at the end (kept with HIL_KEEP=1).
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    std::random_device rd;
    path_ = fs::temp_directory_path() / ("shoredaq-hil-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    if (!std::getenv("HIL_KEEP")) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& s) const { return path_ / s; }

 private:
  fs::path path_;
};

// A child process; killed (SIGKILL) in the destructor if still running.
class Child {
 public:
  Child() = default;
  Child(const std::vector<std::string>& argv, const fs::path& out_file, const fs::path& err_file) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start " + argv[0]);
    out_ = out_file;
    err_ = err_file;
  }
  Child(Child&& o) noexcept { *this = std::move(o); }
  Child& operator=(Child&& o) noexcept {
    std::swap(pid_, o.pid_);
    std::swap(status_, o.status_);
    std::swap(out_, o.out_);
    std::swap(err_, o.err_);
    return *this;
  }
  ~Child() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      wait(5s);
    }
  }

  pid_t pid() const { return pid_; }
  bool running() {
    if (pid_ <= 0 || status_) return false;
    int st = 0;
    const pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) status_ = st;
    return !status_;
  }
  // Exit code (128 + signal when killed), or nullopt when still running at the deadline.
  std::optional<int> wait(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running()) {
      if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
      std::this_thread::sleep_for(10ms);
    }
    if (!status_) return std::nullopt;
    return WIFEXITED(*status_) ? WEXITSTATUS(*status_) : 128 + WTERMSIG(*status_);
  }
  void signal(int sig) {
    if (running()) ::kill(pid_, sig);
  }
  std::string out() const { return read_file(out_); }
  std::string err() const { return read_file(err_); }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  fs::path out_, err_;
};

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs a program to completion (killed at the timeout: code -1).
inline Result run(const std::vector<std::string>& argv, const fs::path& scratch, std::chrono::milliseconds timeout = 60s) {
  static std::atomic<int> counter{0};
  const int n = counter++;
  const fs::path out = scratch / ("run" + std::to_string(n) + ".out");
  const fs::path err = scratch / ("run" + std::to_string(n) + ".err");
  Child child(argv, out, err);
  Result r;
  auto code = child.wait(timeout);
  if (!code) {
    child.signal(SIGKILL);
    child.wait(5s);
  }
  r.code = code.value_or(-1);
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

// A loopback TCP port nobody listens on right now (the kernel's choice for port 0).
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

struct HttpReply {
  int code = 0;  // 0: no (complete) response
  std::string body;
};

// The body of a chunked transfer (Go servers such as Prometheus chunk large replies); what
// cannot be decoded is cut off, so a parser of the result sees a truncated body.
inline std::string dechunked(const std::string& chunked) {
  std::string out;
  std::size_t at = 0;
  while (at < chunked.size()) {
    const auto line_end = chunked.find("\r\n", at);
    if (line_end == std::string::npos) break;
    std::size_t size = 0;
    try {
      size = std::stoul(chunked.substr(at, line_end - at), nullptr, 16);
    } catch (const std::exception&) {
      break;
    }
    if (size == 0 || line_end + 2 + size > chunked.size()) break;
    out.append(chunked, line_end + 2, size);
    at = line_end + 2 + size + 2;
  }
  return out;
}

// GET http://127.0.0.1:port/path over HTTP/1.1 (5 s receive timeout).
inline HttpReply http_request(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
      char buf[8192];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) response.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  HttpReply r;
  const auto body = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.1 ", 0) != 0 || response.size() < 12 || body == std::string::npos) return r;
  r.code = std::stoi(response.substr(9, 3));
  r.body = response.substr(body + 4);
  std::string headers = response.substr(0, body);
  for (auto& ch : headers) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (headers.find("\r\ntransfer-encoding: chunked") != std::string::npos) r.body = dechunked(r.body);
  return r;
}

// The body of a 200 response, "" otherwise.
inline std::string http_get(int port, const std::string& path) {
  HttpReply r = http_request(port, path);
  return r.code == 200 ? r.body : std::string();
}

inline bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                       std::chrono::milliseconds poll = 50ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(poll);
  }
  return condition();
}

}  // namespace hil

namespace hil {

// Endpoints and directories of one node under test, all inside the test's temp dir.
struct NodeSetup {
  fs::path dir;
  std::string control;
  std::string ingest;
  std::string alerts;
  fs::path state_dir() const { return dir / "state"; }
  fs::path store() const { return dir / "state" / "store"; }
  fs::path spool() const { return dir / "state" / "spool"; }
  fs::path config() const { return dir / "shoredaq.toml"; }
};

inline NodeSetup make_node_setup(const TempDir& tmp, const std::string& extra_toml = "",
                                 const std::string& trigger_toml = "", const std::string& store_toml = "") {
  NodeSetup s;
  s.dir = tmp.path();
  s.control = "ipc://" + (tmp / "run/control.sock").string();
  s.ingest = "ipc://" + (tmp / "run/ingest.sock").string();
  s.alerts = "ipc://" + (tmp / "run/alerts.sock").string();
  fs::create_directories(tmp / "run");
  std::ostringstream t;
  t << "[node]\nstate_dir = \"" << s.state_dir().string() << "\"\nruntime_dir = \"" << (tmp / "run").string()
    << "\"\nworkers = 1\nlog_level = \"info\"\n"
    // A test that brings its own [ingest] section (or disk reserve) replaces the rig's.
    << (extra_toml.find("[ingest]") == std::string::npos ? "[ingest]\nendpoints = [\"" + s.ingest + "\"]\n" : std::string())
    << "[control]\nendpoint = \"" << s.control << "\"\nstop_timeout_ms = 20000\n"
    << "[store]\ndurability = \"nosync\"\n"
    << (store_toml.find("disk_reserve_mb") == std::string::npos ? "disk_reserve_mb = 0\n" : "") << store_toml << "\n"
    << (extra_toml.find("[metrics]") == std::string::npos ? "[metrics]\nenabled = false\n" : "")
    << extra_toml << "\n"
    << "[trigger]\n" << trigger_toml << "\n";
  write_file(s.config(), t.str());
  return s;
}

// shorectl against the node; the reply parsed from --json output (null when none).
struct CtlResult {
  int code = -1;
  nlohmann::json reply;
  std::string out, err;
};

inline CtlResult shorectl(const NodeSetup& node, std::vector<std::string> args, std::chrono::milliseconds timeout = 30s) {
  std::vector<std::string> argv{program("shorectl"), "--endpoint", node.control, "--json",
                                "--timeout", std::to_string(timeout.count())};
  argv.insert(argv.end(), args.begin(), args.end());
  const Result r = run(argv, node.dir, timeout + 10s);
  CtlResult c{r.code, nullptr, r.out, r.err};
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  if (!j.is_discarded()) c.reply = j;
  return c;
}

inline std::string state_of(const NodeSetup& node) {
  auto r = shorectl(node, {"status"}, 2s);
  if (r.code != 0 || !r.reply.is_object()) return "";
  return r.reply.value("state", "");
}

// Starts shoredaq on the setup and waits until its control socket answers.
inline Child start_node(const NodeSetup& node, const std::string& tag = "shoredaq") {
  Child child({program("shoredaq"), "--config", node.config().string()}, node.dir / (tag + ".out"),
              node.dir / (tag + ".err"));
  if (!wait_until([&] { return !child.running() || !state_of(node).empty(); }, 20s, 100ms) || !child.running()) {
    throw std::runtime_error("shoredaq did not come up: " + child.err());
  }
  return child;
}

}  // namespace hil

namespace hil {

inline const std::string kDetx133 = std::string(SHOREDAQ_TESTDATA_DIR) + "/detx/KM3NeT_00000133_20221025.detx";

// A node under test fed by du-sim: a detector file restricted to the simulated DUs (so every DOM
// the node expects is simulated), a running shoredaq, and helpers for the run-control steps.
class Rig {
 public:
  explicit Rig(const std::string& tag, const std::string& dus = "first:2", const std::string& extra_toml = "",
               const std::string& trigger_toml = "", const std::string& store_toml = "")
      : tmp_(tag) {
    detx_ = tmp_ / "detector.detx";
    auto r = run({program("shoredaq"), "detx", "--detx", kDetx133, "--dus", dus, "--out", detx_.string()}, tmp_.path());
    if (r.code != 0) throw std::runtime_error("shoredaq detx failed: " + r.err);
    node_ = make_node_setup(tmp_, extra_toml, trigger_toml, store_toml);
    daemon_ = start_node(node_);
  }

  const TempDir& tmp() const { return tmp_; }
  const NodeSetup& node() const { return node_; }
  const fs::path& detx() const { return detx_; }
  Child& daemon() { return daemon_; }

  CtlResult ctl(std::vector<std::string> args, std::chrono::milliseconds timeout = 30s) const {
    return shorectl(node_, std::move(args), timeout);
  }
  // init (if Idle) + configure + start; throws when the node refuses.
  void start_run(std::uint32_t run, const std::string& setup_file = "") {
    if (state_of(node_) == "Idle") must(ctl({"init"}));
    std::vector<std::string> configure{"configure", "--detx", detx_.string()};
    if (!setup_file.empty()) configure.insert(configure.end(), {"--setup", setup_file});
    must(ctl(configure));
    must(ctl({"start", "--run", std::to_string(run)}));
  }
  nlohmann::json stop_run() { return must(ctl({"stop"}, 60s)); }
  nlohmann::json status() const { return must(ctl({"status"})); }
  void quit() {
    must(ctl({"quit"}, 60s));
    auto code = daemon_.wait(30s);
    if (code != 0) throw std::runtime_error("shoredaq exit code " + std::to_string(code.value_or(-1)) + ": " + daemon_.err());
  }
  void restart() { daemon_ = start_node(node_, "shoredaq-restarted"); }

  // du-sim over ZeroMQ into the node's ingest (and a copy into `dqd` when given).
  std::vector<std::string> du_sim_args(std::uint32_t run, unsigned slices, std::uint64_t seed,
                                       const fs::path& dqd = {}) const {
    std::vector<std::string> a{program("du-sim"), "--detx", detx_.string(), "--slices", std::to_string(slices),
                               "--run", std::to_string(run), "--seed", std::to_string(seed), "--endpoint", node_.ingest,
                               "--json", "--linger-ms", "5000"};
    if (!dqd.empty()) a.insert(a.end(), {"--out", dqd.string()});
    return a;
  }
  nlohmann::json feed(std::vector<std::string> argv, std::chrono::milliseconds timeout = 120s) const {
    auto r = run(argv, tmp_.path(), timeout);
    if (r.code != 0) throw std::runtime_error("du-sim failed (" + std::to_string(r.code) + "): " + r.err);
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_discarded()) throw std::runtime_error("du-sim output is not JSON: " + r.out);
    return j;
  }

  // Waits until the node's builder has emitted `slices` slices of the current run.
  bool wait_slices(std::uint64_t slices, std::chrono::milliseconds timeout = 60s) const {
    return wait_until([&] {
      auto r = shorectl(node_, {"status"}, 5s);
      if (r.code != 0) return false;
      return r.reply["counters"].value("slices", std::uint64_t{0}) >= slices;
    }, timeout, 100ms);
  }

  static nlohmann::json must(const CtlResult& r) {
    if (r.code != 0) throw std::runtime_error("shorectl failed (" + std::to_string(r.code) + "): " + r.out + r.err);
    return r.reply;
  }

 private:
  TempDir tmp_;
  fs::path detx_;
  NodeSetup node_;
  Child daemon_;
};

// The first capture of `pattern` in the daemon's log (waits up to 20 s); "" if it never appears.
inline std::string from_log(Child& daemon, const std::string& pattern) {
  const std::regex re(pattern);
  std::string found;
  wait_until([&] {
    std::smatch m;
    const std::string log = daemon.err() + daemon.out();
    if (std::regex_search(log, m, re)) found = m[1].str();
    return !found.empty() || !daemon.running();
  }, 20s);
  return found;
}

// The HTTP port of a daemon started with [metrics] port = 0 (from its log line).
inline int metrics_port_of(Child& daemon) {
  return std::stoi("0" + from_log(daemon, R"(metrics on http://127\.0\.0\.1:([0-9]+))"));
}

// Sum of every counter under "drops" in a status reply whose name starts with `prefix`.
inline std::uint64_t drops_with_prefix(const nlohmann::json& status, const std::string& prefix) {
  std::uint64_t n = 0;
  for (const auto& [k, v] : status["drops"].items()) {
    if (k.rfind(prefix, 0) == 0) n += v.get<std::uint64_t>();
  }
  return n;
}

}  // namespace hil
