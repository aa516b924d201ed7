#include "shoredaq/filters/summary.hpp"

#include <gtest/gtest.h>

#include "toy_detector.hpp"

using namespace shoredaq;
using namespace shoredaq::filters;

TEST(Summary, RateCodesPerChannel) {
  dataflow::Timeslice ts;
  ts.header.frame_index = 4;
  dataflow::DomFrame f;
  f.dom_id = 8;
  f.status = test_support::complete_status();
  f.status.status |= 1u << 3;  // HRV on channel 3: the status word is carried
  auto add = [&](std::uint8_t ch, int n) {
    for (int i = 0; i < n; ++i) {
      const std::size_t at = f.hits.size();
      f.hits.resize(at + dataflow::kHitBytes);
      dataflow::encode_hit({ch, static_cast<std::uint32_t>(i), 20}, f.hits.data() + at);
    }
  };
  add(0, 700);     // 7 kHz
  add(1, 100);     // 1 kHz: below 2 kHz -> code 0
  add(2, 200000);  // 2 MHz -> 255
  add(31, 50);     // bad channel: not counted
  ts.frames.push_back(f);
  dataflow::DomFrame missing;
  missing.dom_id = 9;
  ts.frames.push_back(missing);

  const auto s = summarise(ts);
  EXPECT_EQ(s.header, ts.header);
  ASSERT_EQ(s.frames.size(), 2u);
  EXPECT_EQ(s.frames[0].dom_id, 8u);
  EXPECT_EQ(s.frames[0].status, f.status);
  EXPECT_EQ(s.frames[0].rate_codes[0], dataflow::encode_rate_hz(7000.0));
  EXPECT_EQ(s.frames[0].rate_codes[0], 46);  // round(ln(3.5) * 255 / ln(1000))
  EXPECT_NEAR(s.frames[0].rate_hz(0), 7000.0, 7000.0 * 0.014);
  EXPECT_EQ(s.frames[0].rate_codes[1], 0);
  EXPECT_EQ(s.frames[0].rate_codes[2], 255);
  EXPECT_EQ(s.frames[0].rate_codes[4], 0);
  EXPECT_EQ(s.frames[1].dom_id, 9u);
  EXPECT_EQ(s.frames[1].rate_codes, (std::array<std::uint8_t, 31>{}));
  const auto counts = count_hits_per_channel(f);
  EXPECT_EQ(counts[0], 700u);
  EXPECT_EQ(counts[30], 0u);
}
