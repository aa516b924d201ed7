// SystemdNotifier and Watchdog against a fake service manager: a unix datagram socket bound in a
// temp dir, announced through NOTIFY_SOCKET, exactly as systemd does for Type=notify services.
#include "shoredaq/firmware/notify.hpp"

#include "fake_service_manager.hpp"

#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <thread>

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using shoredaq::firmware::SystemdNotifier;
using shoredaq::firmware::Watchdog;
using shoredaq::test::FakeServiceManager;

namespace {

template <typename Predicate>
bool wait_for(Predicate predicate, std::chrono::milliseconds deadline = 5000ms) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    if (predicate()) {
      return true;
    }
    std::this_thread::sleep_for(1ms);
  }
  return predicate();
}

}  // namespace

TEST(SystemdNotifier, IsANoOpWithoutNotifySocket) {
  ::unsetenv("NOTIFY_SOCKET");
  SystemdNotifier notifier;
  EXPECT_FALSE(notifier.enabled());
  EXPECT_FALSE(notifier.ready());
  EXPECT_FALSE(notifier.status("idle"));
  EXPECT_FALSE(notifier.stopping());
  EXPECT_FALSE(notifier.watchdog_ping());
}

TEST(SystemdNotifier, SendsReadyStatusStoppingAndExtendTimeout) {
  FakeServiceManager manager;
  SystemdNotifier notifier;
  ASSERT_TRUE(notifier.enabled());

  EXPECT_TRUE(notifier.ready());
  EXPECT_EQ(manager.receive(), "READY=1");

  EXPECT_TRUE(notifier.ready("state=Standby"));
  EXPECT_EQ(manager.receive(), "READY=1\nSTATUS=state=Standby");

  EXPECT_TRUE(notifier.status("Running run 42, 180 DOMs, 3.9 Mhit/s\nsecond line"));
  EXPECT_EQ(manager.receive(), "STATUS=Running run 42, 180 DOMs, 3.9 Mhit/s second line");

  EXPECT_TRUE(notifier.stopping("draining"));
  EXPECT_EQ(manager.receive(), "STOPPING=1\nSTATUS=draining");

  EXPECT_TRUE(notifier.extend_timeout(std::chrono::seconds(30)));
  EXPECT_EQ(manager.receive(), "EXTEND_TIMEOUT_USEC=30000000");

  EXPECT_TRUE(notifier.watchdog_ping());
  EXPECT_EQ(manager.receive(), "WATCHDOG=1");
}

TEST(SystemdNotifier, ReadsWatchdogIntervalOnlyForThisProcess) {
  FakeServiceManager manager;
  SystemdNotifier notifier;
  ::unsetenv("WATCHDOG_USEC");
  EXPECT_FALSE(notifier.watchdog_interval().has_value());

  ::setenv("WATCHDOG_USEC", "200000", 1);
  ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  ASSERT_TRUE(notifier.watchdog_interval().has_value());
  EXPECT_EQ(*notifier.watchdog_interval(), 200ms);
  EXPECT_EQ(*Watchdog::ping_period_for(notifier), 100ms);

  // The watchdog belongs to another process (e.g. we are a child): not ours to ping.
  ::setenv("WATCHDOG_PID", std::to_string(::getpid() + 1).c_str(), 1);
  EXPECT_FALSE(notifier.watchdog_interval().has_value());
}

TEST(ProgressSinceLastCall, ReportsChangeOfTheCounter) {
  std::uint64_t counter = 5;
  auto progressed = shoredaq::firmware::progress_since_last_call([&] { return counter; });
  EXPECT_TRUE(progressed());  // first call: nothing to compare with
  EXPECT_FALSE(progressed());
  counter = 6;
  EXPECT_TRUE(progressed());
  EXPECT_FALSE(progressed());
}

TEST(Watchdog, PingsWhileProgressAndStopsWhenPipelineStalls) {
  FakeServiceManager manager;
  SystemdNotifier notifier;
  std::atomic<std::uint64_t> slices_committed{0};
  std::atomic<bool> pipeline_running{true};
  std::thread pipeline([&] {
    while (pipeline_running.load()) {
      slices_committed.fetch_add(1);
      std::this_thread::sleep_for(1ms);
    }
  });

  Watchdog watchdog(notifier, 10ms,
                    shoredaq::firmware::progress_since_last_call([&] { return slices_committed.load(); }));
  watchdog.start();

  int pings = 0;
  for (int i = 0; i < 5; ++i) {
    auto message = manager.receive();
    ASSERT_TRUE(message.has_value()) << "no watchdog ping while the pipeline progresses";
    EXPECT_EQ(*message, "WATCHDOG=1");
    ++pings;
  }
  EXPECT_EQ(pings, 5);

  // The stage gets stuck: the counter stops moving.
  pipeline_running = false;
  pipeline.join();
  ASSERT_TRUE(wait_for([&] { return watchdog.withholding_pings(); }));
  manager.drain();  // pings sent before the stall was noticed
  const auto checks_at_stall = watchdog.checks();
  ASSERT_TRUE(wait_for([&] { return watchdog.checks() >= checks_at_stall + 3; }));
  EXPECT_FALSE(manager.receive(0ms).has_value()) << "watchdog pinged although nothing progressed";
  EXPECT_TRUE(watchdog.withholding_pings());

  // Progress resumes: pings resume.
  slices_committed.fetch_add(1);
  auto resumed = manager.receive();
  ASSERT_TRUE(resumed.has_value());
  EXPECT_EQ(*resumed, "WATCHDOG=1");
  watchdog.stop();
}

TEST(Watchdog, FaultHookSimulatesStalledStageWhileCounterMoves) {
  FakeServiceManager manager;
  SystemdNotifier notifier;
  std::atomic<std::uint64_t> counter{0};
  Watchdog watchdog(notifier, 5ms, [&] {
    counter.fetch_add(1);  // the pipeline always "progresses"...
    return true;
  });
  watchdog.start();
  ASSERT_EQ(manager.receive(), "WATCHDOG=1");

  watchdog.simulate_stalled_stage(true);  // ...but a stage is declared stuck
  ASSERT_TRUE(wait_for([&] { return watchdog.withholding_pings(); }));
  manager.drain();
  const auto pings_at_stall = watchdog.pings_sent();
  const auto checks_at_stall = watchdog.checks();
  ASSERT_TRUE(wait_for([&] { return watchdog.checks() >= checks_at_stall + 3; }));
  EXPECT_FALSE(manager.receive(0ms).has_value());
  EXPECT_EQ(watchdog.pings_sent(), pings_at_stall);

  watchdog.simulate_stalled_stage(false);
  EXPECT_EQ(manager.receive(), "WATCHDOG=1");
  EXPECT_FALSE(watchdog.withholding_pings());
  watchdog.stop();
}

TEST(Watchdog, StopReturnsPromptlyEvenWithLongPeriod) {
  ::unsetenv("NOTIFY_SOCKET");
  SystemdNotifier notifier;
  Watchdog watchdog(notifier, std::chrono::hours(1), [] { return true; });
  watchdog.start();
  ASSERT_TRUE(wait_for([&] { return watchdog.checks() >= 1; }));
  const auto before = std::chrono::steady_clock::now();
  watchdog.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before, 2s);
}

TEST(StallDetector, IdleStagesAreNeverStuck) {
  shoredaq::firmware::StallDetector d;
  EXPECT_EQ(d.check({{"writer", 5, 0}}), "");
  EXPECT_EQ(d.check({{"writer", 5, 0}}), "");
}

TEST(StallDetector, StageHoldingWorkWithoutProgressIsStuck) {
  shoredaq::firmware::StallDetector d;
  EXPECT_EQ(d.check({{"builder", 1, 0}, {"writer", 10, 3}}), "");  // first sample: nothing to compare
  EXPECT_EQ(d.check({{"builder", 9, 0}, {"writer", 10, 4}}), "writer");  // upstream advancing does not help
  EXPECT_EQ(d.check({{"builder", 9, 0}, {"writer", 11, 3}}), "");        // advanced again
  d.reset();
  EXPECT_EQ(d.check({{"writer", 11, 3}}), "");
}

TEST(StallDetector, WorkArrivingAtAnIdleStageIsNotAStall) {
  shoredaq::firmware::StallDetector d;
  EXPECT_EQ(d.check({{"workers", 4, 0}}), "");
  EXPECT_EQ(d.check({{"workers", 4, 2}}), "");  // had nothing pending before
  EXPECT_EQ(d.check({{"workers", 4, 2}}), "workers");
}
