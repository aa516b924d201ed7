#include "shoredaq/dataflow/timeslice_builder.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

using namespace shoredaq::dataflow;

namespace {

constexpr std::uint32_t kRun = 77;
constexpr std::uint32_t kT0Seconds = 1'700'000'000;
constexpr std::uint64_t kSecond = 1'000'000'000ull;

// Datagram with its own payload storage (ClbDatagram only points at bytes).
struct TestDatagram {
  ClbHeader header;
  std::vector<std::uint8_t> bytes;
  ClbDatagram view() const {
    ClbDatagram d;
    d.header = header;
    d.payload = bytes;
    return d;
  }
};

TestDatagram make(std::uint32_t dom, std::uint32_t slice, std::uint32_t seq, bool trailer,
                  std::vector<Hit> hits = {}, std::uint32_t run = kRun) {
  TestDatagram d;
  d.header.data_type = DataType::Optical;
  d.header.run_number = run;
  d.header.udp_sequence = seq;
  d.header.utc_seconds = kT0Seconds + slice / 10;
  d.header.ticks_16ns = (slice % 10) * kTicksPerSlice;
  d.header.dom_id = dom;
  d.header.status1 = kStatus1WhiteRabbitOk;
  d.header.status2 = trailer ? kStatus2Trailer : 0;
  d.bytes.resize(hits.size() * kHitBytes);
  for (std::size_t i = 0; i < hits.size(); ++i) encode_hit(hits[i], d.bytes.data() + i * kHitBytes);
  return d;
}

std::uint64_t slice_start_ns(std::uint32_t slice) {
  return std::uint64_t{kT0Seconds} * kSecond + std::uint64_t{slice} * kSliceDurationNs;
}

struct Fixture {
  std::vector<Timeslice> out;
  TimesliceBuilder builder;
  explicit Fixture(TimesliceBuilderConfig config)
      : builder(std::move(config), [this](Timeslice&& t) { out.push_back(std::move(t)); }) {}
  void add(const TestDatagram& d, std::uint64_t now = 0) { builder.add(d.view(), now); }
};

TimesliceBuilderConfig config_for(std::vector<std::uint32_t> doms) {
  TimesliceBuilderConfig c;
  c.detector_id = 49;
  c.run_number = kRun;
  c.expected_doms = std::move(doms);
  c.expiry_wall_ns = 0;  // data time only unless a test sets it
  return c;
}

std::uint64_t dropped(const TimesliceBuilder& b, BuilderDropReason r) { return b.counters().dropped_of(r); }

}  // namespace

TEST(TimesliceBuilder, CompleteSliceIsEmittedWithFramesForEveryDomSortedById) {
  Fixture f(config_for({300, 100, 200}));
  f.add(make(200, 0, 0, true, {{1, 10, 20}}), 5);
  f.add(make(300, 0, 0, false, {{2, 11, 21}}), 6);
  ASSERT_TRUE(f.out.empty());
  f.add(make(100, 0, 0, true, {{3, 12, 22}, {4, 13, 23}}), 7);
  ASSERT_TRUE(f.out.empty());  // DOM 300 has no trailer yet
  f.add(make(300, 0, 1, true, {{5, 14, 24}}), 9);
  ASSERT_EQ(f.out.size(), 1u);
  const Timeslice& t = f.out[0];
  EXPECT_EQ(t.header.detector_id, 49);
  EXPECT_EQ(t.header.run, kRun);
  EXPECT_EQ(t.header.frame_index, 1u);
  EXPECT_EQ(t.header.slice_start_ns(), slice_start_ns(0));
  EXPECT_EQ(t.header.utc_seconds & 0x8000'0000u, 0u);  // WR ok everywhere
  ASSERT_EQ(t.frames.size(), 3u);
  EXPECT_EQ(t.frames[0].dom_id, 100u);
  EXPECT_EQ(t.frames[1].dom_id, 200u);
  EXPECT_EQ(t.frames[2].dom_id, 300u);
  EXPECT_EQ(t.frames[0].hit_count(), 2u);
  EXPECT_EQ(t.frames[2].hit_count(), 2u);
  EXPECT_EQ(t.frames[2].status.datagrams_received(), 2u);
  EXPECT_EQ(t.frames[2].status.highest_sequence(), 1u);
  for (const auto& fr : t.frames) {
    EXPECT_TRUE(fr.status.complete());
    EXPECT_TRUE(fr.status.white_rabbit_ok());
  }
  EXPECT_EQ(t.stamps.received_unix_ns, 5u);
  EXPECT_EQ(t.stamps.completed_unix_ns, 9u);
  EXPECT_EQ(f.builder.counters().slices_complete, 1u);
  EXPECT_EQ(f.builder.counters().hits_accepted, 5u);
  EXPECT_EQ(f.builder.open_slices(), 0u);
}

TEST(TimesliceBuilder, OutOfOrderDatagramsAreReassembledInSequenceOrder) {
  Fixture f(config_for({1}));
  f.add(make(1, 0, 2, true, {{2, 300, 1}}));
  f.add(make(1, 0, 0, false, {{0, 100, 1}, {0, 101, 1}}));
  ASSERT_TRUE(f.out.empty());
  f.add(make(1, 0, 1, false, {{1, 200, 1}}));
  ASSERT_EQ(f.out.size(), 1u);
  const DomFrame& fr = f.out[0].frames[0];
  ASSERT_EQ(fr.hit_count(), 4u);
  EXPECT_EQ(fr.hit(0).time_ns, 100u);
  EXPECT_EQ(fr.hit(1).time_ns, 101u);
  EXPECT_EQ(fr.hit(2).time_ns, 200u);
  EXPECT_EQ(fr.hit(3).time_ns, 300u);
  EXPECT_EQ(fr.status.daq, FrameStatus::make_daq(3, 2));
  EXPECT_TRUE(fr.status.complete());
}

TEST(TimesliceBuilder, StatusWordsCarryClbStatusAndTrailerBit) {
  Fixture f(config_for({1}));
  auto a = make(1, 0, 0, false);
  a.header.status1 = kStatus1WhiteRabbitOk | 0x4;  // HRV on channel 2
  a.header.status2 = 0x10;                         // FIFO almost full channel 4
  a.header.status3 = 0x7;
  auto b = make(1, 0, 1, true);
  b.header.status1 = 0x1;  // WR not ok in this one, HRV channel 0
  b.header.status4 = 0x9;
  f.add(a);
  f.add(b);
  ASSERT_EQ(f.out.size(), 1u);
  const FrameStatus& st = f.out[0].frames[0].status;
  EXPECT_EQ(st.status, 0x5u);  // HRV bits OR'ed, WR not ok
  EXPECT_EQ(st.fifo, 0x10u | kStatus2Trailer);
  EXPECT_EQ(st.status3, 0x7u);
  EXPECT_EQ(st.status4, 0x9u);
  EXPECT_NE(f.out[0].header.utc_seconds & 0x8000'0000u, 0u);  // slice flagged WR not ok
  EXPECT_EQ(f.out[0].header.slice_start_ns(), slice_start_ns(0));
}

TEST(TimesliceBuilder, MissingDatagramExpiresInDataTimeWithEudpStatus) {
  Fixture f(config_for({1, 2}));
  f.add(make(1, 0, 0, false, {{0, 1, 1}}));
  f.add(make(1, 0, 2, true, {{0, 3, 1}}));  // seq 1 lost
  f.add(make(2, 0, 0, true));
  ASSERT_TRUE(f.out.empty());
  // Both DOMs move on; slices 1..9 are complete but must wait behind slice 0 (frame order).
  for (std::uint32_t s = 1; s <= 9; ++s) {
    f.add(make(1, s, 0, true));
    f.add(make(2, s, 0, true));
  }
  ASSERT_TRUE(f.out.empty());
  f.add(make(1, 10, 0, true));
  ASSERT_TRUE(f.out.empty());  // DOM 2 has not reached slice 10 yet
  f.add(make(2, 10, 0, true), 1234);
  ASSERT_EQ(f.out.size(), 11u);  // slice 0 expired, then 1..10 complete, in frame order
  const Timeslice& t = f.out[0];
  EXPECT_EQ(t.header.frame_index, 1u);
  EXPECT_FALSE(t.frames[0].status.complete());
  EXPECT_EQ(t.frames[0].status.datagrams_received(), 2u);
  EXPECT_EQ(t.frames[0].status.highest_sequence(), 2u);
  EXPECT_TRUE(t.frames[0].status.trailer_seen());
  EXPECT_EQ(t.frames[0].hit_count(), 2u);
  EXPECT_TRUE(t.frames[1].status.complete());
  EXPECT_EQ(t.stamps.completed_unix_ns, 1234u);
  for (std::size_t i = 0; i < f.out.size(); ++i) EXPECT_EQ(f.out[i].header.frame_index, i + 1);
  EXPECT_EQ(f.builder.counters().slices_expired, 1u);
  EXPECT_EQ(f.builder.counters().slices_complete, 10u);
  EXPECT_EQ(f.builder.counters().frames_incomplete, 1u);
}

TEST(TimesliceBuilder, MissingTrailerIsIncomplete) {
  Fixture f(config_for({1}));
  f.add(make(1, 0, 0, false));
  f.builder.flush(99);
  ASSERT_EQ(f.out.size(), 1u);
  EXPECT_FALSE(f.out[0].frames[0].status.complete());
  EXPECT_FALSE(f.out[0].frames[0].status.trailer_seen());
  EXPECT_EQ(f.out[0].stamps.completed_unix_ns, 99u);
  EXPECT_EQ(f.builder.counters().slices_expired, 1u);
}

TEST(TimesliceBuilder, SilentDomDoesNotHoldBackAndGetsEmptyFrame) {
  Fixture f(config_for({1, 2, 3}));  // DOM 3 never sends
  for (std::uint32_t s = 0; s <= 10; ++s) {
    f.add(make(1, s, 0, true, {{0, 5, 5}}));
    f.add(make(2, s, 0, true));
  }
  ASSERT_EQ(f.out.size(), 1u);  // slice 0 expired once both sending DOMs reached slice 10
  const DomFrame& silent = f.out[0].frames[2];
  EXPECT_EQ(silent.dom_id, 3u);
  EXPECT_EQ(silent.status, FrameStatus{});
  EXPECT_TRUE(silent.hits.empty());
  EXPECT_FALSE(silent.status.complete());
  EXPECT_TRUE(f.out[0].frames[0].status.complete());
  EXPECT_EQ(f.builder.counters().frames_missing, 1u);
}

TEST(TimesliceBuilder, DomThatStoppedSendingStopsHoldingBackExpiry) {
  Fixture f(config_for({1, 2}));
  f.add(make(1, 0, 0, true));
  f.add(make(2, 0, 0, false));  // DOM 2 sends one partial slice, then falls silent
  for (std::uint32_t s = 1; s <= 10; ++s) f.add(make(1, s, 0, true));
  EXPECT_TRUE(f.out.empty());  // DOM 2 is 10 slices behind: still counted as sending
  f.add(make(1, 11, 0, true));
  // Now DOM 2's newest slice (0) is more than 10 behind the newest (11): no longer sending, so
  // DOM 1 alone decides: slices 0 and 1 are 10 slices behind it.
  ASSERT_EQ(f.out.size(), 2u);
  EXPECT_FALSE(f.out[0].frames[1].status.complete());
}

TEST(TimesliceBuilder, WallClockBoundExpiresStalledSlices) {
  auto c = config_for({1, 2});
  c.expiry_wall_ns = 2 * kSecond;
  Fixture f(c);
  f.add(make(1, 0, 0, true), 10 * kSecond);
  f.builder.poll(11 * kSecond);
  EXPECT_TRUE(f.out.empty());
  f.builder.poll(12 * kSecond);
  ASSERT_EQ(f.out.size(), 1u);
  EXPECT_EQ(f.out[0].stamps.received_unix_ns, 10 * kSecond);
  EXPECT_EQ(f.out[0].stamps.completed_unix_ns, 12 * kSecond);
  EXPECT_EQ(f.builder.counters().slices_expired, 1u);
}

TEST(TimesliceBuilder, LateDatagramAfterEmissionIsDropped) {
  Fixture f(config_for({1}));
  f.add(make(1, 0, 0, true));
  ASSERT_EQ(f.out.size(), 1u);
  f.add(make(1, 0, 1, true));
  EXPECT_EQ(dropped(f.builder, BuilderDropReason::LateDatagram), 1u);
  EXPECT_EQ(f.out.size(), 1u);
  EXPECT_EQ(f.builder.open_slices(), 0u);
}

TEST(TimesliceBuilder, DuplicatesAreDroppedAndCounted) {
  Fixture f(config_for({1, 2}));
  std::vector<BuilderDropReason> reasons;
  f.builder.set_drop_sink([&](BuilderDropReason r, const ClbHeader&) { reasons.push_back(r); });
  f.add(make(1, 0, 0, false, {{0, 1, 1}}));
  f.add(make(1, 0, 0, false, {{0, 1, 1}}));
  f.add(make(1, 0, 1, true));
  f.add(make(2, 0, 0, true));
  ASSERT_EQ(f.out.size(), 1u);
  EXPECT_EQ(f.out[0].frames[0].hit_count(), 1u);
  EXPECT_EQ(f.out[0].frames[0].status.datagrams_received(), 2u);
  EXPECT_EQ(dropped(f.builder, BuilderDropReason::Duplicate), 1u);
  ASSERT_EQ(reasons.size(), 1u);
  EXPECT_EQ(reasons[0], BuilderDropReason::Duplicate);
}

TEST(TimesliceBuilder, UnknownDomAndWrongRunAreDropped) {
  Fixture f(config_for({1}));
  f.add(make(999, 0, 0, true));
  f.add(make(1, 0, 0, true, {}, kRun + 1));
  EXPECT_EQ(dropped(f.builder, BuilderDropReason::UnknownDom), 1u);
  EXPECT_EQ(dropped(f.builder, BuilderDropReason::WrongRun), 1u);
  EXPECT_EQ(f.builder.open_slices(), 0u);
  EXPECT_TRUE(f.out.empty());
  EXPECT_EQ(f.builder.counters().datagrams_accepted, 0u);
}

// On a farm each ingest process builds its own DUs: the others' datagrams (whatever their run) are
// another process's, passed over and counted, not dropped; a DOM of no process is still unknown.
TEST(TimesliceBuilder, OtherIngestProcessesDomsArePassedOverNotDropped) {
  auto c = config_for({1, 2});
  c.other_ingest_doms = {3, 4, 2};  // 2 is this process's own: stays its own
  Fixture f(c);
  f.add(make(3, 0, 0, true, {{1, 10, 20}}));
  f.add(make(4, 0, 0, true, {}, kRun + 1));
  f.add(make(2, 0, 0, true, {{1, 10, 20}}));
  f.add(make(999, 0, 0, true));
  EXPECT_EQ(f.builder.counters().datagrams_other_ingest, 2u);
  EXPECT_EQ(dropped(f.builder, BuilderDropReason::UnknownDom), 1u);
  EXPECT_EQ(dropped(f.builder, BuilderDropReason::WrongRun), 0u);
  EXPECT_EQ(f.builder.counters().datagrams_accepted, 1u);
  f.add(make(1, 0, 0, true));
  ASSERT_EQ(f.out.size(), 1u);
  ASSERT_EQ(f.out[0].frames.size(), 2u);  // only this process's DOMs
  EXPECT_EQ(f.out[0].frames[1].dom_id, 2u);
}

TEST(TimesliceBuilder, TimeJumpAndBadTicksAreDropped) {
  auto c = config_for({1, 2});
  c.max_time_jump_slices = 100;
  Fixture f(c);
  f.add(make(1, 50, 0, true));
  f.add(make(2, 50 + 101, 0, true));  // far in the future
  auto bad = make(2, 50, 0, true);
  bad.header.ticks_16ns += 1;
  f.add(bad);
  EXPECT_EQ(dropped(f.builder, BuilderDropReason::TimeJump), 1u);
  EXPECT_EQ(dropped(f.builder, BuilderDropReason::BadSliceTime), 1u);
  EXPECT_EQ(f.builder.open_slices(), 1u);
}

TEST(TimesliceBuilder, SequenceBeyondDaqWordIsDropped) {
  Fixture f(config_for({1}));
  f.add(make(1, 0, 0x10000, true));
  EXPECT_EQ(dropped(f.builder, BuilderDropReason::SequenceOutOfRange), 1u);
}

TEST(TimesliceBuilder, FrameTooLargeIsDropped) {
  auto c = config_for({1});
  c.max_frame_bytes = 2 * kHitBytes;
  Fixture f(c);
  f.add(make(1, 0, 0, false, {{0, 1, 1}, {0, 2, 1}}));
  f.add(make(1, 0, 1, true, {{0, 3, 1}}));
  EXPECT_EQ(dropped(f.builder, BuilderDropReason::FrameTooLarge), 1u);
  EXPECT_EQ(f.builder.open_slices(), 1u);
}

TEST(TimesliceBuilder, MaxOpenSlicesForceEmitsOldestAsExpired) {
  auto c = config_for({1, 2});
  c.max_open_slices = 3;
  c.expiry_lag_slices = 1000;  // only the bound can emit here
  c.max_time_jump_slices = 100000;
  Fixture f(c);
  for (std::uint32_t s = 0; s < 3; ++s) f.add(make(1, s, 0, true));
  EXPECT_EQ(f.builder.open_slices(), 3u);
  EXPECT_TRUE(f.out.empty());
  f.add(make(1, 3, 0, true));
  EXPECT_EQ(f.builder.open_slices(), 3u);
  ASSERT_EQ(f.out.size(), 1u);
  EXPECT_EQ(f.out[0].header.frame_index, 1u);
  EXPECT_FALSE(f.out[0].frames[1].status.complete());
  EXPECT_EQ(f.builder.counters().slices_evicted, 1u);
  EXPECT_EQ(f.builder.counters().slices_expired, 1u);
  // Memory stays bounded however far the stream runs ahead.
  for (std::uint32_t s = 4; s < 200; ++s) {
    f.add(make(1, s, 0, true));
    ASSERT_LE(f.builder.open_slices(), 3u);
  }
  EXPECT_EQ(f.builder.counters().slices_evicted, 197u);
  // A slice older than every open one cannot be opened: dropped as evicted.
  f.add(make(2, 196, 0, true));
  EXPECT_EQ(dropped(f.builder, BuilderDropReason::LateDatagram), 1u);
  f.add(make(2, 197, 0, true));  // open, so accepted
  EXPECT_EQ(f.builder.counters().datagrams_accepted, 201u);
}

TEST(TimesliceBuilder, EvictionKeepsFrameOrderWithCompleteSlicesBehind) {
  auto c = config_for({1, 2});
  c.max_open_slices = 2;
  c.expiry_lag_slices = 1000;
  Fixture f(c);
  f.add(make(1, 5, 0, true));  // slice 5 incomplete (DOM 2 missing)
  f.add(make(1, 7, 0, true));
  f.add(make(2, 7, 0, true));  // slice 7 complete, waits behind 5
  EXPECT_TRUE(f.out.empty());
  f.add(make(1, 6, 0, true));  // evicts 5; 6 opens before 7
  ASSERT_EQ(f.out.size(), 1u);
  EXPECT_EQ(f.out[0].header.slice_start_ns(), slice_start_ns(5));
  f.add(make(2, 6, 0, true));
  ASSERT_EQ(f.out.size(), 3u);
  EXPECT_EQ(f.out[1].header.slice_start_ns(), slice_start_ns(6));
  EXPECT_EQ(f.out[2].header.slice_start_ns(), slice_start_ns(7));
  // Two slices open (10, 11): a datagram of slice 8, not yet emitted but older than every open
  // slice, cannot get a slot without breaking frame order: dropped as evicted.
  f.add(make(1, 10, 0, true));
  f.add(make(1, 11, 0, true));
  f.add(make(1, 8, 0, true));
  EXPECT_EQ(dropped(f.builder, BuilderDropReason::Evicted), 1u);
  f.add(make(1, 6, 0, true));
  EXPECT_EQ(dropped(f.builder, BuilderDropReason::LateDatagram), 1u);
  EXPECT_EQ(f.out.size(), 3u);
}

TEST(TimesliceBuilder, FrameIndexCountsFromConfiguredRunStart) {
  auto c = config_for({1});
  c.run_start_ns = slice_start_ns(10);
  Fixture f(c);
  f.add(make(1, 9, 0, true));
  EXPECT_EQ(dropped(f.builder, BuilderDropReason::BeforeRunStart), 1u);
  f.add(make(1, 10, 0, true));
  f.add(make(1, 14, 0, true));
  ASSERT_EQ(f.out.size(), 2u);
  EXPECT_EQ(f.out[0].header.frame_index, 1u);
  EXPECT_EQ(f.out[1].header.frame_index, 5u);
  EXPECT_EQ(f.builder.frame_index_of(slice_start_ns(20)), 11u);
}

TEST(TimesliceBuilder, FrameIndexStartsAtFirstSliceSeen) {
  Fixture f(config_for({1}));
  f.add(make(1, 33, 0, true));
  f.add(make(1, 34, 0, true));
  ASSERT_EQ(f.out.size(), 2u);
  EXPECT_EQ(f.out[0].header.frame_index, 1u);
  EXPECT_EQ(f.out[1].header.frame_index, 2u);
}

TEST(TimesliceBuilder, MonitoringAndAcousticAreCountedSeparately) {
  Fixture f(config_for({1}));
  int monitored = 0;
  f.builder.set_monitoring_sink([&](const ClbDatagram& d) { monitored += d.header.dom_id == 1; });
  auto m = make(1, 0, 0, true);
  m.header.data_type = DataType::Monitoring;
  auto a = make(1, 0, 0, true);
  a.header.data_type = DataType::Acoustic;
  int acoustic = 0;
  f.builder.set_acoustic_sink([&](const ClbDatagram& d) { acoustic += d.header.dom_id == 1 && d.header.data_type == DataType::Acoustic; });
  f.add(m);
  f.add(a);
  EXPECT_EQ(monitored, 1);
  EXPECT_EQ(acoustic, 1);  // the TAES datagram went to its own stream, not into a slice
  EXPECT_EQ(f.builder.counters().monitoring_datagrams, 1u);
  EXPECT_EQ(f.builder.counters().acoustic_datagrams, 1u);
  EXPECT_EQ(f.builder.open_slices(), 0u);
  EXPECT_EQ(f.builder.counters().dropped_total(), 0u);
}

TEST(TimesliceBuilder, DatagramBeyondTrailerMakesDomIncompleteAgain) {
  Fixture f(config_for({1, 2}));
  f.add(make(1, 0, 0, true));
  f.add(make(1, 0, 2, false));  // a later datagram than the "trailer": seq 1 now missing
  f.add(make(2, 0, 0, true));
  EXPECT_TRUE(f.out.empty());
  f.builder.flush(0);
  ASSERT_EQ(f.out.size(), 1u);
  EXPECT_FALSE(f.out[0].frames[0].status.complete());
  EXPECT_TRUE(f.out[0].frames[1].status.complete());
}

TEST(TimesliceBuilder, WallClockBoundAlsoCheckedOnAdd) {
  auto c = config_for({1, 2});
  c.expiry_wall_ns = 2 * kSecond;
  Fixture f(c);
  f.add(make(1, 0, 0, true), 10 * kSecond);
  f.add(make(1, 1, 0, true), 11 * kSecond);
  EXPECT_TRUE(f.out.empty());
  f.add(make(1, 2, 0, true), 12 * kSecond + 1);  // slice 0 is 2 s old: expires, no poll() needed
  ASSERT_EQ(f.out.size(), 1u);
  EXPECT_EQ(f.out[0].header.frame_index, 1u);
  EXPECT_EQ(f.builder.open_slices(), 2u);
}
