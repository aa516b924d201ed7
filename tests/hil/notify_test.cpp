// HIL: the node under a fake systemd service manager (NOTIFY_SOCKET + WATCHDOG_USEC), in this
// process (no fault switch in the daemon: the stall comes from a sink the test adds), driven by the
// real shorectl and fed by the real du-sim. READY=1 only once the control socket answers;
// WATCHDOG=1 pings while the pipeline is idle or advancing; no pings while a stage holds work
// without advancing (the writer stalled in the test's sink); pings again once it is released;
// STOPPING=1 and EXTEND_TIMEOUT_USEC on stop, STOPPING=1 on quit.
#include <gtest/gtest.h>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

#include "../../firmware/tests/fake_service_manager.hpp"
#include "hil_support.hpp"
#include "shoredaq/firmware/config.hpp"
#include "shoredaq/firmware/node.hpp"

using namespace hil;

namespace {

// Receives notifications until one contains `needle` (true) or the deadline passes (false).
bool wait_message(shoredaq::test::FakeServiceManager& manager, const std::string& needle, std::chrono::milliseconds timeout,
                  std::vector<std::string>* seen = nullptr) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    auto m = manager.receive(std::max(left, std::chrono::milliseconds(1)));
    if (!m) continue;
    if (seen) seen->push_back(*m);
    if (m->find(needle) != std::string::npos) return true;
  }
  return false;
}

// True when a whole `quiet` window passes without a WATCHDOG=1 ping, within `timeout`.
bool wait_ping_silence(shoredaq::test::FakeServiceManager& manager, std::chrono::milliseconds quiet,
                       std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto window_start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < deadline) {
    auto m = manager.receive(50ms);
    const auto now = std::chrono::steady_clock::now();
    if (m && m->find("WATCHDOG=1") != std::string::npos) window_start = now;
    if (now - window_start >= quiet) return true;
  }
  return false;
}

// A synchronous sink that holds the writer thread while `stalled` is set, as a writer stuck on a
// hung disk would.
class StallingSink final : public shoredaq::dataflow::Sink {
 public:
  explicit StallingSink(const std::atomic<bool>& stalled) : stalled_(stalled) {}
  std::string_view name() const noexcept override { return "stall"; }
  void begin_run(const shoredaq::dataflow::RunRecord&) override {}
  shoredaq::dataflow::SinkWrite write(const shoredaq::dataflow::SliceProducts&) override {
    while (stalled_.load()) std::this_thread::sleep_for(20ms);  // the fault itself: a stuck write
    return {};
  }
  void end_run(shoredaq::dataflow::RunRecord&) override {}
  void counters(shoredaq::dataflow::CounterSet&) const override {}

 private:
  const std::atomic<bool>& stalled_;
};

class EnvVar {
 public:
  EnvVar(const char* name, const std::string& value) : name_(name) { ::setenv(name, value.c_str(), 1); }
  ~EnvVar() { ::unsetenv(name_); }

 private:
  const char* name_;
};

}  // namespace

TEST(HilNotify, ReadyAfterBindWatchdogFollowsProgressStoppingOnStop) {
  shoredaq::test::FakeServiceManager manager;
  TempDir tmp("notify");
  EnvVar watchdog("WATCHDOG_USEC", "400000");  // checks every 200 ms
  auto log = std::make_shared<std::ostringstream>();
  auto capture = std::make_shared<spdlog::sinks::ostream_sink_mt>(*log);
  spdlog::default_logger()->sinks().push_back(capture);

  const fs::path detx = tmp / "detector.detx";
  ASSERT_EQ(run({program("shoredaq"), "detx", "--detx", kDetx133, "--dus", "first:2", "--out", detx.string()}, tmp.path()).code, 0);
  const NodeSetup node = make_node_setup(tmp);
  std::atomic<bool> stalled{false};
  shoredaq::firmware::NodeOptions options;
  options.extra_sinks = [&stalled] {
    std::vector<shoredaq::firmware::WriterSink> sinks;
    sinks.push_back({std::make_unique<StallingSink>(stalled), false});
    return sinks;
  };
  shoredaq::firmware::Node daemon(shoredaq::firmware::load_config(node.config()), std::move(options));
  int exit_code = -1;
  std::thread serving([&] { exit_code = daemon.serve(); });
  struct Join {
    std::thread& t;
    ~Join() {
      if (t.joinable()) t.join();
    }
  } join{serving};
  const auto logged = [&] {
    spdlog::default_logger()->flush();
    return log->str();
  };

  // READY=1 means the control socket is bound: the very first request after it is answered.
  ASSERT_TRUE(wait_message(manager, "READY=1", 20s)) << logged();
  const auto first = shorectl(node, {"status"}, 2s);
  ASSERT_EQ(first.code, 0) << first.err;
  EXPECT_EQ(first.reply.value("state", ""), "Idle");

  ASSERT_TRUE(wait_message(manager, "WATCHDOG=1", 5s));
  auto must = [](const CtlResult& r) {
    ASSERT_EQ(r.code, 0) << r.out << r.err;
  };
  must(shorectl(node, {"init"}));
  must(shorectl(node, {"configure", "--detx", detx.string()}));
  must(shorectl(node, {"start", "--run", "7"}));

  // Running without input: every stage idle, the node stays healthy.
  manager.drain();
  ASSERT_TRUE(wait_message(manager, "WATCHDOG=1", 5s));
  ASSERT_TRUE(wait_message(manager, "WATCHDOG=1", 5s));

  // Stall the writer, feed data: slices pile up in front of it and the pings stop.
  stalled.store(true);
  const auto sim = run({program("du-sim"), "--detx", detx.string(), "--slices", "10", "--run", "7", "--seed", "3",
                        "--endpoint", node.ingest, "--json", "--linger-ms", "5000"},
                       tmp.path(), 60s);
  ASSERT_EQ(sim.code, 0) << sim.err;
  // Within a few checks, well before the 5 s "thread not waking up" health limit would trigger.
  EXPECT_TRUE(wait_ping_silence(manager, 1000ms, 3000ms)) << "pings continued with a stalled writer";
  EXPECT_TRUE(wait_until([&] { return logged().find("pipeline stage 'writer'") != std::string::npos; }, 5s)) << logged();

  // Released: the writer catches up and the pings resume.
  stalled.store(false);
  EXPECT_TRUE(wait_message(manager, "WATCHDOG=1", 10s)) << "no pings after the stall ended";

  std::vector<std::string> seen;
  must(shorectl(node, {"stop"}, 60s));
  EXPECT_TRUE(wait_message(manager, "STOPPING=1", 10s, &seen));
  bool extend = false;
  for (const auto& m : seen) extend = extend || m.find("EXTEND_TIMEOUT_USEC=") != std::string::npos;
  if (!extend) extend = wait_message(manager, "EXTEND_TIMEOUT_USEC=", 5s);
  EXPECT_TRUE(extend) << "a stop with a drain asks for more time";
  const auto status = shorectl(node, {"status"});
  ASSERT_EQ(status.code, 0);
  EXPECT_EQ(status.reply["counters"].value("slices_written", std::uint64_t{0}) +
                drops_with_prefix(status.reply, "pipeline.slices"),
            status.reply["counters"].value("slices", std::uint64_t{0}));
  EXPECT_GT(status.reply["counters"].value("slices_written", std::uint64_t{0}), 0u);

  manager.drain();
  must(shorectl(node, {"quit"}, 60s));
  EXPECT_TRUE(wait_message(manager, "STOPPING=1", 10s));
  serving.join();
  EXPECT_EQ(exit_code, 0) << logged();
  auto& sinks = spdlog::default_logger()->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), capture), sinks.end());
}
