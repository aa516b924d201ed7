// The external SNEWS hook: a command gets each message on stdin (captured by a script this test
// writes), its exit status and a hung command are counted, the queue never blocks the caller, test
// messages can be held back; a ZeroMQ PUSH hook delivers to a PULL the test binds.
#include "shoredaq/firmware/snews_hook.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace shoredaq;
using firmware::SnewsHook;
using firmware::SnewsHookConfig;

namespace {

template <typename Predicate>
bool wait_until(Predicate predicate, std::chrono::milliseconds deadline = 10s) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    if (predicate()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return predicate();
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("snews_hook_test." + std::to_string(::getpid()) + "." +
                                               std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

// A script that appends its stdin and a separator line to `out`, then exits with `status`.
fs::path capture_script(const fs::path& dir, const fs::path& out, int status, const std::string& before = "") {
  const fs::path script = dir / ("hook-" + std::to_string(status) + ".sh");
  std::ofstream(script) << "#!/bin/sh\n" << before << "cat >> '" << out.string() << "'\necho >> '" << out.string()
                        << "'\nexit " << status << "\n";
  fs::permissions(script, fs::perms::owner_all);
  return script;
}

std::vector<nlohmann::json> read_messages(const fs::path& file) {
  std::vector<nlohmann::json> out;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

dataflow::SnewsMessage heartbeat(bool on, bool is_test = false) {
  const nlohmann::json m = {{"detector_name", "KM3NeT"}, {"detector_status", on ? "ON" : "OFF"}, {"is_test", is_test}};
  return {dataflow::SnewsMessage::Kind::Heartbeat, m.dump()};
}

}  // namespace

TEST(SnewsHook, ACommandGetsEveryMessageOnStdinInOrder) {
  TempDir tmp;
  const fs::path out = tmp.path / "captured.jsonl";
  SnewsHookConfig c;
  c.command = {capture_script(tmp.path, out, 0).string()};
  c.timeout = 5s;
  SnewsHook hook(nullptr, c);
  const nlohmann::json alert = {{"detector_name", "KM3NeT"}, {"p_val", 1e-9}, {"is_test", false}};
  hook.offer(heartbeat(true));
  hook.offer({dataflow::SnewsMessage::Kind::Alert, alert.dump()});
  hook.offer(heartbeat(false));
  ASSERT_TRUE(wait_until([&] { return hook.counters().delivered == 3; }));
  const auto messages = read_messages(out);
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_EQ(messages[0]["detector_status"], "ON");
  EXPECT_EQ(messages[1], alert);
  EXPECT_EQ(messages[2]["detector_status"], "OFF");
  const auto counters = hook.counters();
  EXPECT_EQ(counters.alerts_offered, 1u);
  EXPECT_EQ(counters.heartbeats_offered, 2u);
  EXPECT_EQ(counters.command_failed + counters.command_timed_out + counters.command_spawn_errors, 0u);
}

TEST(SnewsHook, ExitStatusTimeoutsAndAMissingProgramAreCounted) {
  TempDir tmp;
  const fs::path out = tmp.path / "captured.jsonl";
  SnewsHookConfig failing;
  failing.command = {capture_script(tmp.path, out, 3).string()};
  SnewsHook hook(nullptr, failing);
  hook.offer(heartbeat(true));
  ASSERT_TRUE(wait_until([&] { return hook.counters().command_failed == 1; }));
  EXPECT_EQ(hook.counters().last_exit_status, 3);
  EXPECT_EQ(hook.counters().delivered, 0u);

  // A command that never ends is killed at the timeout; the caller was never held up.
  SnewsHookConfig hung;
  hung.command = {capture_script(tmp.path, out, 0, "exec sleep 600\n").string()};
  hung.timeout = 200ms;
  SnewsHook slow(nullptr, hung);
  const auto before = std::chrono::steady_clock::now();
  slow.offer(heartbeat(true));
  EXPECT_LT(std::chrono::steady_clock::now() - before, 100ms);
  ASSERT_TRUE(wait_until([&] { return slow.counters().command_timed_out == 1; }));
  EXPECT_EQ(slow.counters().last_exit_status, 128 + 9);  // SIGKILL

  SnewsHookConfig missing;
  missing.command = {(tmp.path / "no-such-program").string()};
  SnewsHook absent(nullptr, missing);
  absent.offer(heartbeat(true));
  ASSERT_TRUE(wait_until([&] { return absent.counters().command_spawn_errors == 1; }));
}

TEST(SnewsHook, AFullQueueDropsAndCountsAndTestMessagesCanBeHeldBack) {
  TempDir tmp;
  const fs::path out = tmp.path / "captured.jsonl";
  // The command says it started, then waits for the gate file (at most ~50 s), so the queue fills
  // behind the first message.
  const fs::path started = tmp.path / "started", gate = tmp.path / "gate";
  SnewsHookConfig c;
  c.command = {capture_script(tmp.path, out, 0,
                              "touch '" + started.string() + "'\ni=0; while [ ! -e '" + gate.string() +
                                  "' ] && [ $i -lt 5000 ]; do i=$((i+1)); sleep 0.01; done\n")
                   .string()};
  c.queue_messages = 2;
  c.test_messages = false;
  SnewsHook hook(nullptr, c);
  hook.offer(heartbeat(true));
  ASSERT_TRUE(wait_until([&] { return fs::exists(started); }));
  const auto before = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) hook.offer(heartbeat(true));  // 2 fit, 3 do not
  hook.offer(heartbeat(true, true));                         // is_test: skipped, counted
  EXPECT_LT(std::chrono::steady_clock::now() - before, 100ms) << "offer never waits for the command";
  EXPECT_EQ(hook.counters().dropped_queue_full, 3u);
  EXPECT_EQ(hook.counters().skipped_test, 1u);
  std::ofstream(gate) << "go\n";
  ASSERT_TRUE(wait_until([&] { return hook.counters().delivered == 3; }, 60s));
  EXPECT_EQ(read_messages(out).size(), 3u);
  EXPECT_EQ(hook.counters().heartbeats_offered, 7u);
}

TEST(SnewsHook, APushHookDeliversToTheForwardersPull) {
  TempDir tmp;
  zmq::context_t context;
  zmq::socket_t pull(context, zmq::socket_type::pull);
  pull.set(zmq::sockopt::linger, 0);
  pull.set(zmq::sockopt::rcvtimeo, 5000);
  const std::string endpoint = "ipc://" + (tmp.path / "snews.sock").string();
  pull.bind(endpoint);
  SnewsHookConfig c;
  c.endpoint = endpoint;
  c.linger_ms = 100;
  {
    SnewsHook hook(&context, c);
    hook.offer(heartbeat(true));
    hook.offer({dataflow::SnewsMessage::Kind::Alert, R"({"detector_name":"KM3NeT","p_val":1e-8,"is_test":true})"});
    EXPECT_EQ(hook.counters().delivered, 2u);
    zmq::message_t m;
    ASSERT_TRUE(pull.recv(m));
    EXPECT_EQ(nlohmann::json::parse(m.to_string())["detector_status"], "ON");
    ASSERT_TRUE(pull.recv(m));
    EXPECT_EQ(nlohmann::json::parse(m.to_string())["p_val"], 1e-8);
  }
  // No forwarder: the high-water mark fills and the rest is dropped, counted, without waiting.
  c.endpoint = "ipc://" + (tmp.path / "nobody.sock").string();
  c.send_hwm = 2;
  c.linger_ms = 0;
  SnewsHook lonely(&context, c);
  for (int i = 0; i < 10; ++i) lonely.offer(heartbeat(true));
  EXPECT_EQ(lonely.counters().delivered + lonely.counters().dropped_queue_full, 10u);
  EXPECT_GT(lonely.counters().dropped_queue_full, 0u);
}
