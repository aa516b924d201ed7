#include "shoredaq/firmware/loss_monitor.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using namespace shoredaq::firmware;
using ::testing::HasSubstr;

namespace {
constexpr std::uint64_t kSecond = 1'000'000'000ull;

LossTotals totals(std::uint64_t offered, std::uint64_t slices, std::map<std::string, std::uint64_t> datagrams_lost = {},
                  std::map<std::string, std::uint64_t> slices_lost = {}, std::map<std::string, std::uint64_t> refusals = {}) {
  return LossTotals{offered, slices, std::move(datagrams_lost), std::move(slices_lost), std::move(refusals), {}};
}
}  // namespace

TEST(LossMonitor, HealthyWithoutLossOrSamples) {
  LossMonitor m(0.01, std::chrono::seconds(10));
  EXPECT_FALSE(m.verdict().losing);
  m.observe(0, totals(0, 0));
  m.observe(kSecond, totals(1000, 10));
  EXPECT_FALSE(m.verdict().losing);
  EXPECT_EQ(m.verdict().datagram_loss_fraction, 0.0);
}

// The run poisoned by one datagram: every real datagram dropped as time_jump, and the node used to
// stay "healthy". Now that is an alarm naming the cause, and it clears once the window is clean.
TEST(LossMonitor, DatagramLossAboveTheThresholdAlarmsAndClears) {
  LossMonitor m(0.01, std::chrono::seconds(10));
  m.observe(0, totals(0, 0));
  m.observe(5 * kSecond, totals(100'000, 50, {{"builder.time_jump", 99'000}}));
  auto v = m.verdict();
  ASSERT_TRUE(v.losing);
  EXPECT_THAT(v.reason, HasSubstr("99% of datagrams"));
  EXPECT_THAT(v.reason, HasSubstr("builder.time_jump 99000"));
  // Loss stops: the alarm holds while the lossy interval is inside the window, then clears.
  m.observe(10 * kSecond, totals(200'000, 100, {{"builder.time_jump", 99'000}}));
  EXPECT_TRUE(m.verdict().losing);
  m.observe(16 * kSecond, totals(300'000, 160, {{"builder.time_jump", 99'000}}));
  m.observe(21 * kSecond, totals(400'000, 210, {{"builder.time_jump", 99'000}}));
  EXPECT_FALSE(m.verdict().losing) << m.verdict().reason;
}

TEST(LossMonitor, SmallLossBelowTheThresholdIsNoAlarm) {
  LossMonitor m(0.01, std::chrono::seconds(10));
  m.observe(0, totals(0, 0));
  m.observe(kSecond, totals(10'000, 10, {{"builder.late_datagram", 50}}));  // 0.5 %
  EXPECT_FALSE(m.verdict().losing);
  EXPECT_DOUBLE_EQ(m.verdict().datagram_loss_fraction, 0.005);
  m.observe(2 * kSecond, totals(20'000, 20, {{"builder.late_datagram", 50}, {"ingest.truncated_header", 200}}));
  EXPECT_TRUE(m.verdict().losing);  // 250 / 20000 = 1.25 %
}

TEST(LossMonitor, AnySinkRefusalAlarmsAndClearsWhenTheSinkRecovers) {
  LossMonitor m(0.5, std::chrono::seconds(3));
  m.observe(0, totals(0, 0));
  m.observe(kSecond, totals(1000, 10, {}, {}, {{"store.slices_disk_reserve", 1}}));
  auto v = m.verdict();
  ASSERT_TRUE(v.losing);
  EXPECT_THAT(v.reason, HasSubstr("sink refusing data"));
  EXPECT_THAT(v.reason, HasSubstr("store.slices_disk_reserve 1"));
  // Disk freed: no more refusals; after a clean window the alarm is gone.
  for (int s = 2; s <= 6; ++s) m.observe(s * kSecond, totals(1000u * s, 10u * s, {}, {}, {{"store.slices_disk_reserve", 1}}));
  EXPECT_FALSE(m.verdict().losing) << m.verdict().reason;
}

TEST(LossMonitor, SliceLossIsJudgedOnSlices) {
  LossMonitor m(0.01, std::chrono::seconds(10));
  m.observe(0, totals(0, 0));
  m.observe(kSecond, totals(1'000'000, 10, {}, {{"pipeline.slices_queue_full", 2}}));
  const auto v = m.verdict();
  ASSERT_TRUE(v.losing);
  EXPECT_THAT(v.reason, HasSubstr("20% of slices"));
  EXPECT_THAT(v.reason, HasSubstr("pipeline.slices_queue_full 2"));
}

// One DOM of many with a bad clock loses too small a share for the fraction rule; it still alarms.
TEST(LossMonitor, ADomThatKeepsSendingBadTimesAlarms) {
  LossMonitor m(0.01, std::chrono::seconds(10), 10);
  LossTotals t0 = totals(0, 0);
  LossTotals t1 = totals(1'000'000, 100, {{"builder.time_jump", 9}});
  t1.implausible_time_by_dom[806472270] = 9;
  m.observe(0, t0);
  m.observe(kSecond, t1);
  EXPECT_FALSE(m.verdict().losing);  // 9 < 10
  LossTotals t2 = totals(2'000'000, 200, {{"builder.time_jump", 30}});
  t2.implausible_time_by_dom[806472270] = 30;
  m.observe(2 * kSecond, t2);
  const auto v = m.verdict();
  ASSERT_TRUE(v.losing);
  EXPECT_THAT(v.reason, HasSubstr("DOM 806472270 keeps sending implausible slice times: 30 datagrams"));
}
