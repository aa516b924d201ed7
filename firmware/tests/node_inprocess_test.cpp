// A whole run through an in-process Node (no spawned process): configure, start, a simulated
// feed over ipc://, stop with its drain; then the store's contents, the counters and the run
// record; and a sink that fails is isolated, counted and named.
#include <gtest/gtest.h>

#include "node_support.hpp"
#include "../../storage/tests/store_damage.hpp"
#include "shoredaq/storage/event_store.hpp"

using namespace shoredaq;
using shoredaq::test::InProcessNode;

namespace {

// A sink that refuses every slice (as a broken output would): counted, never fatal.
class RefusingSink final : public dataflow::Sink {
 public:
  std::string_view name() const noexcept override { return "refusing"; }
  void begin_run(const dataflow::RunRecord&) override {}
  dataflow::SinkWrite write(const dataflow::SliceProducts&) override {
    std::lock_guard lock(mutex_);
    ++refused_;
    return dataflow::SinkWrite{false, "slices_broken", "the test's sink is broken", 0};
  }
  void end_run(dataflow::RunRecord& record) override { record.counters["refusing.ended"] = 1; }
  void counters(dataflow::CounterSet& out) const override {
    std::lock_guard lock(mutex_);
    out.drop("refusing", "slices_broken", refused_, dataflow::LossUnit::SinkSlices);
  }

 private:
  mutable std::mutex mutex_;
  std::uint64_t refused_ = 0;
};

}  // namespace

TEST(NodeInProcess, AWholeRunIsStoredCountedAndDrained) {
  InProcessNode node("node-inproc", 2);
  node.start_run(11);
  constexpr unsigned kSlices = 20;
  node.feed(11, kSlices, 5);
  ASSERT_TRUE(node.wait_slices(kSlices - 11));  // data-time expiry keeps the last ~10 open until stop
  const auto stop = node.stop_run();
  EXPECT_EQ(stop["state"], "Standby");
  const auto status = node.ask({{"cmd", "status"}});
  const auto& c = status["counters"];
  EXPECT_EQ(c["slices"], kSlices);
  EXPECT_EQ(c["slices_written"], kSlices);
  EXPECT_EQ(c["builder.slices_complete"], kSlices);
  EXPECT_EQ(status["drained"], true);
  for (const auto& [cause, value] : status["drops"].items()) EXPECT_EQ(value, 0u) << cause;
  EXPECT_EQ(status["spool"]["summaries_written"], kSlices);
  EXPECT_GE(status["spool"]["parts_sealed"], 1u);
  EXPECT_FALSE(status.contains("alarm")) << status.dump(1);
  EXPECT_EQ(node.quit(), 0);

  // The store holds what the counters say, and the run record is complete.
  auto reader = storage::EventStoreReader::open(node.store());
  std::uint64_t summaries = 0, events = 0;
  reader.for_each_summary(11, 0, 0xffffffffu, [&](std::uint32_t, std::uint32_t, std::span<const std::uint8_t>) {
    ++summaries;
    return true;
  });
  reader.for_each_event(11, 0, 0xffffffffu, [&](const storage::EventKey&, std::span<const std::uint8_t>) {
    ++events;
    return true;
  });
  EXPECT_EQ(summaries, kSlices);
  EXPECT_EQ(events, c["events"].get<std::uint64_t>());
  const auto record = reader.run(11);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->state, dataflow::RunOutcome::Stopped);
  EXPECT_EQ(record->counter("slices_written"), kSlices);
  EXPECT_EQ(record->counter("stop.drained"), 1u);
  EXPECT_EQ(record->counter("stop.spool_sealed"), 1u);
  EXPECT_EQ(record->first_frame, 1u);
  EXPECT_EQ(record->last_frame, kSlices);
}

TEST(NodeInProcess, AFailingSinkIsCountedAndNamedWhileTheStoreKeepsEverything) {
  firmware::NodeOptions options;
  options.extra_sinks = [] {
    std::vector<firmware::WriterSink> sinks;
    sinks.push_back({std::make_unique<RefusingSink>(), false});
    return sinks;
  };
  InProcessNode node("node-refusing", 1, std::move(options));
  node.start_run(12);
  constexpr unsigned kSlices = 15;
  node.feed(12, kSlices, 6);
  node.stop_run();
  const auto status = node.ask({{"cmd", "status"}});
  EXPECT_EQ(status["counters"]["slices_written"], kSlices);  // the store is untouched by the broken sink
  EXPECT_EQ(status["drops"]["refusing.slices_broken"], kSlices);
  EXPECT_NE(status.value("last_sink_error", "").find("refusing: the test's sink is broken"), std::string::npos) << status.dump(1);
  // Slices a sink refuses are a sink loss: the node raises its alarm.
  EXPECT_NE(status.value("alarm", "").find("refusing.slices_broken"), std::string::npos) << status.dump(1);
  EXPECT_EQ(node.quit(), 0);
  auto reader = storage::EventStoreReader::open(node.store());
  EXPECT_EQ(reader.run(12)->counter("refusing.ended"), 1u);
}

// The background scrub finds a record damaged behind LMDB's back and the node raises its alarm.
TEST(NodeInProcess, TheScrubFindsDamageAndTheNodeAlarms) {
  std::string damaged_key;
  InProcessNode node("node-scrub", 1, {}, "", "scrub_bytes_per_s = 100000000", [&](const std::filesystem::path& state) {
    {
      storage::EventStoreConfig sc;
      sc.directory = state / "store";
      sc.sync = storage::SyncMode::NoSync;
      sc.disk_reserve_bytes = 0;
      storage::EventStore store(sc);
      storage::testing::write_short_run(store, 133, 7);
    }
    const auto records = storage::testing::list_records(state / "store");
    for (const auto& r : records) {
      if (r.database == storage::StoreDatabase::Events) {
        storage::testing::flip_byte(state / "store", r.value_offset + r.value_size / 2, 0x40);
        break;
      }
    }
  });
  InProcessNode::must(node.ask({{"cmd", "init"}}));
  nlohmann::json status;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    status = node.ask({{"cmd", "status"}});
    if (status.contains("alarm")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(status.contains("alarm")) << status.dump(1);
  EXPECT_NE(status["alarm"].get<std::string>().find("store damaged: 1 damaged records found by the scrub"), std::string::npos)
      << status["alarm"];
  EXPECT_GE(status["store"]["scrub"]["damaged_found"].get<std::uint64_t>(), 1u);
  EXPECT_EQ(node.quit(), 0);
}
