// The live run's supernova search: the filters' per-slice figures in, one alert (logged, counted,
// kept for /status) out of an excess, none from a steady background.
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
