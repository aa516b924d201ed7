// The live run's supernova search: the filters' per-slice figures in, one alert (logged, counted,
// kept for /status) out of an excess, none from a steady background; and its SNEWS heartbeats:
// "ON" at the first slice and then once per period of detector time (slice times, whatever the wall
// clock does), "OFF" once at the end, with the run, effective DOMs and the latest significance in
// meta; none when the period is 0.
#include "shoredaq/firmware/supernova_watch.hpp"

#include <gtest/gtest.h>

using namespace shoredaq;
using shoredaq::firmware::SupernovaWatch;

namespace {

// A slice of `doms` included DOMs with `per_dom` kept coincidences each.
filters::FilterResult slice(std::uint32_t frame, std::uint32_t doms, std::uint32_t per_dom) {
  filters::FilterResult r;
  filters::SupernovaSliceFigure f;
  f.header.run = 5;
  f.header.frame_index = frame;
  f.header.utc_seconds = 1'700'000'000u + frame / 10;
  f.header.ticks_16ns = (frame % 10) * 6'250'000u;
  for (std::uint32_t d = 0; d < doms; ++d) {
    filters::SupernovaDomFigure dom;
    dom.dom_id = 1000 + d;
    dom.hits = 700;
    dom.coincidences = per_dom;
    f.doms.push_back(dom);
  }
  r.supernova = f;
  return r;
}

filters::SupernovaSettings settings() {
  filters::SupernovaSettings s;
  s.baseline_s = 20;
  s.min_baseline_s = 5;
  return s;
}

}  // namespace

TEST(SupernovaWatch, AnExcessGivesOneAlertCountedAndShown) {
  SupernovaWatch watch(settings(), 133, true);
  std::uint32_t frame = 1;
  for (; frame <= 300; ++frame) watch.observe(slice(frame, 100, frame % 2));  // a steady ~50 per slice
  auto before = watch.to_json();
  EXPECT_TRUE(before["step"]["ready"].get<bool>());
  EXPECT_EQ(before["alerts"].size(), 0u);
  std::vector<std::string> messages;
  for (; frame <= 320; ++frame) {
    if (auto m = watch.observe(slice(frame, 100, 2))) messages.push_back(*m);  // 200 per slice: far above
  }
  const auto after = watch.to_json();
  // One SNEWS-format message, for the one alert.
  ASSERT_EQ(messages.size(), 1u);
  const auto m = nlohmann::json::parse(messages[0]);
  EXPECT_EQ(m["detector_name"], "KM3NeT");
  EXPECT_EQ(m["is_test"], true);
  EXPECT_LT(m["p_val"].get<double>(), 1e-7);
  // The excess began with frame 301, which starts at 1 700 000 030.1 s.
  EXPECT_EQ(m["neutrino_time"], "2023-11-14T22:13:50.100000000") << m.dump();
  EXPECT_EQ(m["meta"]["detector_id"], 133);
  EXPECT_EQ(m["meta"]["run"], 5);
  EXPECT_EQ(m["machine_time"].get<std::string>().size(), 29u);
  ASSERT_EQ(after["alerts"].size(), 1u) << after.dump(1);  // the hold-off keeps it to one
  EXPECT_GE(after["alerts"][0]["frame_index"].get<std::uint32_t>(), 301u);
  EXPECT_GT(after["max_significance_sigma"].get<double>(), 5.5);
  EXPECT_EQ(after["alerts"][0]["effective_doms"], 100);
  dataflow::CounterSet counters;
  watch.describe(counters);
  EXPECT_EQ(counters.value("supernova.slices"), 320u);
  EXPECT_EQ(counters.value("supernova.alerts"), 1u);
  EXPECT_GT(counters.value("supernova.alerts_suppressed"), 0u);
}

TEST(SupernovaWatch, ASteadyBackgroundRaisesNothingAndASearchTurnedOffIsSilent) {
  SupernovaWatch watch(settings());
  for (std::uint32_t frame = 1; frame <= 600; ++frame) watch.observe(slice(frame, 100, 1));
  EXPECT_EQ(watch.to_json()["alerts"].size(), 0u);
  filters::FilterResult off;  // the run setup turned the search off: no figure
  SupernovaWatch idle(settings());
  idle.observe(off);
  EXPECT_TRUE(idle.to_json()["step"].is_null());
  dataflow::CounterSet counters;
  idle.describe(counters);
  EXPECT_EQ(counters.value("supernova.slices"), 0u);
}

TEST(SupernovaWatch, TimesAreIsoUtcWithNanoseconds) {
  EXPECT_EQ(shoredaq::firmware::iso_utc_ns(0), "1970-01-01T00:00:00.000000000");
  EXPECT_EQ(shoredaq::firmware::iso_utc_ns(1'700'000'000'123'456'789ull), "2023-11-14T22:13:20.123456789");
}

TEST(SupernovaHeartbeat, OnePerPeriodOfDetectorTimeThenOff) {
  SupernovaWatch watch(settings(), 133, false, 2.0);
  std::vector<std::pair<std::uint32_t, nlohmann::json>> beats;  // frame, message
  EXPECT_FALSE(watch.heartbeat(7).has_value()) << "nothing observed yet";
  for (std::uint32_t frame = 1; frame <= 100; ++frame) {
    watch.observe(slice(frame, 40, frame % 2));
    if (auto b = watch.heartbeat(7)) beats.emplace_back(frame, nlohmann::json::parse(*b));
  }
  // 10 s of slices, one heartbeat per 2 s: frames 1, 21, 41, 61, 81.
  ASSERT_EQ(beats.size(), 5u);
  for (std::size_t i = 0; i < beats.size(); ++i) {
    EXPECT_EQ(beats[i].first, 1 + 20 * i);
    const auto& m = beats[i].second;
    EXPECT_EQ(m["detector_name"], "KM3NeT");
    EXPECT_EQ(m["detector_status"], "ON");
    EXPECT_EQ(m["is_test"], false);
    EXPECT_EQ(m["meta"]["run"], 7);
    EXPECT_EQ(m["meta"]["detector_id"], 133);
    EXPECT_EQ(m["meta"]["effective_doms"], 40);
    EXPECT_EQ(m["meta"]["sequence"], i);
    EXPECT_EQ(m["machine_time"].get<std::string>().size(), 29u);  // ISO 8601 with nanoseconds
  }
  EXPECT_EQ(beats[0].second["meta"]["detector_time"], "2023-11-14T22:13:20.100000000");
  // The first has no baseline yet; by frame 81 the search is ready and reports its significance.
  EXPECT_TRUE(beats[0].second["meta"]["significance_sigma"].is_null());
  EXPECT_TRUE(beats[4].second["meta"]["significance_sigma"].is_number());
  EXPECT_TRUE(beats[4].second["meta"]["false_alarm_rate_per_day"].is_number());

  const auto off = watch.final_heartbeat(7);
  ASSERT_TRUE(off.has_value());
  const auto m = nlohmann::json::parse(*off);
  EXPECT_EQ(m["detector_status"], "OFF");
  EXPECT_EQ(m["meta"]["sequence"], 5);
  EXPECT_FALSE(watch.final_heartbeat(7).has_value()) << "one OFF per run";

  const auto shown = watch.to_json()["heartbeats"];
  EXPECT_EQ(shown["on_sent"], 5);
  EXPECT_EQ(shown["off_sent"], 1);
  EXPECT_EQ(shown["period_s"], 2.0);
  dataflow::CounterSet counters;
  watch.describe(counters);
  EXPECT_EQ(counters.value("supernova.heartbeats"), 6u);
}

TEST(SupernovaHeartbeat, NoneWhenOffOrWithoutSlices) {
  SupernovaWatch off(settings(), 133, true, 0.0);
  for (std::uint32_t frame = 1; frame <= 50; ++frame) {
    off.observe(slice(frame, 10, frame % 2));
    EXPECT_FALSE(off.heartbeat(1).has_value());
  }
  EXPECT_FALSE(off.final_heartbeat(1).has_value());
  SupernovaWatch idle(settings(), 133, true, 1.0);
  EXPECT_FALSE(idle.final_heartbeat(1).has_value()) << "no OFF without an ON";
}
