// HIL: runs that cycle themselves and a node that resumes its runs after a crash (issue "Tier-0
// transfer for real", item 3). With [run] max_duration_s = 5, a 30 s feed becomes at least five
// runs whose frames are contiguous and whose events equal one replay of the same feed; kill -9 and
// a restart on the same state directory resume data taking within 10 s with the next run number.
#include <gtest/gtest.h>

#include <map>

#include "hil_support.hpp"
#include "shoredaq/formats/fb_codec.hpp"
#include "shoredaq/storage/event_store.hpp"

using namespace hil;

namespace {

// The events of some runs of a store as shore-events prints them, stripped of what numbering and
// node-local clocks change (run, frame, event number, trigger counter, stamps), in time order.
nlohmann::json events_of(const fs::path& store, const std::vector<std::uint32_t>& runs, const fs::path& scratch) {
  std::vector<nlohmann::json> all;
  for (const auto run_number : runs) {
    const auto r = hil::run({program("shore-events"), "--store", store.string(), "events", "--run",
                             std::to_string(run_number), "--json"},
                            scratch);
    std::istringstream lines(r.out);
    std::string line;
    while (std::getline(lines, line)) {
      auto e = nlohmann::json::parse(line, nullptr, false);
      if (e.is_discarded() || !e.is_object()) continue;
      for (const char* k : {"run", "frame", "event", "trigger_counter", "received_unix_ns", "completed_unix_ns",
                            "filtered_unix_ns", "committed_unix_ns"})
        e.erase(k);
      all.push_back(e);
    }
  }
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return std::make_pair(a["utc_seconds"].template get<std::uint64_t>(), a["ticks_16ns"].template get<std::uint64_t>()) <
           std::make_pair(b["utc_seconds"].template get<std::uint64_t>(), b["ticks_16ns"].template get<std::uint64_t>());
  });
  return nlohmann::json(all);
}

}  // namespace

TEST(HilRunCycle, RunsCycleEveryFiveSecondsOfDataWithoutAFrameLost) {
  // Back-pressure: du-sim sends as fast as it can, and on a loaded machine (or under a sanitizer)
  // the filters fall behind; this test is about frames across runs, not about drops.
  Rig rig("cycle", "first:2", "[run]\nmax_duration_s = 5\ntype = \"test\"\n[builder]\nbackpressure = true\n");
  rig.start_run(100);
  constexpr unsigned kSlices = 300;  // 30 s of data
  const fs::path feed = rig.tmp() / "feed.dqd";
  rig.feed(rig.du_sim_args(100, kSlices, 101, feed), 300s);
  ASSERT_TRUE(rig.wait_slices(kSlices - 11, 120s));
  const auto during = rig.status();
  EXPECT_NE(during["run_schedule"].value("summary", "").find("a new run every 5 s of data"), std::string::npos)
      << during["run_schedule"].dump();
  rig.stop_run();
  rig.quit();

  auto reader = shoredaq::storage::EventStoreReader::open(rig.node().store());
  const auto records = reader.runs();
  ASSERT_GE(records.size(), 6u);
  std::vector<std::uint32_t> runs;
  std::vector<std::uint64_t> slice_starts;
  std::uint64_t written = 0;
  for (const auto& r : records) {
    runs.push_back(r.run);
    EXPECT_EQ(r.state, shoredaq::dataflow::RunOutcome::Stopped) << r.run;
    EXPECT_EQ(r.run_type, "test");
    EXPECT_EQ(r.first_frame, 1u) << r.run;
    EXPECT_FALSE(r.software_version.empty());
    EXPECT_FALSE(r.host.empty());
    if (r.run != records.back().run) {
      EXPECT_EQ(r.stop_reason, "max_duration") << r.run;
      EXPECT_EQ(r.last_frame, 50u) << r.run;  // 5 s of 100 ms slices
    }
    if (r.run != 100) {
      EXPECT_EQ(r.start_reason, "cycle after run " + std::to_string(r.run - 1) + " (max_duration)");
    }
    written += r.counter("slices_written");
    reader.for_each_summary(r.run, 0, 0xffffffffu, [&](std::uint32_t, std::uint32_t, std::span<const std::uint8_t> b) {
      slice_starts.push_back(shoredaq::dataflow::decode_summary_slice_fb(b).value.header.slice_start_ns());
      return true;
    });
  }
  EXPECT_EQ(runs.front(), 100u);
  EXPECT_EQ(records.back().stop_reason, "operator");
  EXPECT_EQ(written, kSlices);
  ASSERT_EQ(slice_starts.size(), kSlices);
  for (std::size_t i = 1; i < slice_starts.size(); ++i)
    ASSERT_EQ(slice_starts[i], slice_starts[i - 1] + 100'000'000ull) << "a frame lost or doubled between runs at " << i;

  // The same feed replayed as one run: the same events.
  const auto replay = hil::run({program("shoredaq"), "replay", "--detx", rig.detx().string(), "--input", feed.string(),
                                "--store", (rig.tmp() / "replay").string(), "--run", "100"},
                               rig.tmp().path(), 300s);
  ASSERT_EQ(replay.code, 0) << replay.err;
  const auto cycled = events_of(rig.node().store(), runs, rig.tmp().path());
  const auto single = events_of(rig.tmp() / "replay", {100}, rig.tmp().path());
  ASSERT_FALSE(single.empty());
  EXPECT_EQ(cycled, single);
}

TEST(HilRunCycle, AKilledNodeResumesWithTheNextRunNumber) {
  Rig rig("resume", "first:1");
  rig.start_run(200);
  rig.feed(rig.du_sim_args(200, 20, 201));
  ASSERT_TRUE(rig.wait_slices(9));
  rig.daemon().signal(SIGKILL);
  rig.daemon().wait(10s);
  const auto t0 = std::chrono::steady_clock::now();
  rig.restart();
  nlohmann::json status;
  ASSERT_TRUE(wait_until([&] {
    status = rig.ctl({"status"}, 2s).reply;
    return status.is_object() && status.value("state", "") == "Running";
  }, 10s)) << status.dump(1) << rig.daemon().err();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  EXPECT_EQ(status["run"], 201u);
  // The CLBs still send run 200's number: the resumed run takes their data.
  rig.feed(rig.du_sim_args(200, 20, 202));
  ASSERT_TRUE(rig.wait_slices(9));
  rig.stop_run();
  const auto after = rig.status();
  EXPECT_EQ(after["counters"]["slices_written"], 20u) << after.dump(1);
  rig.quit();
  auto reader = shoredaq::storage::EventStoreReader::open(rig.node().store());
  const auto crashed = reader.run(200);
  ASSERT_TRUE(crashed.has_value());
  EXPECT_EQ(crashed->state, shoredaq::dataflow::RunOutcome::Aborted);
  EXPECT_EQ(crashed->stop_reason, "crash (found at init)");
  const auto resumed = reader.run(201);
  ASSERT_TRUE(resumed.has_value());
  EXPECT_EQ(resumed->start_reason, "resumed after restart");
  EXPECT_EQ(resumed->state, shoredaq::dataflow::RunOutcome::Stopped);
}
