// The supernova search: per-DOM coincidences (multiplicity, window edge, calibration, veto, DOM
// exclusion) and the detector-level monitor (alert with hold-off, background-only distribution,
// false-alarm-rate estimate).
#include "shoredaq/filters/supernova.hpp"
#include "shoredaq/filters/supernova_monitor.hpp"
#include "shoredaq/filters/data_filter.hpp"
#include "shoredaq/filters/trigger_parameters.hpp"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "toy_detector.hpp"

using namespace shoredaq;
using namespace shoredaq::filters;
using namespace shoredaq::filters::test_support;

namespace {

using MultiplicityCounts = std::array<std::uint32_t, dataflow::kPmtsPerDom + 1>;

L0Hit hit_at(double time_ns, std::uint8_t channel) {
  return L0Hit{time_ns, static_cast<std::uint32_t>(time_ns), channel, 26};
}

// `pmts` hits on channels first_channel.. at calibrated time t_ns (+ spread_ns per hit).
std::vector<CalHit> coincidence(std::uint32_t dom, double t_ns, int pmts, int first_channel = 0, double spread_ns = 1.0) {
  std::vector<CalHit> hits;
  for (int k = 0; k < pmts; ++k)
    hits.push_back({dom, static_cast<std::uint8_t>(first_channel + k), t_ns + spread_ns * k});
  return hits;
}

void append(std::vector<CalHit>& to, const std::vector<CalHit>& more) { to.insert(to.end(), more.begin(), more.end()); }

// The toy detector with PMT t0s 50 ns apart within each DOM: raw times of one calibrated
// coincidence then spread over hundreds of ns, so only calibrated times can find it.
dataflow::Detector detector_with_spread_t0() {
  const auto toy = make_toy_detector(1, 4);
  std::vector<dataflow::Module> modules(toy.modules().begin(), toy.modules().end());
  for (auto& m : modules)
    for (std::size_t ch = 0; ch < m.pmts.size(); ++ch) m.pmts[ch].t0_ns -= 50.0 * static_cast<double>(ch);
  return dataflow::Detector(toy.id(), std::move(modules));
}

const SupernovaDomFigure& dom_figure(const SupernovaSliceFigure& f, std::uint32_t dom) {
  for (const auto& d : f.doms)
    if (d.dom_id == dom) return d;
  throw std::runtime_error("no such DOM");
}

std::uint32_t raw_time_of(const dataflow::Detector& det, std::uint32_t dom, std::uint8_t channel, double cal_ns) {
  return static_cast<std::uint32_t>(std::lround(cal_ns - det.find(dom)->pmts[channel].t0_ns));
}

// --- Synthetic slice figures for the monitor --------------------------------------------------

dataflow::SliceHeader header_of(std::uint32_t frame_index) {
  dataflow::SliceHeader h;
  h.run = 1;
  h.frame_index = frame_index;
  h.utc_seconds = 1'700'000'000u + frame_index / 10;
  h.ticks_16ns = (frame_index % 10) * (dataflow::kSliceDurationNs / dataflow::kTickNs);
  return h;
}

// Background: `doms` DOMs, each with Poisson(mean_per_dom) kept coincidences and ~7 kHz x 31 hits;
// each DOM missing with probability p_missing (the effective number of DOMs varies).
struct Background {
  int doms = 200;
  double mean_per_dom = 0.01;
  double p_missing = 0.0;
  std::mt19937_64 rng{12345};

  SupernovaSliceFigure next(std::uint32_t frame_index, double extra_per_dom = 0.0) {
    SupernovaSliceFigure f;
    f.header = header_of(frame_index);
    std::poisson_distribution<std::uint32_t> counts(mean_per_dom + extra_per_dom);
    std::poisson_distribution<std::uint32_t> hits(21'700.0);
    std::bernoulli_distribution missing(p_missing);
    for (int d = 0; d < doms; ++d) {
      SupernovaDomFigure dom;
      dom.dom_id = 1000 + static_cast<std::uint32_t>(d);
      if (p_missing > 0 && missing(rng)) {
        dom.state = SupernovaDomState::Missing;
      } else {
        dom.hits = hits(rng);
        dom.coincidences = counts(rng);
      }
      f.doms.push_back(dom);
    }
    return f;
  }
};

// The smallest count whose on/off (binomial) tail is <= alpha given the step's totals, and that tail.
double tail_at_level(const SupernovaStep& step, double alpha) {
  const std::uint64_t total = step.window_count + step.baseline_coincidences;
  std::uint64_t n = 0;
  while (binomial_upper_tail(n, total, step.window_share) > alpha) ++n;
  return binomial_upper_tail(n, total, step.window_share);
}

}  // namespace

// --- Coincidences -------------------------------------------------------------------------------

TEST(SupernovaCoincidences, MultiplicityIsDistinctPmtsOfHandMadeHits) {
  const SupernovaSettings s;  // band 7..11
  SupernovaDomFigure fig;
  fig.dom_id = 1;
  MultiplicityCounts m{};
  // 8 hits on 7 distinct PMTs (channel 3 twice) -> multiplicity 7; a 3-fold; a lone hit; a 12-fold
  // (above the band); a 2-fold.
  std::vector<L0Hit> hits;
  for (std::uint8_t ch : {0, 1, 2, 3, 3, 4, 5, 6}) hits.push_back(hit_at(1000.0 + 0.5 * ch, ch));
  hits.push_back(hit_at(2000.0, 9));
  hits.push_back(hit_at(2003.0, 10));
  hits.push_back(hit_at(2006.0, 11));
  hits.push_back(hit_at(3000.0, 4));
  for (std::uint8_t ch = 0; ch < 12; ++ch) hits.push_back(hit_at(4000.0 + 0.25 * ch, ch));
  hits.push_back(hit_at(5000.0, 1));
  hits.push_back(hit_at(5009.0, 30));
  std::stable_sort(hits.begin(), hits.end(), [](const L0Hit& a, const L0Hit& b) { return a.time_ns < b.time_ns; });
  count_supernova_coincidences(hits, s, SupernovaVeto{}, fig, m);
  EXPECT_EQ(fig.coincidences, 1u);
  EXPECT_EQ(fig.vetoed, 0u);
  MultiplicityCounts expected{};
  expected[7] = 1;
  expected[3] = 1;
  expected[12] = 1;
  expected[2] = 1;
  EXPECT_EQ(m, expected);

  // The ORCA-like band 6..10 keeps the 7-fold only too; a 2..31 band keeps all four.
  SupernovaSettings wide;
  wide.min_multiplicity = 2;
  wide.max_multiplicity = 31;
  SupernovaDomFigure all;
  count_supernova_coincidences(hits, wide, SupernovaVeto{}, all, m);
  EXPECT_EQ(all.coincidences, 4u);
}

TEST(SupernovaCoincidences, WindowEdgeIsInclusiveFromTheFirstHit) {
  const SupernovaSettings s;  // 10 ns, band 7..11
  MultiplicityCounts m{};
  auto seven_with_last_at = [&](double last_offset_ns) {
    std::vector<L0Hit> hits;
    for (std::uint8_t ch = 0; ch < 6; ++ch) hits.push_back(hit_at(100.0 + ch, ch));
    hits.push_back(hit_at(100.0 + last_offset_ns, 20));
    SupernovaDomFigure fig;
    count_supernova_coincidences(hits, s, SupernovaVeto{}, fig, m);
    return fig.coincidences;
  };
  EXPECT_EQ(seven_with_last_at(10.0), 1u);
  EXPECT_EQ(seven_with_last_at(10.001), 0u);
  // Measured from the first hit, not chained: hits 6 ns apart span 36 ns, no 7-fold.
  std::vector<L0Hit> chain;
  for (std::uint8_t ch = 0; ch < 7; ++ch) chain.push_back(hit_at(100.0 + 6.0 * ch, ch));
  SupernovaDomFigure fig;
  count_supernova_coincidences(chain, s, SupernovaVeto{}, fig, m);
  EXPECT_EQ(fig.coincidences, 0u);
}

TEST(SupernovaCoincidences, UsesCalibratedTimesFromTheDetector) {
  const auto det = detector_with_spread_t0();
  const std::uint32_t dom = toy_dom_id(1, 2);
  // 8 PMTs within 3.5 ns calibrated; raw times spread over 350 ns.
  const auto slice = make_slice(det, coincidence(dom, 50'000.0, 8, 0, 0.5), 3);
  const SupernovaCoincidences sn(det, SupernovaSettings{});
  const auto fig = sn.process(slice, {});
  EXPECT_EQ(fig.header, slice.header);
  EXPECT_EQ(fig.doms.size(), 4u);
  EXPECT_EQ(dom_figure(fig, dom).coincidences, 1u);
  EXPECT_EQ(dom_figure(fig, dom).hits, 8u);
  EXPECT_EQ(fig.multiplicity_counts[8], 1u);
  EXPECT_EQ(fig.coincidences(), 1u);
  EXPECT_EQ(fig.included_doms(), 4u);
}

TEST(SupernovaCoincidences, TriggeredHitsVetoTheirCoincidence) {
  const auto det = detector_with_spread_t0();
  const std::uint32_t dom_a = toy_dom_id(1, 1), dom_b = toy_dom_id(1, 3);
  std::vector<CalHit> hits = coincidence(dom_a, 10'000.0, 8);
  append(hits, coincidence(dom_a, 90'000.0, 8));
  append(hits, coincidence(dom_b, 50'000.0, 8));  // alone in time: the correlated-DOM veto keeps it
  const auto slice = make_slice(det, hits, 5);
  // One event whose triggered hits include one hit (channel 4) of dom_a's first coincidence, and a
  // hit of dom_b at a time with no coincidence.
  dataflow::Event event;
  event.triggered.push_back({dom_a, {4, raw_time_of(det, dom_a, 4, 10'004.0), 26}, 16});
  event.triggered.push_back({dom_b, {4, raw_time_of(det, dom_b, 4, 70'000.0), 26}, 16});
  const std::vector<dataflow::Event> events{event};
  const SupernovaCoincidences sn(det, SupernovaSettings{});
  const auto fig = sn.process(slice, events);
  EXPECT_EQ(dom_figure(fig, dom_a).vetoed, 1u);
  EXPECT_EQ(dom_figure(fig, dom_a).coincidences, 1u);
  EXPECT_EQ(dom_figure(fig, dom_b).vetoed, 0u);
  EXPECT_EQ(dom_figure(fig, dom_b).coincidences, 1u);
  EXPECT_EQ(fig.coincidences(), 2u);
  // Without the event both of dom_a's count.
  EXPECT_EQ(dom_figure(sn.process(slice, {}), dom_a).coincidences, 2u);
}

// Coincidences of several DOMs within the window are muon-like: each in-band one is left out as
// correlated, whatever the partner's multiplicity (in the band or above it); lone ones are kept.
TEST(SupernovaCoincidences, CorrelatedDomsVetoEachOtherAndLoneCoincidencesAreKept) {
  const auto det = detector_with_spread_t0();
  const std::uint32_t d1 = toy_dom_id(1, 1), d2 = toy_dom_id(1, 2), d3 = toy_dom_id(1, 3), d4 = toy_dom_id(1, 4);
  std::vector<CalHit> hits = coincidence(d1, 10'000.0, 8);
  append(hits, coincidence(d2, 10'400.0, 9));         // 400 ns after d1's: both correlated
  append(hits, coincidence(d3, 30'000.0, 8));
  append(hits, coincidence(d4, 30'900.0, 14, 0, 0.5));  // above the band, 900 ns later: d3's is vetoed
  append(hits, coincidence(d1, 60'000.0, 8));         // 2 us from the next: both kept
  append(hits, coincidence(d2, 62'000.0, 7));
  const auto slice = make_slice(det, hits, 6);
  const auto fig = SupernovaCoincidences(det, SupernovaSettings{}).process(slice, {});
  EXPECT_EQ(dom_figure(fig, d1).coincidences, 1u);
  EXPECT_EQ(dom_figure(fig, d1).correlated, 1u);
  EXPECT_EQ(dom_figure(fig, d2).coincidences, 1u);
  EXPECT_EQ(dom_figure(fig, d2).correlated, 1u);
  EXPECT_EQ(dom_figure(fig, d3).coincidences, 0u);
  EXPECT_EQ(dom_figure(fig, d3).correlated, 1u);
  EXPECT_EQ(dom_figure(fig, d4).coincidences + dom_figure(fig, d4).correlated, 0u);
  EXPECT_EQ(fig.multiplicity_counts[14], 1u);
  EXPECT_EQ(fig.coincidences(), 2u);

  SupernovaSettings off;
  off.correlated_veto_window_ns = 0;
  const auto all = SupernovaCoincidences(det, off).process(slice, {});
  EXPECT_EQ(all.coincidences(), 5u);
  for (const auto& d : all.doms) EXPECT_EQ(d.correlated, 0u);
}

TEST(SupernovaCoincidences, CorrelatedVetoWindowEdgeIsInclusive) {
  SupernovaSliceFigure fig;
  fig.doms.resize(3);
  for (auto& d : fig.doms) d.coincidences = 1;
  SupernovaSettings s;
  s.correlated_veto_window_ns = 1000.0;
  // Kept ones at 0 and 1000.0 (exactly the window apart: both vetoed) and at 3000.5; a not-kept
  // (triggered) one at 2000.0 would be a partner too, but is 1000.5 before the last: it stays.
  std::vector<SupernovaCoincidenceTime> times{{3000.5, 2, true}, {1000.0, 1, true}, {0.0, 0, true}, {2000.0, 1, false}};
  veto_correlated_supernova_coincidences(times, s, fig);
  EXPECT_EQ(fig.doms[0].correlated, 1u);
  EXPECT_EQ(fig.doms[1].correlated, 1u);
  EXPECT_EQ(fig.doms[2].correlated, 0u);
  EXPECT_EQ(fig.doms[2].coincidences, 1u);
  EXPECT_EQ(fig.coincidences(), 1u);
}

TEST(SupernovaCoincidences, ExcludedDomsAreReportedByCauseAndNotCounted) {
  const auto det = detector_with_spread_t0();
  std::vector<CalHit> hits;
  for (int floor = 1; floor <= 4; ++floor) append(hits, coincidence(toy_dom_id(1, floor), 20'000.0, 8));
  auto slice = make_slice(det, hits, 9);
  ASSERT_EQ(slice.frames.size(), 4u);
  slice.frames[0].hits.clear();  // missing: the builder's empty frame
  slice.frames[0].status = {};
  slice.frames[1].status.fifo = 0;  // trailer never came: incomplete
  slice.frames[2].status.status |= 1u << 5;  // CLB high-rate veto on PMT 5
  const SupernovaCoincidences sn(det, SupernovaSettings{});
  const auto fig = sn.process(slice, {});
  EXPECT_EQ(fig.doms[0].state, SupernovaDomState::Missing);
  EXPECT_EQ(fig.doms[1].state, SupernovaDomState::Incomplete);
  EXPECT_EQ(fig.doms[2].state, SupernovaDomState::HighRate);
  EXPECT_EQ(fig.doms[3].state, SupernovaDomState::Included);
  EXPECT_EQ(fig.included_doms(), 1u);
  EXPECT_EQ(fig.coincidences(), 1u);
  EXPECT_EQ(fig.multiplicity_counts[8], 1u);  // the spectrum is of included DOMs only

  // A PMT above the filter's high-rate threshold (here 1 kHz = 100 hits per slice) excludes its DOM.
  std::vector<CalHit> busy = coincidence(toy_dom_id(1, 4), 20'000.0, 8);
  for (int k = 0; k < 150; ++k) busy.push_back({toy_dom_id(1, 4), 30, 100'000.0 + 1000.0 * k});
  const SupernovaCoincidences strict(det, SupernovaSettings{}, 1000.0);
  EXPECT_EQ(dom_figure(strict.process(make_slice(det, busy, 10), {}), toy_dom_id(1, 4)).state, SupernovaDomState::HighRate);
}

TEST(SupernovaMonitor, BioluminescenceBurstDomIsLeftOutAndReported) {
  SupernovaSettings s;
  s.min_baseline_s = 1.0;
  SupernovaMonitor monitor(s);
  Background bg;
  bg.doms = 20;
  std::uint32_t frame = 0;
  for (; frame < 50; ++frame) EXPECT_TRUE(monitor.observe(bg.next(frame)).burst_dom_ids.empty());
  auto fig = bg.next(frame++);
  fig.doms[7].hits *= 10;
  fig.doms[7].coincidences = 1000;  // would be a huge excess were it counted
  const auto step = monitor.observe(fig);
  EXPECT_EQ(step.burst_dom_ids, std::vector<std::uint32_t>{fig.doms[7].dom_id});
  EXPECT_EQ(step.doms_burst, 1u);
  EXPECT_EQ(step.effective_doms, 19u);
  EXPECT_LT(step.slice_count, 1000u);
  EXPECT_FALSE(step.alert);
  EXPECT_EQ(monitor.counters().dom_slices_burst, 1u);
}

// --- Monitor --------------------------------------------------------------------------------------

TEST(SupernovaMonitor, InjectedExcessRaisesOneAlertPerHoldOff) {
  SupernovaSettings s;  // threshold 5.5 sigma, hold-off 60 s, window 500 ms, baseline >= 30 s
  SupernovaMonitor monitor(s);
  EXPECT_EQ(monitor.window_slices(), 5u);
  EXPECT_EQ(monitor.baseline_slices(), 6000u);
  Background bg;  // 200 DOMs x 0.01 per slice: B ~ 10 per window
  std::uint32_t frame = 0;
  std::vector<SupernovaStep> alerts;
  auto run = [&](int slices, double extra_per_dom) {
    for (int k = 0; k < slices; ++k) {
      auto step = monitor.observe(bg.next(frame++, extra_per_dom));
      if (step.alert) alerts.push_back(step);
    }
  };
  run(1000, 0.0);
  EXPECT_TRUE(alerts.empty());
  // A 3 s burst: +0.05 per DOM and slice (10 extra per slice over ~2 of background).
  const std::uint32_t burst_frame = frame;
  run(30, 0.05);
  run(500, 0.0);  // still inside the 60 s hold-off
  ASSERT_EQ(alerts.size(), 1u);
  const auto& alert = *alerts[0].alert;
  EXPECT_GE(alert.frame_index, burst_frame);
  EXPECT_LT(alert.frame_index, burst_frame + 5);  // within the window's length of the burst start
  // The excess starts within 200 ms of the burst's first slice (SNEWS asks for 0.5 s).
  const double start_error_ns = static_cast<double>(alert.neutrino_time_ns) - static_cast<double>(header_of(burst_frame).slice_start_ns());
  EXPECT_LE(std::abs(start_error_ns), 2e8);
  EXPECT_GE(alert.significance_sigma, 5.5);
  EXPECT_GT(alert.window_count, alert.baseline_count);
  EXPECT_GT(alert.false_alarm_rate_per_day, 0.0);
  EXPECT_EQ(alert.effective_doms, 200u);
  EXPECT_GT(monitor.counters().alerts_suppressed, 0u);
  // After the hold-off a second burst raises a second alert.
  run(200, 0.0);
  run(30, 0.05);
  EXPECT_EQ(alerts.size(), 2u);
  EXPECT_EQ(monitor.counters().alerts, alerts.size());
}

TEST(SupernovaMonitor, BackgroundOnlyNoAlertAndPoissonDistribution) {
  SupernovaMonitor monitor(SupernovaSettings{});
  Background bg;
  bg.p_missing = 0.1;  // the effective number of DOMs varies slice to slice
  constexpr int kSlices = 12'000;
  std::uint64_t ready = 0, above_10 = 0, above_1 = 0;
  double expected_10 = 0, expected_1 = 0, sum_n = 0, sum_b = 0, sum_sq = 0;
  for (int k = 0; k < kSlices; ++k) {
    const auto step = monitor.observe(bg.next(static_cast<std::uint32_t>(k)));
    EXPECT_FALSE(step.alert) << "frame " << k << " sigma " << step.significance_sigma;
    if (!step.ready) continue;
    ++ready;
    const double n = static_cast<double>(step.window_count);
    sum_n += n;
    sum_b += step.baseline_count;
    sum_sq += (n - step.baseline_count) * (n - step.baseline_count);
    above_10 += step.p_value <= 0.1;
    above_1 += step.p_value <= 0.01;
    expected_10 += tail_at_level(step, 0.1);
    expected_1 += tail_at_level(step, 0.01);
  }
  EXPECT_EQ(monitor.counters().alerts, 0u);
  ASSERT_GT(ready, 11'000u);
  const double mean_b = sum_b / static_cast<double>(ready);
  EXPECT_NEAR(mean_b, 200 * 0.9 * 0.01 * 5, 0.5);
  // N is Poisson(B): its mean and variance are B (5-slice windows overlap: ~ready/5 independent).
  EXPECT_NEAR(sum_n / sum_b, 1.0, 0.03);
  EXPECT_NEAR(sum_sq / static_cast<double>(ready) / mean_b, 1.0, 0.1);
  // The p-value's tail fractions are the Poisson tails at each level (discrete, so below alpha).
  auto tolerance = [](double expected) { return 4.0 * std::sqrt(3.0 * expected) + 5.0; };
  EXPECT_NEAR(static_cast<double>(above_10), expected_10, tolerance(expected_10));
  EXPECT_NEAR(static_cast<double>(above_1), expected_1, tolerance(expected_1));
  EXPECT_GT(expected_1, 20.0);
  // The figures, for the record (--gtest_output=xml).
  RecordProperty("ready_steps", std::to_string(ready));
  RecordProperty("mean_baseline", std::to_string(mean_b));
  RecordProperty("variance_over_mean", std::to_string(sum_sq / static_cast<double>(ready) / mean_b));
  RecordProperty("p_le_0_1_observed_expected", std::to_string(above_10) + "/" + std::to_string(expected_10));
  RecordProperty("p_le_0_01_observed_expected", std::to_string(above_1) + "/" + std::to_string(expected_1));
}

TEST(SupernovaMonitor, FalseAlarmRateEstimateIsTheOnOffTailPerStepTimesStepsPerDay) {
  SupernovaSettings s;
  s.min_baseline_s = 30.0;
  SupernovaMonitor monitor(s);
  Background bg;
  std::uint32_t frame = 0;
  SupernovaStep step;
  while (!step.ready) step = monitor.observe(bg.next(frame++));
  const std::uint64_t total = step.window_count + step.baseline_coincidences;
  const double share = step.window_share;
  EXPECT_NEAR(share, 5.0 / 305.0, 0.002);  // 5 window slices against the 30 s minimum baseline
  const std::uint64_t n = monitor.alert_count_threshold(total, share);
  const double p_threshold = p_value_of_sigma(5.5);
  EXPECT_LE(binomial_upper_tail(n, total, share), p_threshold);
  EXPECT_GT(binomial_upper_tail(n - 1, total, share), p_threshold);  // the smallest such count
  EXPECT_DOUBLE_EQ(step.false_alarm_rate_per_day, binomial_upper_tail(n, total, share) * 864'000.0);
  EXPECT_LE(step.false_alarm_rate_per_day, p_threshold * 864'000.0);

  // Measured: with a low threshold and no hold-off, every step above it alerts; the alert count
  // over a background-only run matches the summed per-step estimates.
  SupernovaSettings low;
  low.alert_threshold_sigma = 2.0;
  low.hold_off_s = 0.0;
  SupernovaMonitor counting(low);
  Background bg2;
  bg2.rng.seed(777);
  double expected_alerts = 0;
  for (std::uint32_t k = 0; k < 10'000; ++k) {
    const auto st = counting.observe(bg2.next(k));
    if (st.ready) expected_alerts += st.false_alarm_rate_per_day / kSupernovaStepsPerDay;
  }
  const double alerts = static_cast<double>(counting.counters().alerts);
  EXPECT_GT(expected_alerts, 50.0);
  EXPECT_NEAR(alerts, expected_alerts, 4.0 * std::sqrt(3.0 * expected_alerts));
  RecordProperty("far_per_day_at_5_5_sigma", std::to_string(step.false_alarm_rate_per_day));
  RecordProperty("alerts_at_2_sigma_observed_expected", std::to_string(alerts) + "/" + std::to_string(expected_alerts));
}

TEST(SupernovaMonitor, BinomialAndGaussianTails) {
  // Direct sums of the binomial pmf.
  for (std::uint64_t n : {1u, 5u, 40u, 300u}) {
    for (double p : {0.001, 0.0163, 0.3, 0.9}) {
      for (std::uint64_t k : {0u, 1u, 3u, 10u, 30u}) {
        double tail = 0;
        for (std::uint64_t j = k; j <= n; ++j) {
          const double jd = static_cast<double>(j), nd = static_cast<double>(n);
          tail += std::exp(std::lgamma(nd + 1) - std::lgamma(jd + 1) - std::lgamma(nd - jd + 1) + jd * std::log(p) +
                           (nd - jd) * std::log1p(-p));
        }
        EXPECT_NEAR(binomial_upper_tail(k, n, p), k == 0 ? 1.0 : tail, 1e-12) << n << " " << p << " " << k;
      }
    }
  }
  // Far tail, relative precision (no 1 - x): P(X >= 40 | 400, 0.0125), summed term by term.
  double far_tail = 0;
  for (int j = 40; j <= 400; ++j)
    far_tail += std::exp(std::lgamma(401.0) - std::lgamma(j + 1.0) - std::lgamma(401.0 - j) + j * std::log(0.0125) +
                         (400 - j) * std::log1p(-0.0125));
  EXPECT_NEAR(binomial_upper_tail(40, 400, 0.0125) / far_tail, 1.0, 1e-9);
  EXPECT_LT(far_tail, 1e-20);
  EXPECT_EQ(binomial_upper_tail(6, 5, 0.5), 0.0);
  EXPECT_EQ(binomial_upper_tail(3, 5, 0.0), 0.0);
  for (double sigma : {-3.0, 0.0, 1.0, 5.5, 20.0}) EXPECT_NEAR(sigma_of_p_value(p_value_of_sigma(sigma)), sigma, 1e-9);
  EXPECT_NEAR(p_value_of_sigma(5.0), 2.866515718791939e-07, 1e-15);
  EXPECT_EQ(sigma_of_p_value(0.0), 37.0);
}

TEST(SupernovaMonitor, GapsCountAsSlicesWithoutDomsAndOldSlicesAreIgnored) {
  SupernovaMonitor monitor(SupernovaSettings{});
  Background bg;
  monitor.observe(bg.next(10));
  const auto after_gap = monitor.observe(bg.next(13));
  EXPECT_EQ(monitor.counters().slices_missing, 2u);
  EXPECT_FALSE(after_gap.out_of_order);
  const auto old = monitor.observe(bg.next(12));
  EXPECT_TRUE(old.out_of_order);
  EXPECT_EQ(monitor.counters().slices_out_of_order, 1u);
  // The window holds 10, the two gap slices and 13: only two slices of DOMs.
  EXPECT_EQ(monitor.observe(bg.next(14)).window_dom_slices, 3u * 200u);
}

// --- In DataFilter and the run setup --------------------------------------------------------------

TEST(SupernovaCoincidences, DataFilterGivesTheStandaloneFigureWithItsEventsAsVeto) {
  const auto det = make_toy_detector();
  const dataflow::Vec3 point{20, 20, 80}, direction{0.6, 0.0, -0.8};
  auto hits = muon_hits(det, point, direction, 5000.0, 22.0);
  ASSERT_FALSE(hits.empty());
  // Six more PMTs around the first muon DOM's L1: an 8-fold coincidence holding triggered hits.
  const CalHit first = hits[0];
  for (std::uint8_t ch : {0, 1, 2, 4, 5, 6}) hits.push_back({first.dom_id, ch, first.time_ns + 0.4 * ch});
  // A background 8-fold far from the muon in time on another DOM, and a pair of 8-folds on two more
  // DOMs 500 ns apart (left out as correlated, the same way in both).
  append(hits, coincidence(toy_dom_id(4, 18), 60'000'000.0, 8));
  append(hits, coincidence(toy_dom_id(2, 5), 30'000'000.0, 8));
  append(hits, coincidence(toy_dom_id(3, 7), 30'000'500.0, 8));
  auto slice = make_slice(det, hits, 40);
  slice.frames[3].status.fifo = 0;  // one incomplete DOM
  const DataFilter filter(det, TriggerParameters{});
  const auto r = filter.process(slice);
  ASSERT_FALSE(r.events.empty());
  ASSERT_TRUE(r.supernova);
  const SupernovaCoincidences sn(det, SupernovaSettings{});
  EXPECT_EQ(*r.supernova, sn.process(slice, r.events));
  EXPECT_EQ(dom_figure(*r.supernova, first.dom_id).vetoed, 1u);
  EXPECT_EQ(dom_figure(*r.supernova, toy_dom_id(4, 18)).coincidences, 1u);
  EXPECT_EQ(dom_figure(*r.supernova, toy_dom_id(2, 5)).correlated, 1u);
  EXPECT_EQ(dom_figure(*r.supernova, toy_dom_id(3, 7)).correlated, 1u);
  EXPECT_EQ(r.supernova->coincidences(), 1u);
  EXPECT_EQ(r.supernova->doms_in_state(SupernovaDomState::Incomplete), 1u);
  EXPECT_EQ(r.supernova->doms.size(), det.modules().size());

  TriggerParameters off;
  off.supernova.enabled = false;
  EXPECT_FALSE(DataFilter(det, off).process(slice).supernova);
}

TEST(SupernovaSettings, ParsedFromTriggerSupernovaAndRoundTripped) {
  auto r = parse_trigger_parameters(
      "[trigger.supernova]\nmin_multiplicity = 6\nmax_multiplicity = 10\nwindow_ms = 1000\n"
      "alert_threshold_sigma = 6\nhold_off_s = 120\nenabled = false\ncorrelated_veto_window_ns = 500\n");
  ASSERT_TRUE(r.ok()) << r.error;
  const SupernovaSettings& s = r.parameters->supernova;
  EXPECT_EQ(s.min_multiplicity, 6);
  EXPECT_EQ(s.max_multiplicity, 10);
  EXPECT_EQ(s.window_ms, 1000.0);
  EXPECT_EQ(s.alert_threshold_sigma, 6.0);
  EXPECT_EQ(s.hold_off_s, 120.0);
  EXPECT_FALSE(s.enabled);
  EXPECT_EQ(s.correlated_veto_window_ns, 500.0);
  EXPECT_EQ(s.baseline_s, 600.0);  // untouched keys keep their defaults
  const auto back = parse_trigger_parameters(to_toml(*r.parameters));
  ASSERT_TRUE(back.ok()) << back.error;
  EXPECT_EQ(*back.parameters, *r.parameters);

  r = parse_trigger_parameters("[trigger.supernova]\nmin_multiplicity = 9\nmax_multiplicity = 8\nwindow_ms = 5\nthreshold = 3\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error.find("trigger.supernova.min_multiplicity = 9"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("trigger.supernova.window_ms = 5: out of range"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("trigger.supernova.threshold: unknown key"), std::string::npos) << r.error;
}

TEST(SupernovaMonitor, EmptyBaselineNeedsSeveralCoincidencesToAlert) {
  // A band without background (a small or quiet detector): one or two coincidences in a window
  // are no alert, a handful in 500 ms is.
  SupernovaMonitor monitor(SupernovaSettings{});
  Background bg;
  bg.mean_per_dom = 0.0;
  std::uint32_t frame = 0;
  for (; frame < 400; ++frame) EXPECT_FALSE(monitor.observe(bg.next(frame)).alert);
  auto fig = bg.next(frame++);
  fig.doms[0].coincidences = 1;
  fig.doms[1].coincidences = 1;
  auto step = monitor.observe(fig);
  ASSERT_TRUE(step.ready);
  EXPECT_EQ(step.baseline_count, 0.0);
  EXPECT_FALSE(step.alert);
  fig = bg.next(frame++);
  for (int d = 0; d < 4; ++d) fig.doms[static_cast<std::size_t>(d)].coincidences = 1;
  step = monitor.observe(fig);
  EXPECT_TRUE(step.alert);
  EXPECT_EQ(step.window_count, 6u);
}
