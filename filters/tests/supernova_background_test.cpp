// Background only (issue 12): a synthetic Poisson background of kept coincidences, 200 DOMs over
// 20 000 slices (33 min of data, a second of CPU). No alert at the default threshold, and the share
// of steps reaching 2, 3 and 4 sigma agrees with what the monitor's own Poisson model (the one
// behind its published false-alarm rate) predicts. The long measurement on simulated DU data is
// tests/bench/bench_supernova_background.cpp.
#include "shoredaq/filters/supernova_background.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace shoredaq::filters;

namespace {

constexpr std::uint32_t kDoms = 200;
constexpr std::uint64_t kT0 = 1'700'000'000ull;

SupernovaSliceFigure background_slice(std::uint32_t frame, double mean_per_dom, std::mt19937_64& rng) {
  SupernovaSliceFigure f;
  f.header.run = 1;
  f.header.frame_index = frame;
  f.header.utc_seconds = static_cast<std::uint32_t>(kT0 + frame / 10);
  f.header.ticks_16ns = (frame % 10) * 6'250'000u;
  std::poisson_distribution<std::uint32_t> coincidences(mean_per_dom);
  std::poisson_distribution<std::uint32_t> hits(700.0);  // ~7 kHz summed: no bioluminescence
  for (std::uint32_t d = 0; d < kDoms; ++d) {
    SupernovaDomFigure dom;
    dom.dom_id = 800 + d;
    dom.hits = hits(rng);
    dom.coincidences = coincidences(rng);
    f.doms.push_back(dom);
  }
  return f;
}

// Feeds `slices` background slices and returns the tally at 2, 3, 4 sigma and the default threshold.
SupernovaBackgroundTally run(const SupernovaSettings& settings, std::uint32_t slices, double mean_per_dom,
                             std::uint64_t seed) {
  SupernovaMonitor monitor(settings);
  SupernovaBackgroundTally tally(settings, {2.0, 3.0, 4.0, settings.alert_threshold_sigma});
  std::mt19937_64 rng(seed);
  for (std::uint32_t frame = 1; frame <= slices; ++frame) tally.add(monitor.observe(background_slice(frame, mean_per_dom, rng)));
  return tally;
}

}  // namespace

TEST(SupernovaBackground, NoAlertAndTheExceedancesMatchTheFalseAlarmModel) {
  const SupernovaSettings settings;  // the defaults: 5.5 sigma, 500 ms window, 10 min baseline
  // 0.01 per DOM and slice: B ~ 10 in the 5-slice window, a regime where the Poisson tail is far
  // from Gaussian, so a Gaussian shortcut anywhere would show.
  const auto tally = run(settings, 20'000, 0.01, 12);
  ASSERT_EQ(tally.steps(), 20'000u - 300u - 4u) << "ready once the 30 s minimum baseline is full";
  EXPECT_EQ(tally.alerts(), 0u);
  EXPECT_LT(tally.max_significance_sigma(), settings.alert_threshold_sigma);
  EXPECT_NEAR(tally.mean_baseline_count(), 10.0, 0.3);
  const std::size_t window = 5;
  for (const auto& row : tally.rows()) {
    SCOPED_TRACE("threshold " + std::to_string(row.threshold_sigma) + " sigma: observed " +
                 std::to_string(row.observed) + ", expected " + std::to_string(row.expected));
    EXPECT_LT(std::abs(row.deviation_sigma(window)), 4.0);
  }
  // Enough exceedances at 2 and 3 sigma for the comparison to mean something.
  EXPECT_GT(tally.rows()[0].expected, 100.0);
  EXPECT_GT(tally.rows()[1].expected, 5.0);
  // The published false-alarm rate is the model's rate at the alert threshold.
  EXPECT_NEAR(tally.mean_published_far_per_day(), tally.rows()[3].expected_per_day(),
              1e-9 * tally.mean_published_far_per_day());
}

TEST(SupernovaBackground, TheComparisonSeesABiasedBackground) {
  // The test above must be able to fail: a feed whose window is 30 % above its baseline (a rate
  // that rose by 30 % one slice ago would look like this for a few steps; here it is every step,
  // by giving the baseline slices a lower rate than the window ones) is told apart.
  SupernovaSettings settings;
  SupernovaMonitor monitor(settings);
  SupernovaBackgroundTally tally(settings, {2.0, 3.0});
  std::mt19937_64 rng(7);
  std::uint32_t frame = 1;
  // Baseline at 0.01, then windows at 0.013 that are never older than the window when judged:
  // alternate a long quiet stretch with 5 hot slices, tallying the step that ends each hot stretch.
  for (int block = 0; block < 400; ++block) {
    for (int i = 0; i < 20; ++i) monitor.observe(background_slice(frame++, 0.01, rng));
    SupernovaStep last;
    for (int i = 0; i < 5; ++i) last = monitor.observe(background_slice(frame++, 0.013, rng));
    tally.add(last);
  }
  EXPECT_GT(tally.rows()[0].deviation_sigma(1), 4.0) << "observed " << tally.rows()[0].observed << ", expected "
                                                      << tally.rows()[0].expected;
}

TEST(SupernovaBackground, DispersionIsOneForPoissonAndTheClusterSizeForClusteredCoincidences) {
  // Poisson background: the baseline's window counts spread as their mean (1 within the ~4 % a
  // 10 min baseline of 5-slice windows allows).
  const SupernovaSettings settings;
  SupernovaMonitor poisson(settings);
  std::mt19937_64 rng(21);
  SupernovaStep step;
  for (std::uint32_t frame = 1; frame <= 6'500; ++frame) step = poisson.observe(background_slice(frame, 0.05, rng));
  ASSERT_TRUE(step.ready);
  EXPECT_NEAR(step.dispersion, 1.0, 0.15);
  RecordProperty("dispersion_poisson", std::to_string(step.dispersion));

  // Every coincidence comes with a partner on the same DOM (pairs): variance / mean = 2.
  SupernovaMonitor pairs(settings);
  for (std::uint32_t frame = 1; frame <= 6'500; ++frame) {
    auto f = background_slice(frame, 0.025, rng);
    for (auto& dom : f.doms) dom.coincidences *= 2;
    step = pairs.observe(f);
  }
  EXPECT_NEAR(step.dispersion, 2.0, 0.3);
  RecordProperty("dispersion_pairs", std::to_string(step.dispersion));

  // A rate that drifts by +-30 % over minutes: the windows spread wider than Poisson even though
  // every slice is Poisson on its own.
  SupernovaMonitor drifting(settings);
  for (std::uint32_t frame = 1; frame <= 6'500; ++frame)
    step = drifting.observe(background_slice(frame, 0.05 * (1.0 + 0.3 * std::sin(frame / 600.0)), rng));
  EXPECT_GT(step.dispersion, 1.3);
  RecordProperty("dispersion_drifting", std::to_string(step.dispersion));
}
