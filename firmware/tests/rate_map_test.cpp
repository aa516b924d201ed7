// rate_map_json (the live page's /ratemap.json) and RateHistory (its trigger-rate chart), as pure
// functions of a detector, a summary slice and counter samples.
#include <gtest/gtest.h>

#include "shoredaq/firmware/rate_history.hpp"
#include "shoredaq/firmware/rate_map.hpp"

namespace {

using shoredaq::dataflow::Detector;
using shoredaq::dataflow::FrameStatus;
using shoredaq::dataflow::Module;
using shoredaq::dataflow::SummaryFrame;
using shoredaq::dataflow::SummarySlice;
using shoredaq::firmware::rate_map_json;
using shoredaq::firmware::RateHistory;

Module optical_module(std::uint32_t id, int du, int floor) {
  Module m;
  m.id = id;
  m.du = du;
  m.floor = floor;
  m.pmts.resize(shoredaq::dataflow::kPmtsPerDom);
  return m;
}

// Two DUs of two floors, plus a base module (no PMTs) that the map leaves out.
Detector small_detector() {
  Module base;
  base.id = 90;
  base.du = 1;
  base.floor = 0;
  return Detector(133, {base, optical_module(11, 1, 1), optical_module(12, 1, 2), optical_module(21, 2, 1),
                        optical_module(22, 2, 2)});
}

// A frame with data: every datagram up to the highest arrived, trailer seen, White Rabbit locked.
SummaryFrame good_frame(std::uint32_t dom_id, std::uint8_t rate_code) {
  SummaryFrame f;
  f.dom_id = dom_id;
  f.status.daq = FrameStatus::make_daq(2, 1);
  f.status.status = shoredaq::dataflow::kStatus1WhiteRabbitOk;
  f.status.fifo = shoredaq::dataflow::kStatus2Trailer;
  f.rate_codes.fill(rate_code);
  return f;
}

const nlohmann::json& dom_of(const nlohmann::json& map, std::uint32_t id) {
  for (const auto& d : map["doms"]) {
    if (d["id"] == id) return d;
  }
  throw std::out_of_range("DOM " + std::to_string(id) + " not in the map: " + map.dump());
}

TEST(RateMap, OneEntryPerOpticalModuleWithPositionRatesAndFlags) {
  const Detector detector = small_detector();
  SummarySlice slice;
  slice.header.frame_index = 1234;
  slice.frames.push_back(good_frame(11, 100));
  SummaryFrame incomplete = good_frame(12, 50);
  incomplete.status.fifo = 0;  // no trailer
  slice.frames.push_back(incomplete);
  SummaryFrame vetoed_unlocked = good_frame(21, 200);
  vetoed_unlocked.status.status = (1u << 3) | (1u << 30);  // channels 3 and 30 vetoed, WR bit clear
  slice.frames.push_back(vetoed_unlocked);
  SummaryFrame empty;  // the builder's frame for a DOM that sent nothing
  empty.dom_id = 22;
  slice.frames.push_back(empty);

  const auto map = rate_map_json(detector, &slice, 7);
  EXPECT_EQ(map["run"], 7);
  EXPECT_EQ(map["frame_index"], 1234);
  EXPECT_EQ(map["detector_id"], 133);
  EXPECT_EQ(map["dus"], nlohmann::json({1, 2}));
  EXPECT_EQ(map["max_floor"], 2);
  ASSERT_EQ(map["doms"].size(), 4u) << map.dump();  // the base module has no PMTs

  const auto& good = dom_of(map, 11);
  EXPECT_EQ(good["du"], 1);
  EXPECT_EQ(good["floor"], 1);
  EXPECT_EQ(good["flags"], nlohmann::json::array());
  ASSERT_EQ(good["pmt_khz"].size(), 31u);
  const double channel_hz = shoredaq::dataflow::decode_rate_code(100);
  EXPECT_DOUBLE_EQ(good["pmt_khz"][0].get<double>(), std::round(channel_hz / 100) / 10);
  EXPECT_EQ(good["rate_hz"], std::llround(31 * channel_hz));
  EXPECT_FALSE(good.contains("hrv_mask"));

  EXPECT_EQ(dom_of(map, 12)["flags"], nlohmann::json({"incomplete"}));
  const auto& vetoed = dom_of(map, 21);
  EXPECT_EQ(vetoed["flags"], nlohmann::json({"hrv", "wr_unlocked"}));
  EXPECT_EQ(vetoed["hrv_mask"], (1u << 3) | (1u << 30));

  const auto& silent = dom_of(map, 22);
  EXPECT_EQ(silent["flags"], nlohmann::json({"missing"}));
  EXPECT_EQ(silent["rate_hz"], 0);
  EXPECT_TRUE(silent["pmt_khz"].empty());
}

TEST(RateMap, ADomWithoutAnyFrameIsMissingAndUnknownDomsAreIgnored) {
  SummarySlice slice;
  slice.frames = {good_frame(11, 100), good_frame(12, 100), good_frame(21, 100), good_frame(999, 100)};
  const auto map = rate_map_json(small_detector(), &slice, 1);
  ASSERT_EQ(map["doms"].size(), 4u);
  EXPECT_EQ(dom_of(map, 22)["flags"], nlohmann::json({"missing"}));
  EXPECT_EQ(dom_of(map, 21)["flags"], nlohmann::json::array());
}

TEST(RateMap, BeforeTheFirstSliceNoDomHasRatesOrFlags) {
  const auto map = rate_map_json(small_detector(), nullptr, 3);
  EXPECT_TRUE(map["frame_index"].is_null());
  ASSERT_EQ(map["doms"].size(), 4u);
  for (const auto& d : map["doms"]) {
    EXPECT_TRUE(d["flags"].empty()) << d.dump();
    EXPECT_EQ(d["rate_hz"], 0);
  }
}

TEST(RateHistory, RatesPerIntervalWithinTheWindow) {
  RateHistory history({"3d_muon", "all"}, std::chrono::seconds(20));
  constexpr std::uint64_t s = 1'000'000'000;
  const std::uint64_t t0 = 1'700'000'000 * s;
  history.sample(t0, std::vector<std::uint64_t>{0, 0});  // baseline only
  EXPECT_TRUE(history.to_json()["points"].empty());
  history.sample(t0 + 5 * s, std::vector<std::uint64_t>{10, 25});
  history.sample(t0 + 10 * s, std::vector<std::uint64_t>{20, 30});
  auto j = history.to_json();
  EXPECT_EQ(j["series"], nlohmann::json({"3d_muon", "all"}));
  EXPECT_EQ(j["window_s"], 20);
  ASSERT_EQ(j["points"].size(), 2u) << j.dump();
  EXPECT_DOUBLE_EQ(j["points"][0][0].get<double>(), 1'700'000'005.0);
  EXPECT_DOUBLE_EQ(j["points"][0][1].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(j["points"][0][2].get<double>(), 5.0);
  EXPECT_DOUBLE_EQ(j["points"][1][2].get<double>(), 1.0);
  // Counters that start again from 0 give 0 for that interval, not a huge rate.
  history.sample(t0 + 15 * s, std::vector<std::uint64_t>{5, 5});
  EXPECT_DOUBLE_EQ(history.to_json()["points"][2][1].get<double>(), 0.0);
  // Points older than the window leave.
  history.sample(t0 + 30 * s, std::vector<std::uint64_t>{5, 5});
  j = history.to_json();
  ASSERT_EQ(j["points"].size(), 3u) << j.dump();
  EXPECT_DOUBLE_EQ(j["points"][0][0].get<double>(), 1'700'000'010.0);
  EXPECT_THROW(history.sample(t0 + 35 * s, std::vector<std::uint64_t>{1}), std::invalid_argument);
}

}  // namespace
