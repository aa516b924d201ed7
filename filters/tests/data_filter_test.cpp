// The whole chain on hand-built slices: checks, vetoes, calibration, prescales, thread safety.
#include "shoredaq/filters/data_filter.hpp"

#include <thread>

#include <gtest/gtest.h>

#include "shoredaq/filters/frame_check.hpp"
#include "toy_detector.hpp"

using namespace shoredaq;
using namespace shoredaq::filters;
using namespace shoredaq::filters::test_support;

namespace {

const dataflow::Vec3 kPoint{20, 20, 80};
const dataflow::Vec3 kDirection{0.6, 0.0, -0.8};

std::vector<CalHit> a_muon(const dataflow::Detector& det, double t0 = 5000.0) {
  return muon_hits(det, kPoint, kDirection, t0, 22.0);
}

dataflow::DomFrame& frame_of(dataflow::Timeslice& ts, std::uint32_t dom) {
  for (auto& f : ts.frames)
    if (f.dom_id == dom) return f;
  throw std::runtime_error("no such frame");
}

}  // namespace

TEST(DataFilter, MuonEventWithRawTimesAndCounters) {
  const auto det = make_toy_detector();
  const auto hits = a_muon(det);
  const auto slice = make_slice(det, hits, 40);
  const DataFilter filter(det, TriggerParameters{});
  EXPECT_GT(filter.muon_directions(), 380u);
  const auto r = filter.process(slice);
  ASSERT_EQ(r.events.size(), 1u);
  const auto& e = r.events[0];
  EXPECT_TRUE(e.trigger_mask & dataflow::trigger_bit(dataflow::kTriggerBit3DMuon));
  EXPECT_EQ(e.header, slice.header);
  EXPECT_EQ(e.event_number, 0u);
  // Every hit is triggered and in the snapshot, with the raw time the DOM sent.
  EXPECT_EQ(e.snapshot.size(), hits.size());
  EXPECT_EQ(e.triggered.size(), hits.size());
  for (const auto& t : e.triggered) {
    const auto* m = det.find(t.dom_id);
    ASSERT_NE(m, nullptr);
    bool found = false;
    for (const auto& h : hits)
      found |= h.dom_id == t.dom_id && h.channel == t.hit.channel &&
               static_cast<std::uint32_t>(std::lround(h.time_ns - m->pmts[h.channel].t0_ns)) == t.hit.time_ns;
    EXPECT_TRUE(found);
  }
  EXPECT_EQ(r.counters.hits_in, hits.size());
  EXPECT_EQ(r.counters.l0_hits, hits.size());
  EXPECT_EQ(r.counters.l1_hits, hits.size() / 2);
  EXPECT_EQ(r.counters.events, 1u);
  EXPECT_EQ(r.counters.event_bytes, online_event_bytes(e));
  EXPECT_EQ(r.counters.frames_good, 72u);
  EXPECT_EQ(r.summary.frames.size(), 72u);
  EXPECT_TRUE(r.error_frames.frames.empty());
}

TEST(DataFilter, UncalibratedTimesWouldNotTrigger) {
  // The same raw hits in a detector whose t0 are all zero: the ~1e4 ns offsets between DOMs
  // destroy causality, so calibration is what makes the muon trigger.
  const auto det = make_toy_detector();
  const auto slice = make_slice(det, a_muon(det));
  std::vector<dataflow::Module> flat(det.modules().begin(), det.modules().end());
  for (auto& m : flat)
    for (auto& p : m.pmts) p.t0_ns = 0;
  const dataflow::Detector uncalibrated(det.id(), flat);
  EXPECT_EQ(DataFilter(det, {}).process(slice).events.size(), 1u);
  EXPECT_TRUE(DataFilter(uncalibrated, {}).process(slice).events.empty());
}

TEST(DataFilter, DefectiveFramesGoToTheErrorStream) {
  const auto det = make_toy_detector();
  const auto hits = a_muon(det);
  auto slice = make_slice(det, hits);
  // Break three muon DOMs' frames in different ways, drop one DOM, add an unknown DOM.
  std::vector<std::uint32_t> muon_doms;
  for (const auto& h : hits)
    if (muon_doms.empty() || muon_doms.back() != h.dom_id) muon_doms.push_back(h.dom_id);
  ASSERT_GE(muon_doms.size(), 6u);
  frame_of(slice, muon_doms[0]).status.daq = dataflow::FrameStatus::make_daq(1, 1);  // EUDP
  frame_of(slice, muon_doms[1]).hits[0] = 40;                                          // EPMT
  auto& etdc = frame_of(slice, muon_doms[2]);
  dataflow::encode_hit({5, 106'000'000, 3}, etdc.hits.data());                         // ETDC + TIME
  auto& missing = frame_of(slice, muon_doms[3]);
  missing.hits.clear();
  missing.status = {};
  dataflow::DomFrame stranger;
  stranger.dom_id = 999'999;
  stranger.status = complete_status();
  stranger.hits.resize(6);
  slice.frames.push_back(stranger);

  TriggerParameters p;
  p.muon3d.number_of_hits = p.muon3d.number_of_modules = static_cast<int>(muon_doms.size()) - 4;
  const auto r = DataFilter(det, p).process(slice);
  EXPECT_EQ(r.counters.frames_eudp, 1u);
  EXPECT_EQ(r.counters.frames_epmt, 1u);
  EXPECT_EQ(r.counters.frames_etdc, 1u);
  EXPECT_EQ(r.counters.frames_defective, 3u);
  EXPECT_EQ(r.counters.frames_missing, 1u);
  EXPECT_EQ(r.counters.frames_unknown_dom, 1u);
  EXPECT_EQ(r.counters.frames, 73u);  // 72 modules (one missing) + the stranger
  ASSERT_EQ(r.error_frames.frames.size(), 3u);
  ASSERT_EQ(r.error_defects.size(), 3u);
  EXPECT_EQ(r.error_frames.header, slice.header);
  for (std::size_t k = 0; k < 3; ++k) EXPECT_NE(r.error_defects[k], 0u);
  EXPECT_EQ(r.error_frames.frames[0].hits, frame_of(slice, r.error_frames.frames[0].dom_id).hits);
  // The muon still triggers on the remaining DOMs, and no hit of a bad frame is in the event.
  ASSERT_EQ(r.events.size(), 1u);
  for (const auto& s : r.events[0].snapshot)
    for (std::size_t k = 0; k < 4; ++k) EXPECT_NE(s.dom_id, muon_doms[k]);
  EXPECT_EQ(r.summary.frames.size(), 73u);
}

// A defective frame far from time order, half its hits at the largest raw time (2^32 - 1 ns): it is
// rejected without being sorted. (Sorting it, with whole-ns keys past 2^32, once cost ~n^2 moves.)
TEST(DataFilter, DefectiveFrameFarFromTimeOrderIsNotSorted) {
  const auto det = make_toy_detector();
  auto slice = make_slice(det, a_muon(det));
  auto& bad = slice.frames.front();
  const std::size_t n = 200'000;
  bad.hits.resize(n * dataflow::kHitBytes);
  for (std::size_t k = 0; k < n; ++k)
    dataflow::encode_hit({static_cast<std::uint8_t>(k % 31), k % 2 ? 0xffff'ffffu : static_cast<std::uint32_t>(n - k), 3},
                         bad.hits.data() + k * dataflow::kHitBytes);
  const auto r = DataFilter(det, {}).process(slice);
  EXPECT_EQ(r.counters.frames_etdc, 1u);
  EXPECT_EQ(r.counters.frames_time, 1u);
  EXPECT_EQ(r.counters.hits_defective, n);
  ASSERT_EQ(r.error_frames.frames.size(), 1u);
  EXPECT_EQ(r.error_frames.frames[0].hits, bad.hits);
}

TEST(DataFilter, HighRateVetoedPmtsAsConfigured) {
  const auto det = make_toy_detector();
  auto hits = a_muon(det);
  const std::uint32_t dom = hits[0].dom_id;
  // CLB HRV on channel 3 of the first muon DOM (one of its L1 pair).
  auto slice = make_slice(det, hits);
  frame_of(slice, dom).status.status |= 1u << 3;
  auto r = DataFilter(det, {}).process(slice);
  EXPECT_EQ(r.counters.hits_vetoed, 1u);
  EXPECT_EQ(r.counters.pmts_vetoed, 1u);
  EXPECT_EQ(r.counters.l1_hits, hits.size() / 2 - 1);
  TriggerParameters keep;
  keep.hrv_policy = HrvPolicy::Keep;
  r = DataFilter(det, keep).process(slice);
  EXPECT_EQ(r.counters.hits_vetoed, 0u);
  EXPECT_EQ(r.counters.l1_hits, hits.size() / 2);

  // A PMT above the high-rate threshold in this slice: 200 hits in 100 ms = 2 kHz > 1.5 kHz.
  for (int k = 0; k < 200; ++k) hits.push_back({dom, 20, 1e6 + 1000.0 * k});
  TriggerParameters low;
  low.high_rate_veto_hz = 1500;
  r = DataFilter(det, low).process(make_slice(det, hits));
  EXPECT_EQ(r.counters.hits_vetoed, 200u);
  EXPECT_EQ(r.counters.l0_hits, hits.size() - 200);
  low.high_rate_veto_hz = 0;  // off
  r = DataFilter(det, low).process(make_slice(det, hits));
  EXPECT_EQ(r.counters.hits_vetoed, 0u);
}

TEST(DataFilter, SizeLimitAndPrescaledSlices) {
  const auto det = make_toy_detector();
  const auto hits = a_muon(det);
  TriggerParameters p;
  p.prescale_l0 = 2;
  p.prescale_l1 = 3;
  p.prescale_l2 = 1;
  p.prescale_sn = 1;
  p.sn_min_multiplicity = 2;
  p.ct_min = -1.0;  // any pair of axes: every L1 is an L2
  const DataFilter filter(det, p);
  auto r = filter.process(make_slice(det, hits, 6));
  ASSERT_EQ(r.prescaled.size(), 4u);
  EXPECT_EQ(r.prescaled[0].kind, PrescaledSlice::Kind::L0);
  EXPECT_EQ(r.prescaled[0].slice.frames.size(), 72u);
  EXPECT_EQ(r.prescaled[0].slice.hit_count(), hits.size());
  EXPECT_EQ(r.prescaled[1].kind, PrescaledSlice::Kind::L1);
  EXPECT_EQ(r.prescaled[1].slice.hit_count(), hits.size());
  EXPECT_EQ(r.prescaled[1].slice.frames.size(), hits.size() / 2);
  EXPECT_EQ(r.prescaled[1].slice.header.frame_index, 6u);
  EXPECT_EQ(r.prescaled[2].kind, PrescaledSlice::Kind::L2);
  EXPECT_EQ(r.prescaled[2].slice.hit_count(), hits.size());
  EXPECT_EQ(r.prescaled[3].kind, PrescaledSlice::Kind::SN);
  EXPECT_EQ(r.counters.l2_hits, hits.size() / 2);
  r = filter.process(make_slice(det, hits, 7));
  ASSERT_EQ(r.prescaled.size(), 2u);  // 7 % 2, 7 % 3 != 0
  p.sn_min_multiplicity = 3;
  p.prescale_l2 = 0;
  r = DataFilter(det, p).process(make_slice(det, hits, 7));
  ASSERT_EQ(r.prescaled.size(), 1u);
  EXPECT_EQ(r.prescaled[0].kind, PrescaledSlice::Kind::SN);
  EXPECT_EQ(r.prescaled[0].slice.hit_count(), 0u);

  p.max_hits_per_frame = 1;
  r = DataFilter(det, p).process(make_slice(det, hits));
  EXPECT_EQ(r.counters.frames_size, hits.size() / 2);
  EXPECT_TRUE(r.events.empty());
}

TEST(DataFilter, SharedAcrossThreadsGivesTheSameResult) {
  const auto det = make_toy_detector();
  const DataFilter filter(det, {});
  std::vector<dataflow::Timeslice> slices;
  for (std::uint32_t k = 0; k < 8; ++k) slices.push_back(make_slice(det, a_muon(det, 2000.0 + 1e5 * k), k));
  std::vector<FilterResult> serial;
  for (const auto& s : slices) serial.push_back(filter.process(s));
  std::vector<FilterResult> parallel(slices.size());
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (std::size_t k = t; k < slices.size(); k += 4) parallel[k] = filter.process(slices[k]);
    });
  for (auto& t : threads) t.join();
  for (std::size_t k = 0; k < slices.size(); ++k) {
    EXPECT_EQ(parallel[k].events, serial[k].events);
    EXPECT_EQ(parallel[k].summary, serial[k].summary);
    EXPECT_EQ(serial[k].events.size(), 1u);
  }
}
