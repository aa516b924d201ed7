#include "shoredaq/firmware/dom_health.hpp"

#include <gtest/gtest.h>

#include "../../dataflow/tests/toy_detector.hpp"

using namespace shoredaq;
using namespace shoredaq::firmware;

namespace {

// 2 DUs x (base + 3 DOMs); DOM id = 100 * du + floor.
std::shared_ptr<const dataflow::Detector> small_detector() {
  return std::make_shared<const dataflow::Detector>(dataflow::testing::toy_detector(133, {1, 2}, 3));
}

dataflow::SummaryFrame healthy_frame(std::uint32_t dom_id, double rate_hz = 7000) {
  dataflow::SummaryFrame f;
  f.dom_id = dom_id;
  f.status.daq = dataflow::FrameStatus::make_daq(4, 3);
  f.status.status = dataflow::kStatus1WhiteRabbitOk;
  f.status.fifo = dataflow::kStatus2Trailer;
  f.rate_codes.fill(dataflow::encode_rate_hz(rate_hz));
  return f;
}

dataflow::SummarySlice slice_of(std::uint32_t frame_index, std::vector<dataflow::SummaryFrame> frames) {
  dataflow::SummarySlice s;
  s.header.detector_id = 133;
  s.header.frame_index = frame_index;
  s.frames = std::move(frames);
  return s;
}

std::vector<dataflow::SummaryFrame> all_healthy() {
  std::vector<dataflow::SummaryFrame> frames;
  for (std::uint32_t id : {101u, 102u, 103u, 201u, 202u, 203u}) frames.push_back(healthy_frame(id));
  return frames;
}

}  // namespace

TEST(DomHealthMonitor, HealthyDetectorHasRatesPerDuAndNoWorstDoms) {
  DomHealthMonitor monitor(small_detector());
  for (std::uint32_t f = 0; f < 10; ++f) monitor.observe(slice_of(f, all_healthy()));
  const auto dus = monitor.du_rates();
  ASSERT_EQ(dus.size(), 2u);
  const double code_rate = dataflow::decode_rate_code(dataflow::encode_rate_hz(7000));
  for (const auto& du : dus) {
    EXPECT_EQ(du.doms_expected, 3u);
    EXPECT_EQ(du.doms_reporting, 3u);
    EXPECT_EQ(du.doms_incomplete, 0u);
    EXPECT_NEAR(du.rate_hz, 3 * 31 * code_rate, 1e-6);
    EXPECT_NEAR(du.mean_pmt_rate_hz, code_rate, 1e-9);
  }
  EXPECT_TRUE(monitor.worst_doms(5).empty());
  const auto j = monitor.to_json();
  EXPECT_EQ(j["frame_index"], 9);
  EXPECT_EQ(j["slices"], 10);
  EXPECT_EQ(j["dus"].size(), 2u);
  EXPECT_TRUE(j["worst_doms"].empty());
}

TEST(DomHealthMonitor, RanksMissingAboveLossAboveVetoAndDeadPmts) {
  DomHealthMonitor monitor(small_detector());
  for (std::uint32_t f = 0; f < 20; ++f) {
    std::vector<dataflow::SummaryFrame> frames;
    for (auto frame : all_healthy()) {
      if (frame.dom_id == 203) {  // silent DOM: the builder's empty frame, or none at all
        if (f % 2 == 0) {
          dataflow::SummaryFrame empty;
          empty.dom_id = 203;
          frames.push_back(empty);
        }
        continue;
      }
      if (frame.dom_id == 102 && f % 4 == 0) frame.status.daq = dataflow::FrameStatus::make_daq(3, 3);  // lost one
      if (frame.dom_id == 201) frame.status.status |= 1u << 5;  // PMT 5 vetoed
      if (frame.dom_id == 101) frame.rate_codes[7] = 0;          // PMT 7 off
      frames.push_back(frame);
    }
    monitor.observe(slice_of(f, frames));
  }
  const auto worst = monitor.worst_doms(10);
  ASSERT_EQ(worst.size(), 4u);
  EXPECT_EQ(worst[0].dom_id, 203u);
  EXPECT_EQ(worst[0].slices_missing, 20u);
  EXPECT_EQ(worst[1].dom_id, 102u);
  EXPECT_EQ(worst[1].slices_incomplete, 5u);
  EXPECT_EQ(worst[2].dom_id, 201u);
  EXPECT_EQ(worst[2].slices_hrv, 20u);
  EXPECT_EQ(worst[3].dom_id, 101u);
  EXPECT_EQ(worst[3].dead_pmts, 1u);
  for (const auto& w : worst) EXPECT_FALSE(w.problems.empty()) << w.dom_id;
  EXPECT_EQ(worst[0].problems.front(), "missing from 100% of slices");
  EXPECT_EQ(worst[1].problems.front(), "datagrams lost in 25% of its frames");
  EXPECT_EQ(monitor.worst_doms(2).size(), 2u);

  const auto dus = monitor.du_rates();
  EXPECT_EQ(dus[1].doms_reporting, 2u);
  EXPECT_EQ(dus[1].pmts_hrv, 1u);
}

TEST(DomHealthMonitor, RateOutlierAgainstItsDuMedian) {
  DomHealthMonitor monitor(small_detector());
  auto frames = all_healthy();
  frames[1] = healthy_frame(102, 40'000);  // bioluminescence burst on one DOM
  monitor.observe(slice_of(0, frames));
  const auto worst = monitor.worst_doms(5);
  ASSERT_EQ(worst.size(), 1u);
  EXPECT_EQ(worst[0].dom_id, 102u);
  EXPECT_GT(worst[0].rate_vs_du_median, 5.0);
}

TEST(DomHealthMonitor, UnknownAndDuplicateFramesDoNotCorruptTheFigures) {
  DomHealthMonitor monitor(small_detector());
  auto frames = all_healthy();
  frames.push_back(healthy_frame(999));
  frames.push_back(healthy_frame(101));  // duplicate within the slice
  monitor.observe(slice_of(0, frames));
  EXPECT_EQ(monitor.unknown_dom_frames(), 1u);
  EXPECT_EQ(monitor.du_rates()[0].doms_reporting, 3u);
  EXPECT_TRUE(monitor.worst_doms(5).empty());
}

TEST(DomHealthMonitor, WithoutDetectorReportsNothing) {
  DomHealthMonitor monitor(nullptr);
  monitor.observe(slice_of(0, all_healthy()));
  EXPECT_TRUE(monitor.du_rates().empty());
  EXPECT_EQ(monitor.unknown_dom_frames(), 6u);
}
