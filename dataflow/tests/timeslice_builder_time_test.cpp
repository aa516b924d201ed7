// TimesliceBuilder slice-time sanity (timeslice_builder.hpp, "Slice-time sanity" and "Run start"):
// one DOM's implausible slice time is dropped and counted for that DOM without moving the window;
// the window follows only what enough DOMs agree on.
#include "shoredaq/dataflow/timeslice_builder.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "shoredaq/dataflow/offline_replay.hpp"

using namespace shoredaq::dataflow;

namespace {

constexpr std::uint32_t kRun = 31;
constexpr std::uint32_t kT0Seconds = 1'700'000'000;
constexpr std::uint64_t kSecond = 1'000'000'000ull;
constexpr std::int64_t kHour = 36'000;  // slices

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

// One single-datagram (trailer) frame of `dom` for slice `slice` (relative to kT0Seconds, may be
// negative), with one hit.
TestDatagram make(std::uint32_t dom, std::int64_t slice) {
  TestDatagram d;
  const std::int64_t abs_slice = std::int64_t{kT0Seconds} * 10 + slice;
  d.header.data_type = DataType::Optical;
  d.header.run_number = kRun;
  d.header.utc_seconds = static_cast<std::uint32_t>(abs_slice / 10);
  d.header.ticks_16ns = static_cast<std::uint32_t>(abs_slice % 10) * kTicksPerSlice;
  d.header.dom_id = dom;
  d.header.status1 = kStatus1WhiteRabbitOk;
  d.header.status2 = kStatus2Trailer;
  d.bytes.resize(kHitBytes);
  encode_hit(Hit{3, 1000, 25}, d.bytes.data());
  return d;
}

std::uint64_t start_ns(std::int64_t slice) {
  return static_cast<std::uint64_t>((std::int64_t{kT0Seconds} * 10 + slice) * std::int64_t{kSliceDurationNs});
}

struct Fixture {
  std::vector<Timeslice> out;
  TimesliceBuilder builder;
  explicit Fixture(TimesliceBuilderConfig config)
      : builder(std::move(config), [this](Timeslice&& t) { out.push_back(std::move(t)); }) {}
  void add(const TestDatagram& d, std::uint64_t now = 0) { builder.add(d.view(), now); }
  // Every DOM's frame of slices [from, to), DOM by DOM within a slice.
  void slices(const std::vector<std::uint32_t>& doms, std::int64_t from, std::int64_t to) {
    for (std::int64_t s = from; s < to; ++s)
      for (std::uint32_t dom : doms) add(make(dom, s));
  }
  std::uint64_t dropped(BuilderDropReason r) const { return builder.counters().dropped_of(r); }
  bool all_complete() const {
    for (const Timeslice& t : out)
      for (const DomFrame& f : t.frames)
        if (!f.status.complete()) return false;
    return true;
  }
};

const std::vector<std::uint32_t> kDoms = {1, 2, 3, 4};

TimesliceBuilderConfig config_for(std::vector<std::uint32_t> doms) {
  TimesliceBuilderConfig c;  // defaults as the node uses them: lag 10, jump 600, quorum 3
  c.detector_id = 49;
  c.run_number = kRun;
  c.expected_doms = std::move(doms);
  c.expiry_wall_ns = 0;
  return c;
}

}  // namespace

TEST(TimesliceBuilderTime, FirstDatagramOfTheRunAnHourAheadIsDroppedAndSetsNothing) {
  Fixture f(config_for(kDoms));
  f.add(make(2, kHour));  // DOM 2's clock is an hour ahead, and it is the first to send
  EXPECT_FALSE(f.builder.window_confirmed());
  f.slices(kDoms, 0, 200);  // 20 s of real data
  EXPECT_TRUE(f.builder.window_confirmed());
  ASSERT_EQ(f.out.size(), 200u);
  for (std::size_t i = 0; i < f.out.size(); ++i) {
    EXPECT_EQ(f.out[i].header.frame_index, i + 1);  // frame 1 is the real first slice
    EXPECT_EQ(f.out[i].header.slice_start_ns(), start_ns(static_cast<std::int64_t>(i)));
  }
  EXPECT_TRUE(f.all_complete());
  const auto& c = f.builder.counters();
  EXPECT_EQ(c.datagrams_accepted, 800u);
  EXPECT_EQ(c.slices_complete, 200u);
  EXPECT_EQ(c.slices_expired, 0u);
  EXPECT_EQ(f.dropped(BuilderDropReason::TimeJump), 1u);
  EXPECT_EQ(c.dropped_total(), 1u);
  EXPECT_EQ(c.implausible_time_datagrams, 1u);
  EXPECT_EQ(f.builder.implausible_time_doms(), (std::vector<DomCount>{{2, 1}}));
  EXPECT_EQ(f.builder.open_slices(), 0u);
  EXPECT_EQ(f.builder.frame_index_of(start_ns(0)), 1u);
}

TEST(TimesliceBuilderTime, CreepingJumpsMidRunAreDroppedWithoutMovingTheWindow) {
  Fixture f(config_for(kDoms));
  f.slices(kDoms, 0, 50);
  // Twelve datagrams from DOM 3, each 55 s further ahead (each within max_time_jump_slices = 60 s
  // of the previous one), one per slice, between the real data.
  for (std::int64_t k = 0; k < 12; ++k) {
    f.add(make(3, 50 + k + 550 * (k + 1)));
    f.slices(kDoms, 50 + k, 51 + k);
  }
  f.slices(kDoms, 62, 100);
  ASSERT_EQ(f.out.size(), 100u);
  for (std::size_t i = 0; i < f.out.size(); ++i) EXPECT_EQ(f.out[i].header.frame_index, i + 1);
  EXPECT_TRUE(f.all_complete());
  const auto& c = f.builder.counters();
  EXPECT_EQ(c.datagrams_accepted, 400u);
  EXPECT_EQ(c.slices_complete, 100u);
  EXPECT_EQ(c.slices_expired, 0u);
  EXPECT_EQ(f.dropped(BuilderDropReason::TimeJump), 12u);
  EXPECT_EQ(c.dropped_total(), 12u);
  EXPECT_EQ(f.builder.implausible_time_doms(), (std::vector<DomCount>{{3, 12}}));
  EXPECT_EQ(f.builder.open_slices(), 0u);
}

TEST(TimesliceBuilderTime, ReplayOfOldTimesWhereEveryDomAgreesIsFollowed) {
  // Recorded data replayed years later (receive times now): every DOM agrees on the old times.
  const std::uint64_t now = start_ns(0) + 5 * 365 * 24 * 3600 * kSecond;
  Fixture f(config_for(kDoms));
  for (std::int64_t s = 0; s < 50; ++s) {
    // Batched per DU-half: DOMs 1-2 run two slices ahead of DOMs 3-4 (within the lead).
    for (std::uint32_t dom : {1u, 2u}) f.add(make(dom, s), now + s);
    if (s >= 2)
      for (std::uint32_t dom : {3u, 4u}) f.add(make(dom, s - 2), now + s);
  }
  for (std::int64_t s = 48; s < 50; ++s)
    for (std::uint32_t dom : {3u, 4u}) f.add(make(dom, s), now + 50);
  ASSERT_EQ(f.out.size(), 50u);
  for (std::size_t i = 0; i < f.out.size(); ++i) EXPECT_EQ(f.out[i].header.frame_index, i + 1);
  EXPECT_TRUE(f.all_complete());
  EXPECT_EQ(f.builder.counters().dropped_total(), 0u);
  EXPECT_TRUE(f.builder.implausible_time_doms().empty());
}

TEST(TimesliceBuilderTime, DetectorWideJumpIsFollowedOnceTheQuorumAgrees) {
  Fixture f(config_for(kDoms));
  f.slices(kDoms, 0, 20);
  // Every DOM's clock steps an hour ahead together (e.g. a White Rabbit correction).
  f.slices(kDoms, kHour, kHour + 20);
  f.builder.flush(0);
  // DOMs 1 and 2 sent at the new time before a third agreed: their first datagrams are dropped
  // (quorum 3 - 1 = 2, one datagram each); DOM 3's confirms the jump.
  EXPECT_EQ(f.dropped(BuilderDropReason::TimeJump), 2u);
  EXPECT_EQ(f.builder.counters().dropped_total(), 2u);
  EXPECT_EQ(f.builder.implausible_time_doms(), (std::vector<DomCount>{{1, 1}, {2, 1}}));
  ASSERT_EQ(f.out.size(), 40u);
  for (std::size_t i = 0; i < 20; ++i) EXPECT_EQ(f.out[i].header.frame_index, i + 1);
  for (std::size_t i = 20; i < 40; ++i) {
    EXPECT_EQ(f.out[i].header.slice_start_ns(), start_ns(kHour + static_cast<std::int64_t>(i) - 20));
    EXPECT_EQ(f.out[i].header.frame_index, kHour + i - 20 + 1);  // frames keep counting from the run start
  }
  // The first slice after the jump lacks DOMs 1 and 2; the rest is whole.
  EXPECT_EQ(f.out[20].frames[0].status.daq, 0u);
  EXPECT_EQ(f.out[20].frames[1].status.daq, 0u);
  EXPECT_TRUE(f.out[20].frames[2].status.complete());
  const auto& c = f.builder.counters();
  EXPECT_EQ(c.datagrams_accepted, 158u);
  EXPECT_EQ(c.slices_complete, 39u);
  EXPECT_EQ(c.slices_expired, 1u);
  EXPECT_EQ(c.frames_missing, 2u);
}

TEST(TimesliceBuilderTime, DuWithABadClockCannotTakeTheWindowFromTheRest) {
  const std::vector<std::uint32_t> doms = {1, 2, 3, 4, 5, 6, 7, 8};
  Fixture f(config_for(doms));
  f.slices(doms, 0, 10);
  // DOMs 1-3 (a quorum, but a minority) all jump an hour ahead, together, for 20 slices.
  for (std::int64_t s = 10; s < 30; ++s) {
    for (std::uint32_t dom : {1u, 2u, 3u}) f.add(make(dom, kHour + s));
    f.slices({4, 5, 6, 7, 8}, s, s + 1);
  }
  f.builder.flush(0);
  EXPECT_EQ(f.dropped(BuilderDropReason::TimeJump), 60u);
  EXPECT_EQ(f.builder.counters().dropped_total(), 60u);
  EXPECT_EQ(f.builder.implausible_time_doms(), (std::vector<DomCount>{{1, 20}, {2, 20}, {3, 20}}));
  ASSERT_EQ(f.out.size(), 30u);
  for (std::size_t i = 0; i < f.out.size(); ++i) {
    EXPECT_EQ(f.out[i].header.slice_start_ns(), start_ns(static_cast<std::int64_t>(i)));
    EXPECT_TRUE(f.out[i].frames[7].status.complete());
  }
}

TEST(TimesliceBuilderTime, OneDomBuilderFollowsItsOwnJumps) {
  Fixture f(config_for({7}));  // quorum 3 clamped to the one DOM
  f.add(make(7, 0));
  EXPECT_TRUE(f.builder.window_confirmed());
  f.slices({7}, 1, 5);
  f.slices({7}, kHour, kHour + 5);
  ASSERT_EQ(f.out.size(), 10u);
  EXPECT_EQ(f.out[5].header.frame_index, kHour + 1);
  EXPECT_EQ(f.builder.counters().dropped_total(), 0u);
  EXPECT_EQ(f.builder.counters().slices_complete, 10u);
}

TEST(TimesliceBuilderTime, TwoDomBuilderNeedsBothForAJumpButNotToLeaveAStoppedDomBehind) {
  Fixture f(config_for({1, 2}));
  f.slices({1, 2}, 0, 5);
  f.add(make(1, kHour));  // one of two: not enough
  EXPECT_EQ(f.dropped(BuilderDropReason::TimeJump), 1u);
  f.add(make(2, kHour));  // both: followed
  f.add(make(1, kHour + 1));
  f.add(make(2, kHour + 1));
  EXPECT_EQ(f.dropped(BuilderDropReason::TimeJump), 1u);
  EXPECT_EQ(f.builder.implausible_time_doms(), (std::vector<DomCount>{{1, 1}}));
  // DOM 2 stops; DOM 1 goes on alone, slice by slice.
  for (std::int64_t s = kHour + 2; s < kHour + 30; ++s) f.add(make(1, s));
  EXPECT_EQ(f.builder.counters().dropped_total(), 1u);
  EXPECT_EQ(f.out.back().header.slice_start_ns(), start_ns(kHour + 30 - 1 - 10));  // data-time expiry follows DOM 1
}

TEST(TimesliceBuilderTime, DataBeforeTheRunStartIsDroppedWithoutMovingAnything) {
  auto c = config_for({1, 2, 3});
  c.run_start_ns = start_ns(100);
  Fixture f(c);
  f.add(make(2, 40));  // before the run start, first of all: sets nothing
  f.slices({1, 2, 3}, 100, 105);
  f.add(make(2, 99));
  f.add(make(2, 60));
  f.slices({1, 2, 3}, 105, 110);
  EXPECT_EQ(f.dropped(BuilderDropReason::BeforeRunStart), 3u);
  EXPECT_EQ(f.builder.counters().dropped_total(), 3u);
  EXPECT_EQ(f.builder.implausible_time_doms(), (std::vector<DomCount>{{2, 3}}));
  ASSERT_EQ(f.out.size(), 10u);
  for (std::size_t i = 0; i < f.out.size(); ++i) EXPECT_EQ(f.out[i].header.frame_index, i + 1);
  EXPECT_TRUE(f.all_complete());
}

TEST(TimesliceBuilderTime, DataBeforeAnUnconfiguredRunStartOnceConfirmed) {
  Fixture f(config_for({1, 2, 3}));
  f.add(make(1, 10));
  f.add(make(2, 9));   // nearby earlier data while the window is tentative: frame 1 moves back
  f.add(make(3, 10));  // three DOMs: confirmed
  f.add(make(1, 9));
  f.add(make(3, 9));   // slice 9 complete
  f.add(make(2, 10));  // slice 10 complete
  f.add(make(3, 8));   // before the confirmed run start: dropped
  ASSERT_EQ(f.out.size(), 2u);
  EXPECT_EQ(f.out[0].header.slice_start_ns(), start_ns(9));
  EXPECT_EQ(f.out[0].header.frame_index, 1u);
  EXPECT_EQ(f.out[1].header.frame_index, 2u);
  EXPECT_EQ(f.dropped(BuilderDropReason::BeforeRunStart), 1u);
  EXPECT_EQ(f.builder.counters().dropped_total(), 1u);
  EXPECT_EQ(f.builder.implausible_time_doms(), (std::vector<DomCount>{{3, 1}}));
}

TEST(TimesliceBuilderTime, FirstDatagramOfTheRunAnHourBehindCannotSetFrameOne) {
  Fixture f(config_for(kDoms));
  f.add(make(4, -kHour));
  // DOM 1's datagram, one against one, is dropped; DOM 2's outnumbers the tentative window, which
  // restarts from it.
  f.slices(kDoms, 0, 20);
  f.builder.flush(0);
  ASSERT_EQ(f.out.size(), 20u);
  EXPECT_EQ(f.out[0].header.frame_index, 1u);
  EXPECT_EQ(f.out[0].header.slice_start_ns(), start_ns(0));
  EXPECT_EQ(f.out[0].frames[0].status.daq, 0u);
  for (std::size_t i = 1; i < f.out.size(); ++i) EXPECT_EQ(f.out[i].header.frame_index, i + 1);
  EXPECT_EQ(f.dropped(BuilderDropReason::TimeJump), 2u);
  EXPECT_EQ(f.builder.counters().dropped_total(), 2u);
  EXPECT_EQ(f.builder.counters().datagrams_accepted, 79u);
  EXPECT_EQ(f.builder.counters().slices_complete, 19u);
  EXPECT_EQ(f.builder.implausible_time_doms(), (std::vector<DomCount>{{1, 1}, {4, 1}}));
}

TEST(TimesliceBuilderTime, WallClockCheckUsesTheCallersReceiveTime) {
  auto c = config_for(kDoms);
  c.max_wall_clock_offset_s = 10;
  Fixture f(c);
  const auto now = [](std::int64_t slice) { return start_ns(slice) + 150'000'000ull; };  // sent at the slice end
  for (std::int64_t s = 0; s < 20; ++s) {
    if (s == 5) f.add(make(1, s + 200), now(s));  // 20 s off the wall clock: dropped
    if (s == 6) f.add(make(1, s + 50), now(s));   // 5 s: within the offset (but an unconfirmed jump)
    for (std::uint32_t dom : kDoms) f.add(make(dom, s), now(s));
  }
  EXPECT_EQ(f.dropped(BuilderDropReason::WallClockOffset), 1u);
  EXPECT_EQ(f.dropped(BuilderDropReason::TimeJump), 1u);
  EXPECT_EQ(f.builder.implausible_time_doms(), (std::vector<DomCount>{{1, 2}}));
  ASSERT_EQ(f.out.size(), 20u);
  EXPECT_TRUE(f.all_complete());
  // Receive time 0 (unknown) skips the check.
  f.add(make(2, 20 + 200), 0);
  EXPECT_EQ(f.dropped(BuilderDropReason::WallClockOffset), 1u);
}

TEST(TimesliceBuilderTime, HeldDatagramsAreAllAccountedForAtFlush) {
  Fixture f(config_for(kDoms));
  f.add(make(1, kHour));  // tentative window
  f.add(make(2, 0));      // far behind: held (one DOM does not outvote one)
  f.builder.flush(0);
  ASSERT_EQ(f.out.size(), 1u);
  EXPECT_EQ(f.out[0].header.slice_start_ns(), start_ns(kHour));
  EXPECT_EQ(f.builder.counters().datagrams_accepted, 1u);
  EXPECT_EQ(f.dropped(BuilderDropReason::TimeJump), 1u);
  EXPECT_EQ(f.builder.implausible_time_doms(), (std::vector<DomCount>{{2, 1}}));
}
