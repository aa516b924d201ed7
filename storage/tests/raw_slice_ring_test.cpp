// The raw slice ring: bounds by time and bytes, wrap-around, recovery after a torn tail and after
// kill -9 mid-append (a forked writer), index consistency (verify()).
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <random>

#include "shoredaq/storage/raw_slice_ring.hpp"
#include "storage_test_support.hpp"

using namespace shoredaq::storage;
using shoredaq::storage::testing::TempDir;

namespace {

constexpr std::uint64_t kT0 = 1'700'000'000'000'000'000ull;  // a slice boundary
constexpr std::uint64_t kSlice = 100'000'000ull;

std::vector<std::uint8_t> payload(std::uint64_t seed, std::size_t bytes) {
  std::vector<std::uint8_t> v(bytes);
  std::mt19937_64 rng(seed);
  for (auto& b : v) b = static_cast<std::uint8_t>(rng());
  return v;
}

RingSliceMeta meta_of(std::uint64_t i) { return RingSliceMeta{kT0 + i * kSlice, 49, 7, static_cast<std::uint32_t>(i + 1), 3}; }

RawSliceRingConfig config_of(const TempDir& dir, std::uint64_t max_bytes, std::uint32_t seconds) {
  RawSliceRingConfig c;
  c.directory = dir.path() / "ring";
  c.max_bytes = max_bytes;
  c.max_seconds = seconds;
  return c;
}

}  // namespace

TEST(RawSliceRing, StoresSlicesAndReadsThemBack) {
  TempDir dir("ring-basic");
  RawSliceRing ring(config_of(dir, 1 << 20, 60));
  for (std::uint64_t i = 0; i < 5; ++i) {
    const auto bytes = payload(i, 1000 + i);
    ASSERT_EQ(ring.append(meta_of(i), bytes), RingAppendStatus::Stored);
  }
  const auto entries = ring.entries();
  ASSERT_EQ(entries.size(), 5u);
  for (std::uint64_t i = 0; i < 5; ++i) {
    EXPECT_EQ(entries[i].slice_start_ns, kT0 + i * kSlice);
    EXPECT_EQ(entries[i].frame_index, i + 1);
    EXPECT_EQ(entries[i].run, 7u);
    EXPECT_EQ(entries[i].records, 3u);
    EXPECT_EQ(ring.read(entries[i]), payload(i, 1000 + i));
  }
  const RingFill f = ring.fill();
  EXPECT_EQ(f.slices, 5u);
  EXPECT_EQ(f.oldest_ns, kT0);
  EXPECT_EQ(f.newest_ns, kT0 + 4 * kSlice);
  EXPECT_EQ(f.end_ns(), kT0 + 5 * kSlice);
  EXPECT_EQ(ring.entries_between(kT0 + kSlice, kT0 + 3 * kSlice).size(), 2u);
  EXPECT_TRUE(ring.verify().empty());
}

TEST(RawSliceRing, KeepsOnlyTheLastSecondsOfDetectorTime) {
  TempDir dir("ring-time");
  RawSliceRing ring(config_of(dir, 1 << 20, 2));
  for (std::uint64_t i = 0; i < 40; ++i) ASSERT_EQ(ring.append(meta_of(i), payload(i, 100)), RingAppendStatus::Stored);
  const RingFill f = ring.fill();
  EXPECT_EQ(f.slices, 20u);  // 2 s of 100 ms slices
  EXPECT_EQ(f.newest_ns, kT0 + 39 * kSlice);
  EXPECT_EQ(f.oldest_ns, kT0 + 20 * kSlice);
  EXPECT_EQ(ring.counters().evicted_by_time, 20u);
  // Older than the window: refused, nothing evicted for it.
  EXPECT_EQ(ring.append(meta_of(19), payload(1, 100)), RingAppendStatus::TooOld);
  EXPECT_EQ(ring.counters().refused_too_old, 1u);
  // Slightly out of order but inside the window: kept.
  EXPECT_EQ(ring.append(meta_of(25), payload(2, 100)), RingAppendStatus::Stored);
  EXPECT_TRUE(ring.verify().empty());
}

TEST(RawSliceRing, WrapsAroundWithinItsBytesAndNeverServesOverwrittenData) {
  TempDir dir("ring-wrap");
  RawSliceRing ring(config_of(dir, 10'000, 600));
  std::map<std::uint64_t, std::vector<std::uint8_t>> appended;
  bool wrapped = false;
  for (std::uint64_t i = 0; i < 60; ++i) {
    auto bytes = payload(i, 700 + (i * 37) % 900);
    ASSERT_EQ(ring.append(meta_of(i), bytes), RingAppendStatus::Stored) << i;
    appended[kT0 + i * kSlice] = std::move(bytes);
    const auto entries = ring.entries();
    std::uint64_t total = 0;
    for (const auto& e : entries) {
      total += e.bytes;
      EXPECT_LE(e.offset + e.bytes, 10'000u);
      if (e.offset == 0 && i > 0) wrapped = true;
      const auto back = ring.read(e);
      ASSERT_TRUE(back.has_value());
      EXPECT_EQ(*back, appended[e.slice_start_ns]);
    }
    EXPECT_LE(total, 10'000u);
  }
  EXPECT_TRUE(wrapped);
  EXPECT_GT(ring.counters().evicted_by_space, 0u);
  // The newest slice is always there; what was overwritten is not served.
  EXPECT_EQ(ring.entries().back().slice_start_ns, kT0 + 59 * kSlice);
  RingEntry gone;
  gone.sequence = 1;
  gone.bytes = 700;
  EXPECT_FALSE(ring.read(gone).has_value());
  EXPECT_TRUE(ring.verify().empty());
  // A slice larger than the whole ring is refused.
  EXPECT_EQ(ring.append(meta_of(60), payload(0, 10'001)), RingAppendStatus::TooLarge);
  EXPECT_EQ(ring.counters().refused_too_large, 1u);
}

TEST(RawSliceRing, ReopensWithTheSameSlices) {
  TempDir dir("ring-reopen");
  {
    RawSliceRing ring(config_of(dir, 8'000, 600));
    for (std::uint64_t i = 0; i < 30; ++i) ASSERT_EQ(ring.append(meta_of(i), payload(i, 500)), RingAppendStatus::Stored);
  }
  RawSliceRing ring(config_of(dir, 8'000, 600));
  const auto entries = ring.entries();
  ASSERT_FALSE(entries.empty());
  EXPECT_EQ(entries.back().slice_start_ns, kT0 + 29 * kSlice);
  for (const auto& e : entries) EXPECT_EQ(ring.read(e), payload((e.slice_start_ns - kT0) / kSlice, 500));
  EXPECT_EQ(ring.counters().recovered_slices, entries.size());
  EXPECT_EQ(ring.counters().recovery_dropped_slices, 0u);
  EXPECT_TRUE(ring.verify().empty());
  // Appends continue after the recovered ones without clobbering them.
  ASSERT_EQ(ring.append(meta_of(30), payload(30, 500)), RingAppendStatus::Stored);
  EXPECT_TRUE(ring.verify().empty());
  // Other bounds: a fresh ring.
  RawSliceRing other(config_of(dir, 9'000, 600));
  EXPECT_EQ(other.fill().slices, 0u);
}

TEST(RawSliceRing, DropsATornLastEntryAtRecovery) {
  TempDir dir("ring-torn");
  const auto cfg = config_of(dir, 1 << 20, 600);
  RingEntry last;
  {
    RawSliceRing ring(cfg);
    for (std::uint64_t i = 0; i < 10; ++i) ASSERT_EQ(ring.append(meta_of(i), payload(i, 2000)), RingAppendStatus::Stored);
    last = ring.entries().back();
  }
  {
    // The last slice's bytes only half written (its slot made it to the disk).
    std::fstream data(cfg.directory / "ring.data", std::ios::in | std::ios::out | std::ios::binary);
    data.seekp(static_cast<std::streamoff>(last.offset + 1000));
    const std::vector<char> zeros(1000, 0);
    data.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
  }
  {
    RawSliceRing ring(cfg);
    EXPECT_EQ(ring.fill().slices, 9u);
    EXPECT_EQ(ring.fill().newest_ns, kT0 + 8 * kSlice);
    EXPECT_EQ(ring.counters().recovery_dropped_slices, 1u);
    EXPECT_TRUE(ring.verify().empty());
    for (const auto& e : ring.entries()) EXPECT_TRUE(ring.read(e).has_value());
  }
  {
    // A torn slot (half its bytes): dropped too, and cleared.
    std::fstream index(cfg.directory / "ring.index", std::ios::in | std::ios::out | std::ios::binary);
    index.seekp(64 + 9 * 64 + 40);  // the slot of sequence 9 (the newest left)
    const std::vector<char> junk(24, 0x5a);
    index.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  RawSliceRing ring(cfg);
  EXPECT_EQ(ring.fill().slices, 8u);
  EXPECT_EQ(ring.counters().recovery_dropped_slices, 1u);
  EXPECT_TRUE(ring.verify().empty());
}

// A writer killed with SIGKILL at an arbitrary point of an append: the ring reopens consistent,
// and every slice it lists reads back as written.
TEST(RawSliceRing, StaysConsistentWhenItsWriterIsKilledMidAppend) {
  TempDir dir("ring-kill");
  const auto cfg = config_of(dir, 400'000, 5);
  std::uint64_t next = 0;
  for (int round = 0; round < 6; ++round) {
    int progress[2];
    ASSERT_EQ(::pipe(progress), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::close(progress[0]);
      RawSliceRing ring(cfg);
      for (std::uint64_t i = next;; ++i) {
        ring.append(meta_of(i), payload(i, 3000 + i % 5000));
        const char c = 'x';  // one byte per slice appended
        if (::write(progress[1], &c, 1) != 1) ::_exit(2);
      }
    }
    ::close(progress[1]);
    // It has appended 50 slices and a varying number more, and goes on: killed mid-append
    // (or between two), wherever it is.
    for (int appended = 0; appended < 50 + round * 7; ++appended) {
      char c = 0;
      ASSERT_EQ(::read(progress[0], &c, 1), 1);
    }
    ::kill(child, SIGKILL);
    ::close(progress[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));

    RawSliceRing ring(cfg);
    EXPECT_TRUE(ring.verify().empty()) << ::testing::PrintToString(ring.verify());
    const auto entries = ring.entries();
    ASSERT_GE(entries.size(), 40u);
    for (const auto& e : entries) {
      const std::uint64_t i = (e.slice_start_ns - kT0) / kSlice;
      EXPECT_EQ(ring.read(e), payload(i, 3000 + i % 5000)) << i;
    }
    next = (ring.fill().newest_ns - kT0) / kSlice + 1;
  }
}
