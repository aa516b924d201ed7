#include "shoredaq/filters/event_builder.hpp"

#include <gtest/gtest.h>

using namespace shoredaq;
using namespace shoredaq::filters;

namespace {

// Two DOMs; DOM 10 has hits every 100 ns from 0 to 9900 ns, DOM 20 every 100 ns offset by 50 ns.
// Raw time = calibrated + 1000 on DOM 10 (t0 = -1000), = calibrated - 7 on DOM 20 (t0 = 7).
L0Slice make_l0() {
  L0Slice l0;
  l0.doms.push_back({10, 0, 0, 0, L0Dom::kNoTimeIndex});
  for (int k = 0; k < 100; ++k)
    l0.hits.push_back({100.0 * k, static_cast<std::uint32_t>(100 * k + 1000), static_cast<std::uint8_t>(k % 31), 20});
  l0.doms[0].end = static_cast<std::uint32_t>(l0.hits.size());
  l0.doms.push_back({20, 1, l0.doms[0].end, 0, L0Dom::kNoTimeIndex});
  for (int k = 0; k < 100; ++k)
    l0.hits.push_back({100.0 * k + 50, static_cast<std::uint32_t>(100 * k + 50 - 7), 4, 30});
  l0.doms[1].end = static_cast<std::uint32_t>(l0.hits.size());
  return l0;
}

dataflow::SliceHeader header() {
  dataflow::SliceHeader h;
  h.detector_id = 3;
  h.run = 9;
  h.frame_index = 12;
  return h;
}

}  // namespace

TEST(EventBuilder, SnapshotWindowIsExact) {
  const auto l0 = make_l0();
  // Triggered: DOM 10 hits at 3000 and 3100 ns -> window [2800, 3300] with w = 200.
  std::vector<TriggerCandidate> c{{dataflow::trigger_bit(4), {30, 31}}};
  std::vector<dataflow::Event> out;
  ASSERT_EQ(build_events(c, l0, header(), 200.0, out), 1u);
  const auto& e = out[0];
  EXPECT_EQ(e.header, header());
  EXPECT_EQ(e.event_number, 0u);
  EXPECT_EQ(e.trigger_counter, 0u);
  EXPECT_EQ(e.trigger_mask, dataflow::trigger_bit(4));
  EXPECT_EQ(e.overlays, 0u);
  ASSERT_EQ(e.triggered.size(), 2u);
  EXPECT_EQ(e.triggered[0].dom_id, 10u);
  EXPECT_EQ(e.triggered[0].hit.time_ns, 4000u);  // raw time
  EXPECT_EQ(e.triggered[0].trigger_mask, dataflow::trigger_bit(4));
  // Snapshot: DOM 10 at 2800, 2900, 3000, 3100, 3200, 3300 (edges included); DOM 20 at 2850 .. 3250.
  ASSERT_EQ(e.snapshot.size(), 6u + 5u);
  EXPECT_EQ(e.snapshot.front().dom_id, 10u);
  EXPECT_EQ(e.snapshot.front().hit.time_ns, 2800u + 1000u);
  EXPECT_EQ(e.snapshot[5].hit.time_ns, 3300u + 1000u);
  EXPECT_EQ(e.snapshot[6].dom_id, 20u);
  EXPECT_EQ(e.snapshot[6].hit.time_ns, 2850u - 7u);
  EXPECT_EQ(e.snapshot.back().hit.time_ns, 3250u - 7u);
  EXPECT_EQ(e.snapshot.back().hit.tot_ns, 30);
  // A window just short of the edges loses them.
  out.clear();
  build_events(c, l0, header(), 199.99, out);
  EXPECT_EQ(out[0].snapshot.size(), 4u + 5u);  // DOM 20's 2850 and 3250 stay inside
  EXPECT_EQ(online_event_bytes(out[0]), 58u + 18u * 2u + 10u * 9u);
}

TEST(EventBuilder, OverlappingEventsMerge) {
  const auto l0 = make_l0();
  const std::uint64_t muon = dataflow::trigger_bit(4), shower = dataflow::trigger_bit(1);
  // w = 500: candidate A [1000, 1100], B [2000, 2050] (DOM 20 hit at 2050), C [1100, 1200]:
  // windows overlap when the gap is <= 2w = 1000 ns. D [5000] is 2950 ns after B's end.
  std::vector<TriggerCandidate> c{{muon, {10, 11}},
                                  {shower, {20, 100 + 20}},
                                  {shower, {11, 12}},
                                  {muon, {50}}};
  std::vector<dataflow::Event> out;
  ASSERT_EQ(build_events(c, l0, header(), 500.0, out), 2u);
  const auto& merged = out[0];
  EXPECT_EQ(merged.trigger_mask, muon | shower);
  EXPECT_EQ(merged.overlays, 2u);
  ASSERT_EQ(merged.triggered.size(), 5u);  // 10, 11, 12, 20 on DOM 10; one on DOM 20
  EXPECT_EQ(merged.triggered[1].trigger_mask, muon | shower);  // hit 11 in A and C
  EXPECT_EQ(merged.triggered[0].trigger_mask, muon);
  EXPECT_EQ(merged.triggered[2].trigger_mask, shower);
  EXPECT_EQ(merged.triggered[4].dom_id, 20u);
  // Snapshot covers [500, 2550].
  std::size_t dom10 = 0;
  for (const auto& s : merged.snapshot) dom10 += s.dom_id == 10;
  EXPECT_EQ(dom10, 21u);  // 500 .. 2500
  EXPECT_EQ(out[1].event_number, 1u);
  EXPECT_EQ(out[1].overlays, 0u);
  EXPECT_EQ(out[1].trigger_mask, muon);
  // Every triggered hit is in the snapshot.
  for (const auto& e : out)
    for (const auto& t : e.triggered) {
      bool found = false;
      for (const auto& s : e.snapshot) found |= s.dom_id == t.dom_id && s.hit == t.hit;
      EXPECT_TRUE(found);
    }
}

TEST(EventBuilder, SnapshotScopeLimitsTheDoms) {
  const auto l0 = make_l0();
  const std::vector<dataflow::Vec3> positions{{0, 0, 0}, {0, 0, 120}};  // modules of DOM 10 and DOM 20
  std::vector<TriggerCandidate> c{{dataflow::trigger_bit(4), {30, 31}}};  // on DOM 10
  std::vector<dataflow::Event> all, near, far;
  build_events(c, l0, header(), 200.0, all, {0.0, positions});
  build_events(c, l0, header(), 200.0, near, {119.0, positions});
  build_events(c, l0, header(), 200.0, far, {120.0, positions});
  EXPECT_EQ(all[0].snapshot.size(), 11u);
  EXPECT_EQ(near[0].snapshot.size(), 6u);  // DOM 20 is 120 m away
  for (const auto& s : near[0].snapshot) EXPECT_EQ(s.dom_id, 10u);
  EXPECT_EQ(far[0].snapshot.size(), 11u);
  EXPECT_EQ(near[0].triggered, all[0].triggered);
}

TEST(EventBuilder, NoCandidatesNoEvents) {
  const auto l0 = make_l0();
  std::vector<dataflow::Event> out;
  EXPECT_EQ(build_events({}, l0, header(), 1000.0, out), 0u);
  EXPECT_TRUE(out.empty());
}

TEST(EventBuilder, TriggerCountersContinueOverSlices) {
  std::vector<dataflow::Event> a(3), b(2);
  std::uint64_t counter = 100;
  assign_trigger_counters(a, counter);
  assign_trigger_counters(b, counter);
  EXPECT_EQ(a[0].trigger_counter, 100u);
  EXPECT_EQ(a[2].trigger_counter, 102u);
  EXPECT_EQ(b[1].trigger_counter, 104u);
  EXPECT_EQ(counter, 105u);
}
