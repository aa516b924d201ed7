#include "shoredaq/firmware/node.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "shoredaq/formats/fb_codec.hpp"
#include "shoredaq/formats/record_stream.hpp"
#include "shoredaq/drivers/du_simulator.hpp"
#include "shoredaq/firmware/node_counters.hpp"
#include "shoredaq/firmware/replay.hpp"
#include "shoredaq/firmware/run_setup.hpp"
#include "shoredaq/firmware/sinks.hpp"
#include "shoredaq/storage/event_store_sink.hpp"

using namespace shoredaq;
using namespace shoredaq::firmware;

namespace {

struct TempDir {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("shoredaq-node-test-" + std::to_string(::getpid()) + "-" +
                                ::testing::UnitTest::GetInstance()->current_test_info()->name());
  TempDir() { std::filesystem::create_directories(path); }
  ~TempDir() { std::filesystem::remove_all(path); }
};

dataflow::ProcessedSlice<filters::FilterResult> slice_with_events(std::uint32_t frame, std::size_t events,
                                                                  std::uint64_t mask) {
  dataflow::ProcessedSlice<filters::FilterResult> p;
  p.info.header.run = 5;
  p.info.header.frame_index = frame;
  p.info.stamps.completed_unix_ns = dataflow::unix_now_ns();
  p.result.summary.header = p.info.header;
  for (std::size_t i = 0; i < events; ++i) {
    dataflow::Event e;
    e.header = p.info.header;
    e.event_number = static_cast<std::uint32_t>(i);
    e.trigger_mask = mask;
    e.triggered.push_back({808447066u, {3, 1000, 25}, mask});
    e.snapshot.push_back({808447066u, {3, 1000, 25}});
    p.result.events.push_back(e);
  }
  p.result.counters.hits_in = 100;
  return p;
}

}  // namespace

TEST(RunWriter, NumbersTriggersAcrossSlicesAndCommits) {
  TempDir tmp;
  storage::EventStoreConfig sc;
  sc.directory = tmp.path / "store";
  sc.sync = storage::SyncMode::NoSync;
  sc.disk_reserve_bytes = 0;
  storage::EventStore store(sc);
  std::vector<WriterSink> sinks;
  sinks.push_back({std::make_unique<storage::EventStoreSink>(store), true});
  dataflow::RunRecord record;
  record.run = 5;
  RunWriter writer(record, std::move(sinks));
  writer.begin_run();
  writer.write(slice_with_events(1, 2, dataflow::trigger_bit(dataflow::kTriggerBit3DMuon)));
  writer.write(slice_with_events(2, 0, 0));
  writer.write(slice_with_events(3, 3, dataflow::trigger_bit(dataflow::kTriggerBit3DShower)));
  writer.write(slice_with_events(4, 4, 0), /*paused=*/true);
  const auto c = writer.counters();
  EXPECT_EQ(c.slices_written, 3u);
  EXPECT_EQ(c.slices_paused, 1u);
  EXPECT_EQ(c.events, 5u);
  EXPECT_EQ(c.events_3d_muon, 2u);
  EXPECT_EQ(c.events_3d_shower, 3u);
  EXPECT_EQ(c.trigger_counter, 5u);
  EXPECT_EQ(c.first_frame, 1u);
  EXPECT_EQ(c.last_frame, 3u);
  EXPECT_EQ(c.filter.hits_in, 400u);
  EXPECT_EQ(writer.commit_latency().snapshot().count, 3u);
  EXPECT_TRUE(c.last_sink_error.empty());

  std::vector<std::uint64_t> counters;
  store.reader().for_each_event(5, 0, 100, [&](const storage::EventKey&, std::span<const std::uint8_t> b) {
    counters.push_back(dataflow::decode_event_fb(b).value.event.trigger_counter);
    return true;
  });
  EXPECT_EQ(counters, (std::vector<std::uint64_t>{0, 1, 2, 3, 4}));

  // The same frame again is refused by the store: counted by cause, alarm raised, nothing lost silently.
  writer.write(slice_with_events(3, 1, 0));
  const auto d = writer.counters();
  dataflow::CounterSet described;
  writer.describe(described);
  EXPECT_EQ(described.value("store.slices_duplicate_key", true), 1u);
  EXPECT_EQ(described.value("store.events_refused", true), 1u);
  EXPECT_FALSE(d.last_sink_error.empty());
  EXPECT_EQ(d.slices_written, 3u);
}

TEST(RunWriter, CounterMapNamesEveryLossCause) {
  // The node's counters before any run: the pipeline's, the writer's and every configured sink's.
  dataflow::CounterSet shape;
  describe_pipeline({}, shape);
  describe_writer({}, shape);
  describe_configured_sinks(NodeConfig{}, shape);
  const auto m = shape.flat();
  for (const char* key : {"drop.pipeline.slices_queue_full", "drop.pipeline.messages_queue_full",
                          "drop.pipeline.slices_processor_error", "drop.pipeline.slices_aborted", "drop.builder.duplicate",
                          "drop.builder.wrong_run", "drop.builder.late_datagram", "drop.ingest.bad_record_length.bytes",
                          "drop.store.slices_cap_reached", "drop.store.slices_disk_reserve", "drop.writer.slices_paused",
                          "drop.alerts.events_hwm", "drop.spool.slices_write_error"}) {
    EXPECT_TRUE(m.contains(key)) << key;
  }
  EXPECT_EQ(text_hash_hex("abc"), text_hash_hex("abc"));
  EXPECT_NE(text_hash_hex("abc"), text_hash_hex("abd"));
  EXPECT_EQ(text_hash_hex("").size(), 16u);
}

TEST(Replay, SimulatedFeedIntoAStore) {
  TempDir tmp;
  const std::string detx = std::string(SHOREDAQ_TESTDATA_DIR) + "/detx/KM3NeT_00000133_20221025.detx";
  auto full = dataflow::Detector::load(detx);
  const int du = full.du_ids().front();
  std::vector<dataflow::Module> kept;
  for (const auto& m : full.modules()) {
    if (m.du == du) kept.push_back(m);
  }
  auto detector = std::make_shared<const dataflow::Detector>(full.id(), kept, full.format_version());
  {
    std::ofstream out(tmp.path / "one.detx");
    out << detector->to_detx();
  }
  drivers::DuSimConfig c;
  c.detector = detector;
  c.run_number = 77;
  c.seed = 4;
  c.start_unix_ns = 1'700'000'000'000'000'000ull;
  drivers::DuSimulator sim(c);
  std::vector<std::vector<std::uint8_t>> datagrams;
  for (int s = 0; s < 6; ++s) {
    for (auto& d : sim.next_slice().datagrams) datagrams.push_back(std::move(d.bytes));
  }
  dataflow::write_dqd_file(tmp.path / "feed.dqd", datagrams);

  ReplayOptions o;
  o.detector_file = tmp.path / "one.detx";
  o.input = tmp.path / "feed.dqd";
  o.store = tmp.path / "store";
  const ReplaySummary s = run_replay(o);
  EXPECT_EQ(s.run, 77u);
  EXPECT_EQ(s.slices(), 6u);
  EXPECT_EQ(s.writer.slices_written, 6u);
  EXPECT_EQ(s.ingest.datagrams, datagrams.size());
  EXPECT_GT(s.writer.filter.hits_in, 0u);
  EXPECT_NE(format_replay_summary(s).find("reduction factor"), std::string::npos);
  auto reader = storage::EventStoreReader::open(o.store);
  auto record = reader.run(77);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->state, dataflow::RunOutcome::Stopped);
  EXPECT_EQ(record->counter("slices_written"), 6u);
  EXPECT_TRUE(reader.verify().ok());
  // A run already in the store is never overwritten.
  EXPECT_THROW(run_replay(o), std::runtime_error);
  // A bad setup is refused with the key.
  std::ofstream(tmp.path / "bad.toml") << "[trigger]\nbogus_key = 1\n";
  o.run_setup = tmp.path / "bad.toml";
  o.store.clear();
  try {
    run_replay(o);
    ADD_FAILURE() << "bad setup accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("bogus_key"), std::string::npos) << e.what();
  }
}
