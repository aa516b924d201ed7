// HIL: a normal run. du-sim (fixed seed, 2 DUs, bright muons) feeds shoredaq over ZeroMQ and writes
// the same records to a .dqd; configure/start/stop through shorectl. Every simulated slice is
// accounted for, the store verifies, and the stored events equal `shoredaq replay` of the same feed.
// Also: stop under full load loses nothing that was received.
#include <gtest/gtest.h>

#include "hil_support.hpp"
#include "store_reading.hpp"
#include "shoredaq/formats/fb_codec.hpp"
#include "shoredaq/storage/event_store.hpp"

using namespace hil;
using shoredaq::dataflow::Event;

namespace {

std::uint64_t stored_summaries(const fs::path& store, std::uint32_t run) {
  auto reader = shoredaq::storage::EventStoreReader::open(store);
  std::uint64_t n = 0;
  reader.for_each_summary(run, 0, 0xffffffffu, [&](std::uint32_t, std::uint32_t, std::span<const std::uint8_t>) {
    ++n;
    return true;
  });
  return n;
}

const std::vector<std::string> kBrightMuons{"--muon-rate-hz", "20", "--muon-yield", "400"};

}  // namespace

TEST(HilNormalRun, EverySliceAccountedForAndStoreEqualsReplay) {
  Rig rig("normal");
  constexpr std::uint32_t kRun = 42;
  constexpr unsigned kSlices = 40;
  rig.start_run(kRun);
  const fs::path dqd = rig.tmp() / "feed.dqd";
  auto args = rig.du_sim_args(kRun, kSlices, 1234, dqd);
  args.insert(args.end(), kBrightMuons.begin(), kBrightMuons.end());
  const auto sim = rig.feed(args);
  ASSERT_EQ(sim["slices"], kSlices);
  ASSERT_TRUE(rig.wait_slices(kSlices)) << rig.status().dump();
  const auto stopped = rig.stop_run();
  EXPECT_EQ(stopped["state"], "Standby");
  const auto status = rig.status();
  const auto& c = status["counters"];

  // Every slice: built, then written or dropped with a cause.
  EXPECT_EQ(c["slices"].get<std::uint64_t>(), kSlices);
  EXPECT_EQ(c["builder.slices_complete"].get<std::uint64_t>(), kSlices);
  const std::uint64_t dropped = drops_with_prefix(status, "pipeline.slices") + drops_with_prefix(status, "store.slices") +
                                status["drops"]["writer.slices_paused"].get<std::uint64_t>();
  EXPECT_EQ(c["slices_written"].get<std::uint64_t>() + dropped, kSlices) << status.dump(1);
  EXPECT_EQ(dropped, 0u) << status.dump(1);
  EXPECT_EQ(c["ingest.datagrams"], sim["datagrams_out"]);
  EXPECT_EQ(c["builder.hits"], sim["hits"]);
  EXPECT_TRUE(status.value("drained", false));
  // /status for the shifter: uptime, per-DU rates of the last slice, no sick DOM in a clean feed.
  EXPECT_GT(status["uptime_s"].get<double>(), 0.0);
  const auto& health = status["detector_health"];
  EXPECT_EQ(health["slices"], kSlices) << health.dump(1);
  ASSERT_EQ(health["dus"].size(), 2u) << health.dump(1);
  for (const auto& du : health["dus"]) {
    EXPECT_EQ(du["doms_reporting"], du["doms_expected"]) << du.dump();
    EXPECT_EQ(du["doms_expected"], 18);
    // 7 kHz singles plus the 40K coincidences (DOMAIN.md section 1); rate codes are ~3 % coarse.
    EXPECT_GT(du["mean_pmt_rate_khz"].get<double>(), 6.0) << du.dump();
    EXPECT_LT(du["mean_pmt_rate_khz"].get<double>(), 12.0) << du.dump();
  }
  EXPECT_TRUE(health["worst_doms"].empty()) << health.dump(1);
  rig.quit();

  EXPECT_EQ(stored_summaries(rig.node().store(), kRun), kSlices);
  const auto live = stored_events(rig.node().store(), kRun);
  EXPECT_GT(live.size(), 0u) << "bright muons should trigger";
  EXPECT_EQ(live.size(), c["events"].get<std::uint64_t>());

  const auto report = shoredaq::storage::EventStoreReader::open(rig.node().store()).verify();
  EXPECT_TRUE(report.ok()) << (report.problems.empty() ? "" : report.problems.front());
  auto verify = run({program("shore-events"), "--store", rig.node().store().string(), "verify"}, rig.tmp().path());
  EXPECT_EQ(verify.code, 0) << verify.out << verify.err;

  // The offline replay of the same feed, same filters, same (default) setup.
  const fs::path replay_store = rig.tmp() / "replay-store";
  auto replay = run({program("shoredaq"), "replay", "--detx", rig.detx().string(), "--input", dqd.string(), "--store",
                     replay_store.string()},
                    rig.tmp().path(), 120s);
  ASSERT_EQ(replay.code, 0) << replay.err;
  const auto offline = stored_events(replay_store, kRun);
  ASSERT_EQ(live.size(), offline.size()) << replay.out;
  for (std::size_t i = 0; i < live.size(); ++i) {
    EXPECT_EQ(live[i], offline[i]) << "event " << i << " frame " << live[i].header.frame_index;
    EXPECT_EQ(live[i].event_number, offline[i].event_number);
  }
  EXPECT_EQ(stored_summaries(replay_store, kRun), kSlices);
}

TEST(HilNormalRun, StopUnderFullLoadLosesNothingReceived) {
  Rig rig("stopload");
  constexpr std::uint32_t kRun = 7;
  rig.start_run(kRun);
  // An endless as-fast-as-possible feed; stop while it is still sending.
  auto args = rig.du_sim_args(kRun, 0, 99);
  Child sim(args, rig.tmp() / "du-sim.out", rig.tmp() / "du-sim.err");
  ASSERT_TRUE(rig.wait_slices(15)) << rig.status().dump();
  const auto t0 = std::chrono::steady_clock::now();
  rig.stop_run();
  const auto stop_took = std::chrono::steady_clock::now() - t0;
  sim.signal(SIGTERM);
  sim.wait(20s);
  const auto status = rig.status();
  const auto& c = status["counters"];
  EXPECT_TRUE(status.value("drained", false)) << status.dump(1);
  // Everything the builder emitted was filtered and committed; nothing aborted.
  EXPECT_EQ(status["drops"]["pipeline.slices_aborted"], 0);
  EXPECT_EQ(c["slices_written"].get<std::uint64_t>() + drops_with_prefix(status, "pipeline.slices") +
                drops_with_prefix(status, "store.slices"),
            c["slices"].get<std::uint64_t>())
      << status.dump(1);
  EXPECT_LT(stop_took, 20s);
  rig.quit();
  EXPECT_EQ(stored_summaries(rig.node().store(), kRun), c["slices_written"].get<std::uint64_t>());
  // The end-of-run record says the run stopped and was drained.
  auto reader = shoredaq::storage::EventStoreReader::open(rig.node().store());
  auto record = reader.run(kRun);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->state, shoredaq::dataflow::RunOutcome::Stopped);
  EXPECT_EQ(record->counter("stop.drained"), 1u);
  EXPECT_EQ(record->counter("slices_written"), c["slices_written"].get<std::uint64_t>());
}
