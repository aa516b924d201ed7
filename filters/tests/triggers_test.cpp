// The three physics triggers on hand-built hit patterns in a toy detector.
#include <algorithm>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "shoredaq/formats/event.hpp"
#include "shoredaq/filters/data_filter.hpp"
#include "shoredaq/filters/trigger_3d_muon.hpp"
#include "shoredaq/filters/trigger_3d_shower.hpp"
#include "toy_detector.hpp"

using namespace shoredaq;
using namespace shoredaq::filters;
using namespace shoredaq::filters::test_support;

namespace {

TriggerParameters only(unsigned bit) {
  TriggerParameters p;
  p.shower3d.enabled = bit == dataflow::kTriggerBit3DShower;
  p.mxshower.enabled = bit == dataflow::kTriggerBitMXShower;
  p.muon3d.enabled = bit == dataflow::kTriggerBit3DMuon;
  return p;
}

L1Hit l1_at(dataflow::Vec3 position, double t, std::uint32_t slot) {
  L1Hit h;
  h.time_ns = t;
  h.position_m = position;
  h.dom_slot = slot;
  h.first_l0 = 2 * slot;
  h.multiplicity = 2;
  return h;
}

const dataflow::Vec3 kMuonPoint{20, 20, 80};
const dataflow::Vec3 kMuonDirection{0.6, 0.0, -0.8};

}  // namespace

TEST(Trigger3DMuon, StraightMuonTriggersShuffledTimesDoNot) {
  const auto det = make_toy_detector();
  auto p = only(dataflow::kTriggerBit3DMuon);
  const DataFilter default_filter(det, p);
  // A steep muon next to DU 1: 2-hit coincidences on all 18 DOMs of the DU (153 m, ~510 ns).
  auto hits = muon_hits(det, {5, 5, 80}, {0.1 / 1.006, 0.05 / 1.006, -0.99 / 1.006}, 5000.0, 15.0);
  ASSERT_EQ(hits.size(), 36u);
  auto r = default_filter.process(make_slice(det, hits));
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].trigger_mask, dataflow::trigger_bit(dataflow::kTriggerBit3DMuon));
  EXPECT_EQ(r.counters.l1_hits, 18u);
  // Any 4 of these hits are nearly always consistent with *some* track (times within ~150 ns of
  // z/c along a free direction): the 4-hit trigger relies on the rarity of background L1s, not on
  // the time order. With 12 hits required, a straight muon still fires and shuffled times do not.
  p.muon3d.number_of_hits = p.muon3d.number_of_modules = 12;
  const DataFilter filter(det, p);
  EXPECT_EQ(filter.process(make_slice(det, hits)).events.size(), 1u);
  std::vector<double> times;
  for (std::size_t i = 0; i < hits.size(); i += 2) times.push_back(hits[i].time_ns);
  for (unsigned seed = 1; seed <= 20; ++seed) {
    auto shuffled_times = times;
    std::mt19937 rng(seed);
    std::shuffle(shuffled_times.begin(), shuffled_times.end(), rng);
    auto shuffled = hits;  // each DOM keeps its 2-hit coincidence, at another DOM's time
    for (std::size_t i = 0; i < hits.size(); i += 2) {
      shuffled[i].time_ns = shuffled_times[i / 2];
      shuffled[i + 1].time_ns = shuffled_times[i / 2] + 2.5;
    }
    const auto s = filter.process(make_slice(det, shuffled));
    EXPECT_EQ(s.counters.l1_hits, 18u);
    EXPECT_TRUE(s.events.empty()) << "seed " << seed;
  }
}

TEST(Trigger3DMuon, NeedsEnoughHitsAndModules) {
  const auto det = make_toy_detector();
  auto hits = muon_hits(det, kMuonPoint, kMuonDirection, 5000.0, 22.0);
  std::set<std::uint32_t> doms;
  for (const auto& h : hits) doms.insert(h.dom_id);
  auto p = only(dataflow::kTriggerBit3DMuon);
  p.muon3d.number_of_hits = p.muon3d.number_of_modules = static_cast<int>(doms.size());
  EXPECT_EQ(DataFilter(det, p).process(make_slice(det, hits)).events.size(), 1u);
  p.muon3d.number_of_hits = p.muon3d.number_of_modules = static_cast<int>(doms.size()) + 1;
  EXPECT_TRUE(DataFilter(det, p).process(make_slice(det, hits)).events.empty());
}

TEST(Trigger3DMuon, FactoryLimitTriggersDirectly) {
  std::vector<L1Hit> l1;
  // Ten L1 hits on ten DOMs at the same place and time: causal, more than the factory limit.
  for (std::uint32_t k = 0; k < 10; ++k) l1.push_back(l1_at({0, 0, 1.0 * k}, 100.0 + k, k));
  MuonTriggerSettings s;
  s.factory_limit = 8;
  const Trigger3DMuon trigger(s);
  std::vector<TriggerCandidate> out;
  TriggerScratch scratch;
  ASSERT_EQ(trigger.run(l1, out, scratch), 1u);
  EXPECT_EQ(out[0].trigger_mask, dataflow::trigger_bit(dataflow::kTriggerBit3DMuon) |
                                     dataflow::trigger_bit(dataflow::kTriggerBitFactoryLimit));
  EXPECT_EQ(out[0].l0_hits.size(), 20u);
}

TEST(Trigger3DShower, CausalClusterFiresAcausalDoesNot) {
  const TriggerSettings s{true, 3, 3, 52.0, 25.0, 100};
  const double dt = 20.0 * kIndexOfRefraction / kSpeedOfLightMPerNs + 25.0;  // limit for 20 m
  std::vector<TriggerCandidate> out;
  TriggerScratch scratch;
  // Three DOMs 20 m apart on a line: A(0) B(20) C(40).
  std::vector<L1Hit> causal{l1_at({0, 0, 0}, 1000, 0), l1_at({0, 0, 20}, 1000 + dt - 1, 1),
                            l1_at({0, 0, 40}, 1000 + 40 * 1.38 / 0.3 - 5, 2)};
  EXPECT_EQ(trigger_3d_shower(causal, s, out, scratch), 1u);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].trigger_mask, dataflow::trigger_bit(dataflow::kTriggerBit3DShower));
  EXPECT_EQ(out[0].l0_hits, (std::vector<std::uint32_t>{0, 1, 2, 3, 4, 5}));
  out.clear();
  std::vector<L1Hit> acausal{l1_at({0, 0, 0}, 1000, 0), l1_at({0, 0, 20}, 1000 + dt + 1, 1),
                             l1_at({0, 0, 40}, 1000 + dt + 2, 2)};
  EXPECT_EQ(trigger_3d_shower(acausal, s, out, scratch), 0u);
  // Too far apart (beyond DMax).
  std::vector<L1Hit> far{l1_at({0, 0, 0}, 1000, 0), l1_at({0, 0, 30}, 1010, 1), l1_at({0, 0, 60}, 1020, 2)};
  EXPECT_EQ(trigger_3d_shower(far, s, out, scratch), 0u);
  // Two modules only.
  std::vector<L1Hit> two{l1_at({0, 0, 0}, 1000, 0), l1_at({0, 0, 20}, 1010, 1), l1_at({0, 0, 20}, 1020, 1)};
  EXPECT_EQ(trigger_3d_shower(two, s, out, scratch), 0u);
  // Disabled.
  TriggerSettings off = s;
  off.enabled = false;
  EXPECT_EQ(trigger_3d_shower(causal, off, out, scratch), 0u);
}

TEST(TriggerMXShower, SeedPlusCausalL0Hits) {
  const auto det = make_toy_detector();
  // One L1 on DU1 floor 5 and single hits on floors 4 and 6 (9 m away) -> 8 hits on 3 DOMs.
  const double t = 3000.0;
  std::vector<CalHit> hits{{toy_dom_id(1, 5), 0, t}, {toy_dom_id(1, 5), 1, t + 3}, {toy_dom_id(1, 5), 2, t + 6},
                           {toy_dom_id(1, 4), 0, t + 30}, {toy_dom_id(1, 4), 7, t + 40},
                           {toy_dom_id(1, 6), 0, t + 30}, {toy_dom_id(1, 6), 9, t + 45}, {toy_dom_id(1, 6), 12, t + 50}};
  const DataFilter filter(det, only(dataflow::kTriggerBitMXShower));
  auto r = filter.process(make_slice(det, hits));
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].trigger_mask, dataflow::trigger_bit(dataflow::kTriggerBitMXShower));
  EXPECT_EQ(r.events[0].triggered.size(), 8u);
  // One hit moved out of causal reach (9 m -> |dt| <= 41.4 + 25 ns): 7 hits, no trigger.
  hits.back().time_ns = t - 80;
  r = filter.process(make_slice(det, hits));
  EXPECT_TRUE(r.events.empty());
}

TEST(Triggers, ShowerLikeBurstFiresBothShowerTriggers) {
  const auto det = make_toy_detector();
  std::vector<CalHit> hits;
  const dataflow::Vec3 vertex{0, 0, 90};
  for (const auto& m : det.modules()) {
    const double d = (m.position_m - vertex).norm();
    if (d > 30) continue;
    const double t = 7000.0 + d * kIndexOfRefraction / kSpeedOfLightMPerNs;
    for (std::uint8_t ch = 0; ch < 4; ++ch) hits.push_back({m.id, ch, t + ch, 40});
  }
  TriggerParameters p;
  p.muon3d.enabled = false;
  const auto r = DataFilter(det, p).process(make_slice(det, hits));
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].trigger_mask, dataflow::trigger_bit(dataflow::kTriggerBit3DShower) |
                                          dataflow::trigger_bit(dataflow::kTriggerBitMXShower));
  EXPECT_GE(r.events[0].overlays, 1u);
  for (const auto& h : r.events[0].triggered) EXPECT_NE(h.trigger_mask, 0u);
}
