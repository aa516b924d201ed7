#include "shoredaq/filters/frame_check.hpp"

#include <gtest/gtest.h>

#include "toy_detector.hpp"

using namespace shoredaq;
using namespace shoredaq::filters;

namespace {
dataflow::DomFrame frame_with(std::initializer_list<dataflow::Hit> hits) {
  dataflow::DomFrame f;
  f.dom_id = 5;
  f.status = test_support::complete_status();
  for (const auto& h : hits) {
    const std::size_t at = f.hits.size();
    f.hits.resize(at + dataflow::kHitBytes);
    dataflow::encode_hit(h, f.hits.data() + at);
  }
  return f;
}
}  // namespace

TEST(FrameCheck, GoodFrameHasNoDefects) {
  // Sorted per channel, not across channels: fine.
  auto f = frame_with({{0, 100, 20}, {0, 300, 20}, {1, 50, 20}, {1, 50, 21}, {30, 105'000'000, 1}});
  EXPECT_EQ(check_frame(f, 100), 0u);
}

TEST(FrameCheck, EachDefect) {
  EXPECT_EQ(check_frame(frame_with({{31, 100, 20}}), 100), kDefectEpmt);
  EXPECT_EQ(check_frame(frame_with({{255, 100, 20}}), 100), kDefectEpmt);
  EXPECT_EQ(check_frame(frame_with({{3, 105'000'001, 20}}), 100), kDefectEtdc);
  EXPECT_EQ(check_frame(frame_with({{3, 200, 20}, {4, 100, 20}, {3, 199, 20}}), 100), kDefectTime);
  EXPECT_EQ(check_frame(frame_with({{3, 200, 20}, {3, 201, 20}, {3, 202, 20}}), 2), kDefectSize);
  EXPECT_EQ(check_frame(frame_with({{3, 200, 20}, {3, 201, 20}}), 2), 0u);

  auto incomplete = frame_with({{3, 200, 20}});
  incomplete.status.daq = dataflow::FrameStatus::make_daq(2, 2);  // one datagram missing
  EXPECT_EQ(check_frame(incomplete, 100), kDefectEudp);
  auto no_trailer = frame_with({{3, 200, 20}});
  no_trailer.status.fifo = 0;
  EXPECT_EQ(check_frame(no_trailer, 100), kDefectEudp);

  auto torn = frame_with({{3, 200, 20}});
  torn.hits.push_back(7);
  EXPECT_EQ(check_frame(torn, 100) & kDefectSize, kDefectSize);

  EXPECT_EQ(check_frame(frame_with({{31, 200, 20}, {2, 105'000'001, 20}}), 100), kDefectEpmt | kDefectEtdc);
}

TEST(FrameCheck, MissingFrame) {
  dataflow::DomFrame f;
  f.dom_id = 9;
  EXPECT_TRUE(frame_missing(f));
  EXPECT_FALSE(frame_missing(frame_with({})));
}

// DataFilter's single read: the same defects as check_frame and the same counts as the summary's.
TEST(FrameCheck, ScanIsCheckAndCountInOneRead) {
  for (const auto& f : {frame_with({{0, 100, 20}, {0, 300, 20}, {1, 50, 20}, {30, 105'000'000, 1}, {30, 7, 2}}),
                        frame_with({{31, 200, 20}, {255, 1, 20}, {31, 100, 20}, {2, 105'000'001, 20}, {2, 5, 20}}),
                        frame_with({{4, 10, 20}, {4, 10, 20}, {4, 9, 20}})}) {
    const FrameScan scan = scan_frame(f, 4);
    EXPECT_EQ(scan.defects, check_frame(f, 4));
    EXPECT_EQ(scan.channel_counts, count_hits_per_channel(f));
  }
  const FrameScan bad = scan_frame(frame_with({{31, 200, 20}, {255, 1, 20}, {31, 100, 20}, {2, 105'000'001, 20}, {2, 5, 20}}), 4);
  // Channels >= 31 set EPMT only (no time defect from their decreasing times) and are not counted.
  EXPECT_EQ(bad.defects, kDefectEpmt | kDefectEtdc | kDefectTime | kDefectSize);
  EXPECT_EQ(bad.channel_counts[2], 2u);
  std::uint32_t counted = 0;
  for (auto c : bad.channel_counts) counted += c;
  EXPECT_EQ(counted, 2u);
  const FrameScan timeless = scan_frame(frame_with({{31, 200, 20}, {31, 100, 20}, {3, 1, 20}}), 4);
  EXPECT_EQ(timeless.defects, kDefectEpmt);
}
