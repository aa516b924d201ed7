// The supernova search, per DOM: coincidences (multiplicity, window edge, calibration, triggered
// and correlated-DOM vetoes, DOM exclusion), the figure inside DataFilter and the run setup's
// [trigger.supernova]. The detector-level monitor is supernova_monitor_test.cpp.
#include "shoredaq/filters/supernova.hpp"
#include "shoredaq/filters/data_filter.hpp"
#include "shoredaq/filters/trigger_parameters.hpp"

#include <cmath>

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
