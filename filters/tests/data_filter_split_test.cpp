// Intra-slice parallelism: DataFilter::process with the per-DOM work split into frame ranges gives
// exactly the one-pass result, whatever the number of ranges, the threads and the order they run in.
#include <algorithm>
#include <thread>

#include <gtest/gtest.h>

#include "shoredaq/drivers/du_simulator.hpp"
#include "shoredaq/filters/data_filter.hpp"
#include "shoredaq/filters/trigger_mx_shower.hpp"
#include "toy_detector.hpp"

using namespace shoredaq;
using namespace shoredaq::filters;
using shoredaq::filters::test_support::detector133;

namespace {

// du-sim of 3 DUs with many bright muons and showers: triggers fire many times per slice.
drivers::DuSimConfig busy_sim_config(std::uint64_t seed) {
  drivers::DuSimConfig c;
  c.detector = detector133();
  c.dus = {5, 9, 10};
  c.start_unix_ns = 1'700'000'000'000'000'000ull;
  c.seed = seed;
  c.muon.rate_hz = 300;
  c.muon.light_yield_pe_m = 300;
  c.shower.rate_hz = 60;
  return c;
}

// Busy du-sim slices, then made awkward: a CLB high-rate veto, a defective frame, a missing frame
// and a DOM the detector does not know.
std::vector<dataflow::Timeslice> awkward_slices() {
  drivers::DuSimulator sim(busy_sim_config(99));
  std::vector<dataflow::Timeslice> out;
  for (int k = 0; k < 3; ++k) {
    dataflow::Timeslice t = sim.next_slice().truth;
    t.frames[3].status.status |= 1u << 7;           // CLB high-rate veto on channel 7
    t.frames[10].hits[0] = 40;                        // channel 40: a defective frame
    t.frames[20].hits.clear();                        // never arrived
    t.frames[20].status = {};
    dataflow::DomFrame stranger = t.frames[30];       // a DOM not in the detector
    stranger.dom_id = 999'999;
    t.frames.insert(t.frames.begin() + 31, stranger);
    // A DOM's frame twice in a row (a sender's bug): the prescaled slices keep one frame for it,
    // also when a range ends between the two.
    for (std::size_t at = 40; at < t.frames.size(); at += 5) {
      const dataflow::DomFrame twin = t.frames[at];
      t.frames.insert(t.frames.begin() + static_cast<std::ptrdiff_t>(at), twin);
    }
    out.push_back(std::move(t));
  }
  out.push_back(dataflow::Timeslice{out.front().header, {}, {}, {}});  // no frames at all
  return out;
}

TriggerParameters everything_on() {
  TriggerParameters p;
  p.prescale_l0 = p.prescale_l1 = p.prescale_l2 = p.prescale_sn = 1;
  p.supernova.enabled = true;
  p.high_rate_veto_hz = 7400;  // a few PMTs of 7 kHz singles pass it in 100 ms
  return p;
}

void expect_same(const FilterResult& a, const FilterResult& b) {
  EXPECT_EQ(a.counters, b.counters);
  EXPECT_EQ(a.events, b.events);
  EXPECT_EQ(a.summary, b.summary);
  EXPECT_EQ(a.supernova, b.supernova);
  EXPECT_EQ(a.error_defects, b.error_defects);
  ASSERT_EQ(a.error_frames.frames.size(), b.error_frames.frames.size());
  for (std::size_t i = 0; i < a.error_frames.frames.size(); ++i) {
    EXPECT_EQ(a.error_frames.frames[i].dom_id, b.error_frames.frames[i].dom_id);
    EXPECT_EQ(a.error_frames.frames[i].hits, b.error_frames.frames[i].hits);
  }
  ASSERT_EQ(a.prescaled.size(), b.prescaled.size());
  for (std::size_t i = 0; i < a.prescaled.size(); ++i) {
    EXPECT_EQ(a.prescaled[i].kind, b.prescaled[i].kind);
    ASSERT_EQ(a.prescaled[i].slice.frames.size(), b.prescaled[i].slice.frames.size()) << i;
    for (std::size_t f = 0; f < a.prescaled[i].slice.frames.size(); ++f) {
      EXPECT_EQ(a.prescaled[i].slice.frames[f].dom_id, b.prescaled[i].slice.frames[f].dom_id);
      EXPECT_EQ(a.prescaled[i].slice.frames[f].hits, b.prescaled[i].slice.frames[f].hits);
    }
  }
}

const TaskRunner kThreads = [](std::size_t tasks, const std::function<void(std::size_t)>& task) {
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < tasks; ++i) threads.emplace_back(task, i);
  for (auto& t : threads) t.join();
};
const TaskRunner kBackwards = [](std::size_t tasks, const std::function<void(std::size_t)>& task) {
  for (std::size_t i = tasks; i-- > 0;) task(i);
};

}  // namespace

TEST(DataFilterSplit, AnySplitGivesTheOnePassResult) {
  const DataFilter filter(*detector133(), everything_on());
  const auto slices = awkward_slices();
  for (const auto& slice : slices) {
    const FilterResult one_pass = filter.process(slice);
    if (!slice.frames.empty()) {
      // The awkward parts are really there.
      ASSERT_EQ(one_pass.counters.frames_defective, 1u);
      ASSERT_EQ(one_pass.counters.frames_missing, 1u);
      ASSERT_EQ(one_pass.counters.frames_unknown_dom, 1u);
      ASSERT_GT(one_pass.counters.pmts_vetoed, 1u);
      ASSERT_GT(one_pass.events.size(), 1u);
      ASSERT_TRUE(one_pass.supernova.has_value());
    }
    for (std::size_t threads : {1u, 2u, 3u, 7u, 16u, 50u}) {
      SCOPED_TRACE("threads " + std::to_string(threads));
      expect_same(filter.process(slice, kThreads, threads), one_pass);
      expect_same(filter.process(slice, kBackwards, threads), one_pass);
    }
  }
}

TEST(DataFilterSplit, TheMXShowerTriggerInPartsGivesTheOneRunsCandidates) {
  // A loose MX shower trigger fires on most seeds of these slices, so that part boundaries fall
  // inside its clusters: the join must pass over, or look again at, the seeds after them.
  TriggerParameters p = everything_on();
  p.mxshower.number_of_hits = 4;
  p.mxshower.number_of_modules = 2;
  p.mxshower.d_max_m = 100;
  const DataFilter filter(*detector133(), p);
  const auto slices = awkward_slices();
  for (std::size_t k = 0; k + 1 < slices.size(); ++k) {
    const FilterResult one_pass = filter.process(slices[k]);
    ASSERT_GT(one_pass.counters.triggers_mx_shower, 100u);
    for (std::size_t threads : {2u, 3u, 5u, 13u, 64u}) {
      SCOPED_TRACE("slice " + std::to_string(k) + ", threads " + std::to_string(threads));
      expect_same(filter.process(slices[k], kBackwards, threads), one_pass);
      if (threads < 13) expect_same(filter.process(slices[k], kThreads, threads), one_pass);
    }
  }
}

TEST(MxShowerParts, JoinedPartsAreTheOneRunsCandidates) {
  // The trigger's own output, candidate by candidate, for any cut of the seeds into parts (down
  // to one seed each), the parts run in any order.
  const drivers::DuSimConfig c = busy_sim_config(7);
  const auto detector = c.detector;
  drivers::DuSimulator sim(c);
  TriggerSettings settings = TriggerParameters{}.mxshower;
  settings.number_of_hits = 4;
  settings.number_of_modules = 2;
  settings.d_max_m = 100;
  const ModuleNeighbours neighbours(*detector, settings.d_max_m);
  for (int k = 0; k < 3; ++k) {
    const dataflow::Timeslice slice = sim.next_slice().truth;
    L0Slice l0;
    std::vector<L1Hit> l1;
    std::vector<std::int32_t> slot_of_module(detector->modules().size(), -1);
    L0Scratch scratch;
    for (const auto& frame : slice.frames) {
      const auto module = detector->index_of(frame.dom_id);
      ASSERT_TRUE(module.has_value());
      const dataflow::Module& m = detector->modules()[*module];
      if (m.is_base()) continue;
      const auto begin = static_cast<std::uint32_t>(l0.hits.size());
      build_l0_dom(frame, DomCalibration::of(m), 0, l0.hits, scratch);
      const L0Dom dom{frame.dom_id, static_cast<std::uint32_t>(*module), begin,
                      static_cast<std::uint32_t>(l0.hits.size())};
      const auto slot = static_cast<std::uint32_t>(l0.doms.size());
      slot_of_module[*module] = static_cast<std::int32_t>(slot);
      l0.doms.push_back(dom);
      build_l1_dom(l0.hits_of(dom), dom.begin, slot, m.position_m, L1Settings{}, l1);
    }
    std::stable_sort(l1.begin(), l1.end(), [](const L1Hit& a, const L1Hit& b) { return a.time_ns < b.time_ns; });

    std::vector<TriggerCandidate> one_run;
    TriggerScratch one_scratch;
    const std::size_t fired = trigger_mx_shower(l1, l0, slot_of_module, neighbours, settings, one_run, one_scratch);
    ASSERT_GT(fired, 100u);
    const MxShowerInput in{l1, l0, slot_of_module, neighbours, settings};
    for (const std::size_t parts : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{7}, std::size_t{13},
                                    std::size_t{50}, std::size_t{101}, l1.size() / 3, l1.size() / 2, l1.size()}) {
      SCOPED_TRACE("slice " + std::to_string(k) + ", parts " + std::to_string(parts));
      std::vector<MxShowerPart> cut(parts);
      std::size_t fired_in_parts = 0;
      for (std::size_t p = parts; p-- > 0;) {
        cut[p].first = l1.size() * p / parts;
        cut[p].last = l1.size() * (p + 1) / parts;
        trigger_mx_shower_part(in, cut[p]);
        fired_in_parts += cut[p].candidates.size();
      }
      // One seed per part: each part fires on its seed, held by an earlier candidate or not.
      if (parts == l1.size()) {
        EXPECT_GT(fired_in_parts, fired);
      }
      std::vector<TriggerCandidate> joined;
      TriggerScratch join_scratch;
      EXPECT_EQ(join_mx_shower_parts(in, cut, joined, join_scratch), fired);
      ASSERT_EQ(joined.size(), one_run.size());
      for (std::size_t i = 0; i < joined.size(); ++i) {
        EXPECT_EQ(joined[i].trigger_mask, one_run[i].trigger_mask) << i;
        EXPECT_EQ(joined[i].l0_hits, one_run[i].l0_hits) << i;
      }
    }
  }
}

TEST(DataFilterSplit, WithoutARunnerItIsOnePass) {
  const DataFilter filter(*detector133(), everything_on());
  const auto slices = awkward_slices();
  expect_same(filter.process(slices[0], nullptr, 8), filter.process(slices[0]));
}

TEST(DataFilterSplit, ALargerSliceAfterASmallerOneUsesFreshRanges) {
  // The per-thread buffers are reused: a slice with more hits, then fewer, then more again.
  const DataFilter filter(*detector133(), everything_on());
  auto slices = awkward_slices();
  dataflow::Timeslice small = slices[1];
  small.frames.resize(small.frames.size() / 3);
  for (const auto* s : {&slices[0], &small, &slices[2], &small, &slices[1]})
    expect_same(filter.process(*s, kThreads, 4), filter.process(*s));
}
