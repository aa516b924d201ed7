// shore-events plot: figures and data files of a run with known rates, triggers and event sizes.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "../../dataflow/tests/toy_detector.hpp"
#include "shoredaq/formats/detector.hpp"
#include "shoredaq/storage/event_store.hpp"
#include "shore_events_tool.hpp"
#include "storage_test_support.hpp"

using namespace shoredaq;
using namespace shoredaq::storage;
using storage::testing::run_tool;
using storage::testing::TempDir;

namespace {

constexpr std::int32_t kDetector = 21;
constexpr std::uint32_t kRun = 7;
constexpr std::uint32_t kRunStartUtc = 1'700'000'000;
// Slice k starts kSliceOffsetsS[k] seconds into the run.
constexpr std::uint32_t kSliceOffsetsS[] = {0, 6, 12, 24};
constexpr std::uint32_t kChosenDom = 201;  // DU 2 floor 1: rate code 100 and 120 in turn
constexpr std::uint32_t kAbsentDom = 503;  // DU 5 floor 3: in the detector, in no summary
constexpr std::uint32_t kStrangerDom = 999;  // in the summaries, not in the detector

// DUs 2 and 5, floors 1..3 (DOM id = 100 * DU + floor) and a base module each.
dataflow::Detector make_detector() { return dataflow::testing::toy_detector(kDetector, {2, 5}, 3); }

dataflow::SliceHeader header_at(std::uint32_t frame) {
  return dataflow::SliceHeader{kDetector, kRun, frame, kRunStartUtc + kSliceOffsetsS[frame], 0};
}

// Every DOM but kChosenDom has the rate code 40 + floor on all PMTs.
dataflow::SummarySlice summary_of(std::uint32_t frame, const std::vector<std::uint32_t>& doms) {
  dataflow::SummarySlice s;
  s.header = header_at(frame);
  for (const auto dom : doms) {
    dataflow::SummaryFrame f;
    f.dom_id = dom;
    const auto code = dom == kChosenDom ? (frame % 2 == 0 ? 100 : 120) : 40 + dom % 100;
    f.rate_codes.fill(static_cast<std::uint8_t>(code));
    s.frames.push_back(f);
  }
  return s;
}

struct EventSpec {
  std::uint32_t frame;
  std::uint64_t mask;
  std::size_t snapshot_hits;  // a third of them (rounded up) triggered
};

// Frames at 0, 6, 12, 24 s. Triggers in 10 s bins: [0,10) 3DMuon 3, 3DShower 1; [10,20) 3DShower 3;
// [20,30) FactoryLimit 1. Triggered hits: 10 x3, 20 x1, 3 x3; snapshot hits: 30 x3, 60 x1, 9 x3.
const std::vector<EventSpec> kEvents = {
    {0, dataflow::trigger_bit(dataflow::kTriggerBit3DMuon), 30},
    {0, dataflow::trigger_bit(dataflow::kTriggerBit3DMuon), 30},
    {1, dataflow::trigger_bit(dataflow::kTriggerBit3DMuon) | dataflow::trigger_bit(dataflow::kTriggerBit3DShower), 60},
    {2, dataflow::trigger_bit(dataflow::kTriggerBit3DShower), 9},
    {2, dataflow::trigger_bit(dataflow::kTriggerBit3DShower), 9},
    {2, dataflow::trigger_bit(dataflow::kTriggerBit3DShower), 9},
    {3, dataflow::trigger_bit(dataflow::kTriggerBitFactoryLimit), 30},
};

// Run kRun with 4 slices of summaries (the given DOMs) and kEvents; detector_file in the run record.
void fill_store(const std::filesystem::path& dir, const std::vector<std::uint32_t>& doms, const std::string& detector_file) {
  EventStore store(storage::testing::small_store_config(dir, kDetector));
  for (std::uint32_t frame = 0; frame < 4; ++frame) {
    std::vector<dataflow::Event> events;
    for (const auto& spec : kEvents) {
      if (spec.frame != frame) continue;
      auto e = storage::testing::make_event(kDetector, kRun, frame, static_cast<std::uint32_t>(events.size()),
                                            spec.snapshot_hits, spec.mask);
      e.header = header_at(frame);
      events.push_back(std::move(e));
    }
    const auto summary = summary_of(frame, doms);
    ASSERT_TRUE(store.commit_slice(kRun, frame, events, &summary));
  }
  dataflow::RunRecord record = *store.reader().run(kRun);
  record.detector_id = kDetector;
  record.detector_file = detector_file;
  record.state = dataflow::RunOutcome::Stopped;
  ASSERT_TRUE(store.put_run_record(record));
}

// The data lines of a data file (comments left out), split into words.
std::vector<std::vector<std::string>> read_rows(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream words(line);
    rows.emplace_back();
    for (std::string w; words >> w;) rows.back().push_back(w);
  }
  return rows;
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool gnuplot_present() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

double dom_rate_khz(int code) { return dataflow::kPmtsPerDom * dataflow::decode_rate_code(static_cast<std::uint8_t>(code)) / 1e3; }

// Rows of rate_map.dat by DOM id.
std::map<std::uint32_t, std::vector<std::string>> rate_map_rows(const std::filesystem::path& out) {
  std::map<std::uint32_t, std::vector<std::string>> by_dom;
  for (auto& row : read_rows(out / "rate_map.dat")) by_dom[static_cast<std::uint32_t>(std::stoul(row.at(3)))] = row;
  return by_dom;
}

class ShoreEventsPlot : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(detx_path()) << make_detector().to_detx();
  }
  std::filesystem::path detx_path() const { return dir_.path() / "detector.detx"; }
  std::filesystem::path store_path() const { return dir_.path() / "store"; }
  std::filesystem::path out_path() const { return dir_.path() / "plots"; }
  std::string plot_args(std::uint32_t run) const {
    return "--store " + store_path().string() + " plot --run " + std::to_string(run) + " --out " + out_path().string();
  }
  TempDir dir_{"shore-events-plot"};
};

}  // namespace

TEST_F(ShoreEventsPlot, FiguresAndDataOfAKnownRun) {
  if (!gnuplot_present()) GTEST_SKIP() << "gnuplot is not installed (Debian: gnuplot-nox): no figures to check";
  fill_store(store_path(), {201, 202, 203, 501, 502, kStrangerDom}, detx_path().string());
  const auto plotted = run_tool(plot_args(kRun));
  ASSERT_EQ(plotted.exit_code, 0) << plotted.out << plotted.err;
  for (const char* figure : {"rate_map", "du_rates", "trigger_rates", "event_sizes"}) {
    const auto svg = out_path() / (std::string(figure) + ".svg");
    ASSERT_TRUE(std::filesystem::exists(svg)) << svg;
    const std::string text = read_text(svg);
    EXPECT_EQ(text.rfind("<?xml", 0), 0u) << svg;
    EXPECT_NE(text.find("<svg"), std::string::npos) << svg;
    EXPECT_NE(plotted.out.find(svg.string() + ": "), std::string::npos) << plotted.out;  // its summary line
  }
  EXPECT_TRUE(std::filesystem::exists(out_path() / "plot.gp"));
  EXPECT_EQ(std::count(plotted.out.begin(), plotted.out.end(), '\n'), 4);

  // Rate map: the chosen DOM's mean over its 4 slices; the absent DOM without data; the stranger left out.
  const auto map = rate_map_rows(out_path());
  ASSERT_TRUE(map.count(kChosenDom));
  const auto& chosen = map.at(kChosenDom);
  EXPECT_EQ(chosen.at(0), "0");  // DU 2 is the left column
  EXPECT_EQ(chosen.at(1), "2");
  EXPECT_EQ(chosen.at(2), "1");
  EXPECT_NEAR(std::stod(chosen.at(4)), (dom_rate_khz(100) + dom_rate_khz(120)) / 2, 1e-3);
  EXPECT_EQ(chosen.at(5), "4");
  ASSERT_TRUE(map.count(502));
  EXPECT_EQ(map.at(502).at(0), "1");
  EXPECT_NEAR(std::stod(map.at(502).at(4)), dom_rate_khz(42), 1e-3);
  ASSERT_TRUE(map.count(kAbsentDom));
  EXPECT_EQ(map.at(kAbsentDom).at(4), "NaN");
  EXPECT_EQ(map.at(kAbsentDom).at(5), "0");
  EXPECT_FALSE(map.count(kStrangerDom));
  EXPECT_FALSE(map.count(200));  // base modules have no PMTs: not on the map
  EXPECT_NE(plotted.out.find("1 DOMs not in the detector file left out"), std::string::npos) << plotted.out;
  EXPECT_NE(plotted.out.find("geometry: detector file"), std::string::npos) << plotted.out;

  // DU rates: 1 s bins over 24 s; the bin at 6 s holds slice 1 (DOM 201 at code 120).
  const auto du_rates = read_rows(out_path() / "du_rates.dat");
  ASSERT_EQ(du_rates.size(), 25u);
  ASSERT_EQ(du_rates[6].size(), 3u);  // time, DU 2, DU 5
  EXPECT_EQ(du_rates[6][0], "6.500");
  EXPECT_NEAR(std::stod(du_rates[6][1]), dom_rate_khz(120) + dom_rate_khz(42) + dom_rate_khz(43), 1e-2);
  EXPECT_NEAR(std::stod(du_rates[6][2]), dom_rate_khz(41) + dom_rate_khz(42), 1e-2);
  EXPECT_EQ(du_rates[7][1], "NaN");  // no slice between 7 and 8 s

  // Trigger rates: 10 s bins; columns by bit: 3DShower (1), 3DMuon (4), FactoryLimit (31).
  const auto triggers = read_rows(out_path() / "trigger_rates.dat");
  ASSERT_EQ(triggers.size(), 3u);
  const std::vector<std::vector<std::string>> expected_counts = {{"1", "3", "0"}, {"3", "0", "0"}, {"0", "0", "1"}};
  for (std::size_t bin = 0; bin < 3; ++bin) {
    ASSERT_EQ(triggers[bin].size(), 8u);
    EXPECT_EQ(triggers[bin][0], std::to_string(bin * 10) + ".000");
    for (std::size_t k = 0; k < 3; ++k) {
      EXPECT_EQ(triggers[bin][2 + 2 * k], expected_counts[bin][k]) << "bin " << bin << " trigger " << k;
      EXPECT_NEAR(std::stod(triggers[bin][3 + 2 * k]), std::stod(expected_counts[bin][k]) / 10.0, 1e-9);
    }
  }
  const std::string header = read_text(out_path() / "trigger_rates.dat");
  EXPECT_NE(header.find("3DShower_events 3DShower_hz 3DMuon_events 3DMuon_hz FactoryLimit_events"), std::string::npos);

  // Event sizes: bins of 1 hit up to 60.
  const auto sizes = read_rows(out_path() / "event_sizes.dat");
  ASSERT_EQ(sizes.size(), 61u);
  std::map<int, std::pair<int, int>> nonzero;  // hits -> (triggered events, snapshot events)
  for (const auto& row : sizes) {
    ASSERT_EQ(std::stoi(row.at(1)) - std::stoi(row.at(0)), 1);
    if (row.at(2) != "0" || row.at(3) != "0") nonzero[std::stoi(row.at(0))] = {std::stoi(row.at(2)), std::stoi(row.at(3))};
  }
  const std::map<int, std::pair<int, int>> expected_sizes = {{3, {3, 0}},  {9, {0, 3}},  {10, {3, 0}},
                                                             {20, {1, 0}}, {30, {0, 3}}, {60, {0, 1}}};
  EXPECT_EQ(nonzero, expected_sizes);
}

TEST_F(ShoreEventsPlot, StoredOrderWithoutADetectorFile) {
  if (!gnuplot_present()) GTEST_SKIP() << "gnuplot is not installed (Debian: gnuplot-nox): no figures to check";
  // 20 DOMs, stored in descending id order; the run record names a detector file that is gone.
  std::vector<std::uint32_t> doms;
  for (std::uint32_t d = 0; d < 20; ++d) doms.push_back(10'019 - d);
  fill_store(store_path(), doms, (dir_.path() / "gone.detx").string());
  const auto plotted = run_tool(plot_args(kRun));
  ASSERT_EQ(plotted.exit_code, 0) << plotted.out << plotted.err;
  EXPECT_NE(plotted.err.find("gone.detx"), std::string::npos) << plotted.err;
  const auto map = rate_map_rows(out_path());
  ASSERT_EQ(map.size(), 20u);
  EXPECT_EQ(map.at(10'019).at(1), "1");  // first stored: column 1, floor 1
  EXPECT_EQ(map.at(10'019).at(2), "1");
  EXPECT_EQ(map.at(10'002).at(2), "18");  // 18th stored
  EXPECT_EQ(map.at(10'001).at(1), "2");   // 19th: the next column
  EXPECT_EQ(map.at(10'001).at(2), "1");
  EXPECT_NE(plotted.out.find("in the order the summary slices store them"), std::string::npos) << plotted.out;
  EXPECT_TRUE(std::filesystem::exists(out_path() / "rate_map.svg"));
}

TEST_F(ShoreEventsPlot, ExitCodes) {
  fill_store(store_path(), {201, 202}, detx_path().string());
  // No such run: nothing written.
  const auto missing_run = run_tool(plot_args(99));
  EXPECT_EQ(missing_run.exit_code, 1) << missing_run.err;
  EXPECT_NE(missing_run.err.find("run 99 not in the store"), std::string::npos) << missing_run.err;
  EXPECT_FALSE(std::filesystem::exists(out_path()));
  // No store.
  const auto no_store = run_tool("--store " + (dir_.path() / "nothing").string() + " plot --run 7 --out " + out_path().string());
  EXPECT_EQ(no_store.exit_code, 2) << no_store.err;
  // gnuplot missing: the data files and script are written all the same.
  const auto no_gnuplot = run_tool(plot_args(kRun) + " --gnuplot " + (dir_.path() / "no-such-gnuplot").string());
  EXPECT_EQ(no_gnuplot.exit_code, 5);
  EXPECT_NE(no_gnuplot.err.find("gnuplot is missing"), std::string::npos) << no_gnuplot.err;
  EXPECT_TRUE(std::filesystem::exists(out_path() / "rate_map.dat"));
  EXPECT_TRUE(std::filesystem::exists(out_path() / "plot.gp"));
  // gnuplot failing (here a program that exits 1).
  const auto failing = run_tool(plot_args(kRun) + " --gnuplot false");
  EXPECT_EQ(failing.exit_code, 5);
  EXPECT_NE(failing.err.find("exited with status 1"), std::string::npos) << failing.err;
  // gnuplot hanging: killed at the time-out.
  const auto hanging_program = dir_.path() / "hanging-gnuplot";
  std::ofstream(hanging_program) << "#!/bin/sh\nexec sleep 60\n";
  std::filesystem::permissions(hanging_program, std::filesystem::perms::owner_all);
  const auto hanging = run_tool(plot_args(kRun) + " --gnuplot-timeout-s 0.5 --gnuplot " + hanging_program.string());
  EXPECT_EQ(hanging.exit_code, 5);
  EXPECT_NE(hanging.err.find("did not finish within 500 ms: killed"), std::string::npos) << hanging.err;
  // An explicit detector file of another detector.
  const auto ours = make_detector();
  const std::vector<dataflow::Module> modules(ours.modules().begin(), ours.modules().end());
  std::ofstream(dir_.path() / "other.detx") << dataflow::Detector(kDetector + 1, modules).to_detx();
  const auto wrong_detx = run_tool(plot_args(kRun) + " --detx " + (dir_.path() / "other.detx").string());
  EXPECT_EQ(wrong_detx.exit_code, 3);
  EXPECT_NE(wrong_detx.err.find("detector 22"), std::string::npos) << wrong_detx.err;
}

TEST_F(ShoreEventsPlot, ARunWithoutDataGivesPlaceholderFigures) {
  if (!gnuplot_present()) GTEST_SKIP() << "gnuplot is not installed (Debian: gnuplot-nox): no figures to check";
  {
    EventStoreConfig c;
    c.directory = store_path();
    c.disk_reserve_bytes = 0;
    c.sync = SyncMode::NoSync;
    EventStore store(c);
    dataflow::RunRecord record;
    record.run = 8;
    record.detector_id = kDetector;
    ASSERT_TRUE(store.put_run_record(record));
  }
  const auto plotted = run_tool(plot_args(8));
  ASSERT_EQ(plotted.exit_code, 0) << plotted.out << plotted.err;
  for (const char* figure : {"rate_map", "du_rates", "trigger_rates", "event_sizes"}) {
    const auto svg = out_path() / (std::string(figure) + ".svg");
    EXPECT_NE(read_text(svg).find("<svg"), std::string::npos) << svg;
    EXPECT_TRUE(read_rows(out_path() / (std::string(figure) + ".dat")).empty()) << figure;
  }
  EXPECT_NE(plotted.out.find("rate map: no summary slices in run 8"), std::string::npos) << plotted.out;
  EXPECT_NE(plotted.out.find("event sizes: no events in run 8"), std::string::npos) << plotted.out;
  EXPECT_NE(read_text(out_path() / "plot.gp").find("no events stored for run 8"), std::string::npos);
}

TEST_F(ShoreEventsPlot, ADetectorFileWithoutTheRunsDoms) {
  if (!gnuplot_present()) GTEST_SKIP() << "gnuplot is not installed (Debian: gnuplot-nox): no figures to check";
  fill_store(store_path(), {10'000, 10'001}, detx_path().string());
  const auto plotted = run_tool(plot_args(kRun));
  ASSERT_EQ(plotted.exit_code, 0) << plotted.out << plotted.err;
  EXPECT_NE(plotted.out.find("rate map: none of the 2 DOMs of the 4 summary slices is in the detector file"),
            std::string::npos)
      << plotted.out;
  const auto map = rate_map_rows(out_path());
  EXPECT_EQ(map.size(), 6u);  // the detector's 6 optical DOMs, none with data
  for (const auto& [dom, row] : map) EXPECT_EQ(row.at(5), "0") << dom;
  EXPECT_NE(read_text(out_path() / "plot.gp").find("no DOM of the summary slices is in the detector file"), std::string::npos);
  EXPECT_NE(read_text(out_path() / "rate_map.svg").find("<svg"), std::string::npos);
}
