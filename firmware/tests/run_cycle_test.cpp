// Runs that cycle themselves: the writer ends a run at a slice boundary and goes on with the next
// on the very next slice (no frame lost), renumbering frames from 1 and triggers from 0; and the
// operator's last order survives a restart on disk.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "shoredaq/firmware/desired_state.hpp"
#include "shoredaq/firmware/run_writer.hpp"

using namespace shoredaq;
using namespace shoredaq::firmware;

namespace {

// Records what it was given.
class RecordingSink final : public dataflow::Sink {
 public:
  std::string_view name() const noexcept override { return "recording"; }
  void begin_run(const dataflow::RunRecord& run) override { log.push_back("begin " + std::to_string(run.run)); }
  dataflow::SinkWrite write(const dataflow::SliceProducts& p) override {
    slices.push_back(p.header);
    for (const auto& e : p.events) {
      EXPECT_EQ(e.header.run, p.header.run);
      EXPECT_EQ(e.header.frame_index, p.header.frame_index);
      trigger_counters.push_back(e.trigger_counter);
    }
    EXPECT_EQ(p.summary.header.frame_index, p.header.frame_index);
    return {};
  }
  void end_run(dataflow::RunRecord& record) override {
    log.push_back("end " + std::to_string(record.run) + " " + record.stop_reason + " frames " +
                  std::to_string(record.first_frame) + "-" + std::to_string(record.last_frame));
  }
  void counters(dataflow::CounterSet&) const override {}
  std::vector<std::string> log;
  std::vector<dataflow::SliceHeader> slices;
  std::vector<std::uint64_t> trigger_counters;
};

dataflow::ProcessedSlice<filters::FilterResult> slice(std::uint32_t frame) {
  dataflow::ProcessedSlice<filters::FilterResult> p;
  p.info.header.run = 5;
  p.info.header.frame_index = frame;
  p.info.header.utc_seconds = 1'700'000'000 + (frame - 1) / 10;
  p.info.header.ticks_16ns = ((frame - 1) % 10) * 6'250'000;
  p.result.summary.header = p.info.header;
  dataflow::Event e;
  e.header = p.info.header;
  p.result.events.push_back(e);
  return p;
}

}  // namespace

TEST(RunCycle, RunsEndAtSliceBoundariesWithNoFrameLost) {
  auto sink = std::make_unique<RecordingSink>();
  RecordingSink& rec = *sink;
  std::vector<WriterSink> sinks;
  sinks.push_back({std::move(sink), true});
  dataflow::RunRecord first;
  first.run = 5;
  RunWriter writer(first, std::move(sinks));
  std::vector<std::string> ended;
  std::uint32_t next_number = 6;
  RunCycle cycle;
  cycle.max_duration_ns = 500'000'000ull;  // 5 slices
  cycle.next_run = [&](dataflow::RunRecord& e) {
    ended.push_back(std::to_string(e.run) + ":" + e.stop_reason);
    dataflow::RunRecord n;
    n.run = next_number++;
    return n;
  };
  writer.set_cycle(std::move(cycle));
  writer.begin_run();
  for (std::uint32_t f = 1; f <= 12; ++f) writer.write(slice(f));
  EXPECT_EQ(ended, (std::vector<std::string>{"5:max_duration", "6:max_duration"}));
  EXPECT_EQ(rec.log, (std::vector<std::string>{"begin 5", "end 5 max_duration frames 1-5", "begin 6",
                                               "end 6 max_duration frames 1-5", "begin 7"}));
  ASSERT_EQ(rec.slices.size(), 12u);
  for (std::size_t i = 0; i < 12; ++i) {
    EXPECT_EQ(rec.slices[i].run, 5u + i / 5) << i;
    EXPECT_EQ(rec.slices[i].frame_index, 1u + i % 5) << i;
    // Adjacent in time: nothing between the last slice of a run and the first of the next.
    if (i > 0) {
      EXPECT_EQ(rec.slices[i].slice_start_ns(), rec.slices[i - 1].slice_start_ns() + 100000000ull) << i;
    }
  }
  EXPECT_EQ(rec.trigger_counters, (std::vector<std::uint64_t>{0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1}));
  EXPECT_EQ(writer.run(), 7u);
  EXPECT_EQ(writer.counters().runs_cycled, 2u);
  EXPECT_EQ(writer.counters().slices_written, 12u);  // the writer's totals go on across runs
  EXPECT_EQ(writer.counters().first_frame, 1u);      // ... its frame range is the current run's
  EXPECT_EQ(writer.counters().last_frame, 2u);
}

TEST(DesiredState, SurvivesARestartAndADamagedFileIsNamed) {
  const auto dir = std::filesystem::temp_directory_path() / ("shoredaq-desired-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  EXPECT_FALSE(load_desired_state(dir).has_value());
  DesiredState d{true, 43, "/etc/shoredaq/detector.detx", "[trigger]\nsnapshot_window_ns = 1000.0\n", "calibration", 7, 42};
  save_desired_state(dir, d);
  const auto back = load_desired_state(dir);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, d);
  std::ofstream(desired_state_path(dir)) << "{\"running\": tru";
  std::string problem;
  EXPECT_FALSE(load_desired_state(dir, &problem).has_value());
  EXPECT_NE(problem.find("desired_state.json"), std::string::npos) << problem;
  std::filesystem::remove_all(dir);
}
