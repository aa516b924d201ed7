// The two halves of a farm's slice bookkeeping: PartialSliceMerger (a filter process putting the
// partial slices of several ingest processes together) and FrameOrderer (the writer process
// restoring slice order across filter processes, passing over what a dead process held).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "shoredaq/dataflow/frame_orderer.hpp"
#include "shoredaq/dataflow/partial_slice_merger.hpp"

using namespace shoredaq::dataflow;

namespace {

constexpr std::uint64_t kMs = 1'000'000;

// A partial slice of window `index` (absolute) with one frame per DOM id.
Timeslice partial(std::uint64_t index, std::vector<std::uint32_t> doms, std::uint64_t received_ns = 10,
                  std::uint64_t completed_ns = 20) {
  Timeslice t;
  t.header.detector_id = 133;
  t.header.run = 7;
  t.header.utc_seconds = static_cast<std::uint32_t>(index / 10);
  t.header.ticks_16ns = static_cast<std::uint32_t>(index % 10) * (kSliceDurationNs / 16);
  t.header.frame_index = static_cast<std::uint32_t>(index - 99);
  for (std::uint32_t d : doms) {
    DomFrame f;
    f.dom_id = d;
    f.hits.assign(6, static_cast<std::uint8_t>(d));
    t.frames.push_back(f);
  }
  t.stamps = {received_ns, completed_ns};
  t.monitoring.push_back(RawMonitoring{doms.front(), {1, 2, 3}});
  return t;
}

std::vector<std::uint32_t> dom_ids(const Timeslice& t) {
  std::vector<std::uint32_t> out;
  for (const auto& f : t.frames) out.push_back(f.dom_id);
  return out;
}

}  // namespace

TEST(PartialSliceMerger, MergesTheWindowsOfTwoSourcesIntoWholeSlicesSortedByDom) {
  std::vector<Timeslice> out;
  PartialSliceMerger m({.sources = 2, .timeout_ns = 1000 * kMs, .max_pending_slices = 8, .expected_doms = {}},
                       [&](Timeslice&& t) { out.push_back(std::move(t)); });
  EXPECT_EQ(slice_index_of(partial(123, {1}).header), 123u);
  m.add(partial(100, {5, 9}, 30, 40), 0);
  m.add(partial(101, {2, 3}), 1);
  EXPECT_TRUE(out.empty());
  m.add(partial(100, {2, 3}, 10, 80), 2);  // the second partial of 100: whole now
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(dom_ids(out[0]), (std::vector<std::uint32_t>{2, 3, 5, 9}));
  EXPECT_EQ(out[0].stamps.received_unix_ns, 10u);   // the earliest first datagram
  EXPECT_EQ(out[0].stamps.completed_unix_ns, 80u);  // complete when its last part was
  EXPECT_EQ(out[0].monitoring.size(), 2u);
  m.add(partial(101, {5, 9}), 3);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(dom_ids(out[1]), (std::vector<std::uint32_t>{2, 3, 5, 9}));
  EXPECT_EQ(m.counters().slices_out, 2u);
  EXPECT_EQ(m.counters().slices_incomplete, 0u);
  EXPECT_EQ(m.pending(), 0u);
}

TEST(PartialSliceMerger, TheMergedFrameNumberIsTheEarliestStartedSources) {
  // Source B started 5 windows later in data time, so it counts window 105 as its frame 1; A
  // counts it as frame 6, the run's numbering. Whichever arrives first, the merged slice is frame 6
  // (the filters keep prescaled slices by it).
  std::vector<Timeslice> out;
  PartialSliceMerger m({.sources = 2, .timeout_ns = 1000 * kMs, .max_pending_slices = 8, .expected_doms = {}},
                       [&](Timeslice&& t) { out.push_back(std::move(t)); });
  for (const bool late_first : {true, false}) {
    const std::uint64_t window = late_first ? 105 : 106;
    Timeslice a = partial(window, {1}), b = partial(window, {2});
    b.header.frame_index -= 5;
    if (late_first) {
      m.add(std::move(b), 0);
      m.add(std::move(a), 1);
    } else {
      m.add(std::move(a), 0);
      m.add(std::move(b), 1);
    }
    ASSERT_FALSE(out.empty());
    EXPECT_EQ(out.back().header.frame_index, window - 99) << (late_first ? "late source first" : "early source first");
  }
  EXPECT_EQ(out.size(), 2u);
}

TEST(PartialSliceMerger, AMissingPartialIsWaitedForThenCountedAndALateOneDropped) {
  std::vector<Timeslice> out;
  PartialSliceMerger m({.sources = 2, .timeout_ns = 100 * kMs, .max_pending_slices = 8, .expected_doms = {}},
                       [&](Timeslice&& t) { out.push_back(std::move(t)); });
  m.add(partial(200, {1, 2}), 0);
  m.poll(99 * kMs);
  EXPECT_TRUE(out.empty());
  m.poll(100 * kMs);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(dom_ids(out[0]), (std::vector<std::uint32_t>{1, 2}));
  EXPECT_EQ(m.counters().slices_incomplete, 1u);
  EXPECT_EQ(m.counters().partials_missing, 1u);
  m.add(partial(200, {3, 4}), 150 * kMs);  // the dead or slow process's part, too late
  EXPECT_EQ(out.size(), 1u);
  EXPECT_EQ(m.counters().partials_late, 1u);
}

TEST(PartialSliceMerger, BoundedDuplicatesDroppedAndFlushEmitsEverything) {
  std::vector<Timeslice> out;
  PartialSliceMerger m({.sources = 3, .timeout_ns = 1000 * kMs, .max_pending_slices = 2, .expected_doms = {}},
                       [&](Timeslice&& t) { out.push_back(std::move(t)); });
  m.add(partial(300, {1, 2}), 0);
  m.add(partial(300, {2, 3}), 0);  // DOM 2 twice: the first copy stays
  m.add(partial(301, {1}), 0);
  m.add(partial(302, {1}), 0);     // a third window: the oldest is pushed out
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(dom_ids(out[0]), (std::vector<std::uint32_t>{1, 2, 3}));
  EXPECT_EQ(m.counters().frames_duplicate, 1u);
  EXPECT_EQ(m.counters().slices_pushed_out, 1u);
  Timeslice other = partial(301, {7});
  other.header.run = 8;
  m.add(std::move(other), 0);
  EXPECT_EQ(m.counters().header_mismatches, 1u);
  m.flush();
  EXPECT_EQ(out.size(), 3u);
  EXPECT_EQ(m.pending(), 0u);
  EXPECT_EQ(m.counters().slices_incomplete, 3u);
}

TEST(FrameOrderer, ReleasesInOrderAfterTheFirstWaitAndPassesOverAGapAfterTheTimeout) {
  FrameOrderer<std::string> o(500 * kMs, 16);
  std::vector<std::string> out;
  const auto emit = [&](std::string&& s) { out.push_back(std::move(s)); };
  o.add(1001, "f2", 0);
  o.release(0, emit);
  EXPECT_TRUE(out.empty());  // an earlier slice may still come from a slower filter process
  o.add(1000, "f1", 1 * kMs);
  o.release(499 * kMs, emit);
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(o.first().has_value());
  o.release(501 * kMs, emit);  // 1000 has waited: the run starts there, 1001 follows in order
  EXPECT_EQ(out, (std::vector<std::string>{"f1", "f2"}));
  EXPECT_EQ(o.first(), 1000u);
  EXPECT_EQ(o.counters().gap_slices, 0u);
  o.add(1003, "f4", 10 * kMs);  // 1002 was held by a filter process that died
  o.add(1004, "f5", 11 * kMs);
  o.release(509 * kMs, emit);
  EXPECT_EQ(out.size(), 2u);
  o.release(510 * kMs, emit);
  EXPECT_EQ(out, (std::vector<std::string>{"f1", "f2", "f4", "f5"}));
  EXPECT_EQ(o.counters().gaps, 1u);
  EXPECT_EQ(o.counters().gap_slices, 1u);
  o.add(1002, "f3", 600 * kMs);  // it arrives after all: too late
  o.add(1005, "f6", 600 * kMs);
  o.add(1005, "f6 again", 600 * kMs);
  o.release(600 * kMs, emit);
  EXPECT_EQ(out.back(), "f6");
  EXPECT_EQ(o.counters().late, 1u);
  EXPECT_EQ(o.counters().duplicates, 1u);
  EXPECT_EQ(o.counters().out, 5u);
}

TEST(FrameOrderer, TheBoundReleasesEarly) {
  FrameOrderer<int> o(1000 * kMs, 2);
  std::vector<int> out;
  const auto emit = [&](int&& v) { out.push_back(v); };
  o.add(50, 40, 0);
  o.add(51, 41, 0);
  o.release(0, emit);
  EXPECT_TRUE(out.empty());
  o.add(53, 43, 0);  // three waiting, bound two: the oldest goes
  o.release(0, emit);
  EXPECT_EQ(out, (std::vector<int>{40, 41}));
  o.flush(emit);
  EXPECT_EQ(out, (std::vector<int>{40, 41, 43}));
  EXPECT_EQ(o.counters().gap_slices, 1u);
}

TEST(PartialSliceMerger, AnIncompleteWindowGetsEmptyFramesForTheMissingDomsAndKeepsABadWhiteRabbitFlag) {
  std::vector<Timeslice> out;
  PartialSliceMerger m({.sources = 2, .timeout_ns = 100 * kMs, .max_pending_slices = 8, .expected_doms = {1, 2, 3, 4}},
                       [&](Timeslice&& t) { out.push_back(std::move(t)); });
  Timeslice a = partial(400, {1, 2});
  Timeslice b = partial(400, {3});
  b.header.utc_seconds |= 0x8000'0000u;  // this process's DOMs had no White Rabbit
  m.add(std::move(a), 0);
  m.add(std::move(b), 0);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(dom_ids(out[0]), (std::vector<std::uint32_t>{1, 2, 3, 4}));
  EXPECT_EQ(out[0].frames[3].status.daq, 0u);
  EXPECT_TRUE(out[0].frames[3].hits.empty());
  EXPECT_NE(out[0].header.utc_seconds & 0x8000'0000u, 0u);
  EXPECT_EQ(slice_index_of(out[0].header), 400u);
  EXPECT_EQ(m.counters().frames_added_empty, 1u);
}
