// HIL: shoredaq killed with SIGKILL mid-run and restarted (the store verifies, every committed
// slice is still there, the crashed run is marked aborted, a new run works); the store cap reached
// (clear alarm, refusals counted, no corruption, the daemon keeps serving).
#include <gtest/gtest.h>

#include "hil_support.hpp"
#include "shoredaq/storage/event_store.hpp"

using namespace hil;

namespace {

std::uint64_t u64(const nlohmann::json& j, const std::string& key) { return j.at(key).get<std::uint64_t>(); }

std::uint64_t count_summaries(const shoredaq::storage::EventStoreReader& reader, std::uint32_t run) {
  std::uint64_t n = 0;
  reader.for_each_summary(run, 0, 0xffffffffu, [&](std::uint32_t, std::uint32_t, std::span<const std::uint8_t>) {
    ++n;
    return true;
  });
  return n;
}

std::string first_problem(const shoredaq::storage::VerifyReport& r) { return r.problems.empty() ? "" : r.problems.front(); }

}  // namespace

TEST(HilCrash, Kill9MidRunThenRestart) {
  // The manual recovery path: the node does not resume by itself here (see run_cycle_test.cpp).
  Rig rig("kill9", "first:2", "[run]\nresume_after_restart = false\n");
  rig.start_run(20);
  Child sim(rig.du_sim_args(20, 0, 21), rig.tmp() / "du-sim.out", rig.tmp() / "du-sim.err");
  ASSERT_TRUE(rig.wait_slices(12)) << rig.status().dump();
  const std::uint64_t written_before = u64(rig.status()["counters"], "slices_written");
  ASSERT_GT(written_before, 0u);
  rig.daemon().signal(SIGKILL);
  EXPECT_EQ(rig.daemon().wait(10s), 128 + SIGKILL);
  sim.signal(SIGTERM);
  sim.wait(20s);

  {
    auto reader = shoredaq::storage::EventStoreReader::open(rig.node().store());
    const auto report = reader.verify();
    EXPECT_TRUE(report.ok()) << first_problem(report);
    // Every slice the node reported committed before the kill is still there.
    EXPECT_GE(count_summaries(reader, 20), written_before);
  }

  auto verify = run({program("shore-events"), "--store", rig.node().store().string(), "verify"}, rig.tmp().path());
  EXPECT_EQ(verify.code, 0) << verify.out << verify.err;

  rig.restart();
  EXPECT_EQ(state_of(rig.node()), "Idle");
  rig.start_run(21);  // init marks run 20 aborted
  rig.feed(rig.du_sim_args(21, 8, 22));
  rig.stop_run();
  EXPECT_EQ(u64(rig.status()["counters"], "slices_written"), 8u);
  rig.quit();

  auto reader = shoredaq::storage::EventStoreReader::open(rig.node().store());
  const auto report = reader.verify();
  EXPECT_TRUE(report.ok()) << first_problem(report);
  auto crashed = reader.run(20);
  ASSERT_TRUE(crashed.has_value());
  EXPECT_EQ(crashed->state, shoredaq::dataflow::RunOutcome::Aborted);
  EXPECT_GE(count_summaries(reader, 20), written_before);
  auto next = reader.run(21);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->state, shoredaq::dataflow::RunOutcome::Stopped);
  EXPECT_EQ(count_summaries(reader, 21), 8u);
}

TEST(HilCrash, StoreCapReachedRaisesAlarmWithoutCorruption) {
  // A tiny store and a trigger that fires on background, so events fill the cap within a few slices.
  // Back-pressure: every slice must reach the writer (a loaded machine made the node drop one).
  Rig rig("cap", "first:2", "[builder]\nbackpressure = true\n", "", "map_size_mb = 1\nmap_cap_mb = 8\n");
  // Wide snapshots (100 us) make each event megabytes, so the cap is reached within a few slices.
  write_file(rig.tmp() / "noisy.toml",
             "[trigger]\nsnapshot_window_ns = 100000\n[trigger.mxshower]\nnumber_of_hits = 2\nnumber_of_modules = 1\n");
  rig.start_run(30, (rig.tmp() / "noisy.toml").string());
  rig.feed(rig.du_sim_args(30, 20, 31));
  rig.stop_run();
  const auto status = rig.status();
  EXPECT_EQ(status["state"], "Standby");
  const std::uint64_t refused = u64(status["drops"], "store.slices_cap_reached");
  EXPECT_GT(refused, 0u) << status.dump(1);
  EXPECT_GT(u64(status["drops"], "store.events_refused"), 0u);
  ASSERT_TRUE(status.contains("alarm")) << status.dump(1);
  EXPECT_NE(status["alarm"].get<std::string>().find("cap"), std::string::npos) << status["alarm"];
  // Every slice: written or refused with its cause.
  EXPECT_EQ(u64(status["counters"], "slices_written") + refused, 20u) << status.dump(1);
  const std::uint64_t written = u64(status["counters"], "slices_written");
  // The daemon still answers and can be driven.
  EXPECT_EQ(state_of(rig.node()), "Standby");
  rig.quit();

  auto reader = shoredaq::storage::EventStoreReader::open(rig.node().store());
  const auto report = reader.verify();
  EXPECT_TRUE(report.ok()) << first_problem(report);
  EXPECT_EQ(count_summaries(reader, 30), written);
}
