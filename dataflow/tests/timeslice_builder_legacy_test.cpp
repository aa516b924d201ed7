// TimesliceBuilder on legacy 28-byte headers (no trailer bit): completeness from the sequence
// numbers and the DOM's next slice, or from the end of the stream (timeslice_builder.hpp).
#include "shoredaq/dataflow/timeslice_builder.hpp"

#include <gtest/gtest.h>

#include <vector>

using namespace shoredaq::dataflow;

namespace {

constexpr std::uint32_t kRun = 8;
constexpr std::uint32_t kT0Seconds = 1'600'000'000;

struct TestDatagram {
  ClbHeader header;
  HeaderLayout layout = HeaderLayout::Legacy28;
  std::vector<std::uint8_t> bytes;
  ClbDatagram view() const {
    ClbDatagram d;
    d.header = header;
    d.layout = layout;
    d.payload = bytes;
    return d;
  }
};

// A legacy datagram as parse_clb_datagram gives it: one status word, status 2 always 0.
TestDatagram legacy(std::uint32_t dom, std::uint32_t slice, std::uint32_t seq, std::size_t hits = 1) {
  TestDatagram d;
  d.header.data_type = DataType::Optical;
  d.header.run_number = kRun;
  d.header.udp_sequence = seq;
  d.header.utc_seconds = kT0Seconds + slice / 10;
  d.header.ticks_16ns = (slice % 10) * kTicksPerSlice;
  d.header.dom_id = dom;
  d.header.status1 = kStatus1WhiteRabbitOk | 0x2;
  d.bytes.resize(hits * kHitBytes);
  for (std::size_t i = 0; i < hits; ++i) encode_hit(Hit{1, static_cast<std::uint32_t>(100 * i), 20}, d.bytes.data() + i * kHitBytes);
  return d;
}

struct Fixture {
  std::vector<Timeslice> out;
  TimesliceBuilder builder;
  explicit Fixture(std::vector<std::uint32_t> doms)
      : builder(config(std::move(doms)), [this](Timeslice&& t) { out.push_back(std::move(t)); }) {}
  static TimesliceBuilderConfig config(std::vector<std::uint32_t> doms) {
    TimesliceBuilderConfig c;
    c.run_number = kRun;
    c.expected_doms = std::move(doms);
    c.expiry_wall_ns = 0;
    return c;
  }
  void add(const TestDatagram& d, std::uint64_t now = 0) { builder.add(d.view(), now); }
};

}  // namespace

TEST(TimesliceBuilderLegacy, FrameIsCompleteOnceTheDomBeginsItsNextSlice) {
  Fixture f({1, 2});
  f.add(legacy(1, 0, 0), 10);
  f.add(legacy(1, 0, 1), 11);
  f.add(legacy(2, 0, 0), 12);
  EXPECT_TRUE(f.out.empty());  // no trailer bit: either DOM may still send more
  f.add(legacy(1, 1, 0), 13);
  EXPECT_TRUE(f.out.empty());  // DOM 2 may still send more of slice 0
  f.add(legacy(2, 1, 0), 14);
  ASSERT_EQ(f.out.size(), 1u);
  const Timeslice& t = f.out[0];
  EXPECT_EQ(t.header.frame_index, 1u);
  EXPECT_EQ(t.frames[0].status.daq, FrameStatus::make_daq(2, 1));
  for (const DomFrame& fr : t.frames) {
    EXPECT_TRUE(fr.status.complete());
    EXPECT_EQ(fr.status.fifo, kStatus2Trailer);  // the inferred end, as a 40-byte frame would carry it
    EXPECT_EQ(fr.status.status, kStatus1WhiteRabbitOk | 0x2u);
  }
  EXPECT_EQ(t.frames[0].hit_count(), 2u);
  EXPECT_EQ(t.stamps.completed_unix_ns, 14u);
  const auto& c = f.builder.counters();
  EXPECT_EQ(c.slices_complete, 1u);
  EXPECT_EQ(c.slices_expired, 0u);
  EXPECT_EQ(c.frames_incomplete, 0u);
  EXPECT_EQ(c.frames_completeness_inferred, 2u);
}

TEST(TimesliceBuilderLegacy, FrameWithASequenceGapStaysIncomplete) {
  Fixture f({1, 2});
  f.add(legacy(1, 0, 0));
  f.add(legacy(1, 0, 2));  // sequence 1 lost
  f.add(legacy(2, 0, 0));
  for (std::uint32_t s = 1; s <= 10; ++s) {
    f.add(legacy(1, s, 0));
    f.add(legacy(2, s, 0));
  }
  // Slice 0 waits for DOM 1's gap until data-time expiry, then slices 1..9 (complete) follow.
  ASSERT_EQ(f.out.size(), 10u);
  const DomFrame& gap = f.out[0].frames[0];
  EXPECT_FALSE(gap.status.complete());
  EXPECT_FALSE(gap.status.trailer_seen());
  EXPECT_EQ(gap.status.daq, FrameStatus::make_daq(2, 2));
  EXPECT_TRUE(f.out[0].frames[1].status.complete());
  for (std::size_t i = 1; i < f.out.size(); ++i) {
    EXPECT_TRUE(f.out[i].frames[0].status.complete());
    EXPECT_TRUE(f.out[i].frames[1].status.complete());
  }
  const auto& c = f.builder.counters();
  EXPECT_EQ(c.slices_expired, 1u);
  EXPECT_EQ(c.slices_complete, 9u);
  EXPECT_EQ(c.frames_incomplete, 1u);
  EXPECT_EQ(c.frames_completeness_inferred, 19u);
}

TEST(TimesliceBuilderLegacy, LastSliceIsCompleteAtFlushWithoutAGap) {
  Fixture f({1, 2});
  for (std::uint32_t s = 0; s < 3; ++s) {
    f.add(legacy(1, s, 0));
    f.add(legacy(1, s, 1));
    f.add(legacy(2, s, 0));
  }
  f.add(legacy(1, 3, 1));  // the last slice: DOM 1's sequence 0 lost
  f.add(legacy(2, 3, 0));
  ASSERT_EQ(f.out.size(), 3u);  // both DOMs began slice 3: slices 0..2 are complete
  f.builder.flush(99);
  ASSERT_EQ(f.out.size(), 4u);
  EXPECT_TRUE(f.out[2].frames[0].status.complete());
  EXPECT_TRUE(f.out[2].frames[1].status.complete());
  EXPECT_FALSE(f.out[3].frames[0].status.complete());  // a gap stays a gap at the end
  EXPECT_TRUE(f.out[3].frames[1].status.complete());   // no gap: nothing more will come
  EXPECT_EQ(f.out[3].stamps.completed_unix_ns, 99u);
  const auto& c = f.builder.counters();
  EXPECT_EQ(c.slices_complete, 3u);
  EXPECT_EQ(c.slices_expired, 1u);
  EXPECT_EQ(c.frames_incomplete, 1u);
  EXPECT_EQ(c.frames_missing, 0u);
  EXPECT_EQ(c.frames_completeness_inferred, 7u);
}

TEST(TimesliceBuilderLegacy, MissingDomGivesAnIncompleteSliceAndSilentDomsLastFrameStaysOpen) {
  Fixture f({1, 2, 3});  // DOM 3 never sends
  for (std::uint32_t s = 0; s <= 10; ++s) {
    f.add(legacy(1, s, 0));
    if (s < 5) f.add(legacy(2, s, 0));  // DOM 2 falls silent after slice 4
  }
  f.builder.flush(0);
  ASSERT_EQ(f.out.size(), 11u);
  for (const Timeslice& t : f.out) EXPECT_EQ(t.frames[2].status.daq, 0u);
  EXPECT_TRUE(f.out[3].frames[1].status.complete());  // DOM 2 began slice 4 after it
  // Slice 4 was DOM 2's last before it went silent; it is flushed with the rest at the end of the
  // stream, where a frame without a gap counts as complete.
  EXPECT_TRUE(f.out[4].frames[1].status.complete());
  EXPECT_EQ(f.out[5].frames[1].status.daq, 0u);
  const auto& c = f.builder.counters();
  EXPECT_EQ(c.slices_complete, 0u);
  EXPECT_EQ(c.slices_expired, 11u);
  EXPECT_EQ(c.frames_missing, 11u + 6u);
  EXPECT_EQ(c.frames_incomplete, 0u);
}

TEST(TimesliceBuilderLegacy, LateDatagramOfAnEarlierSliceCompletesIt) {
  Fixture f({1});
  f.add(legacy(1, 0, 0));
  f.add(legacy(1, 1, 0));  // DOM 1 began slice 1, but slice 0 (seq 0 only) is emitted: no gap
  ASSERT_EQ(f.out.size(), 1u);
  EXPECT_TRUE(f.out[0].frames[0].status.complete());
  f.add(legacy(1, 2, 1));  // slice 2's sequence 1 before its 0
  f.add(legacy(1, 3, 0));
  f.add(legacy(1, 2, 0));  // arrives after the DOM began slice 3: completes slice 2 at once
  ASSERT_EQ(f.out.size(), 3u);
  EXPECT_TRUE(f.out[2].frames[0].status.complete());
  EXPECT_EQ(f.out[2].frames[0].status.daq, FrameStatus::make_daq(2, 1));
}
