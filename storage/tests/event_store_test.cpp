#include "shoredaq/storage/event_store.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "shoredaq/formats/fb_codec.hpp"
#include "storage_test_support.hpp"

using namespace shoredaq;
using namespace shoredaq::storage;
using storage::testing::make_slice_events;
using storage::testing::make_summary;
using storage::testing::TempDir;

namespace {

constexpr std::int32_t kDetector = 49;

EventStoreConfig small_config(const std::filesystem::path& dir) {
  EventStoreConfig c;
  c.directory = dir;
  c.initial_map_bytes = 1 << 20;
  c.max_map_bytes = 64 << 20;
  c.disk_reserve_bytes = 0;
  c.sync = SyncMode::NoSync;  // tests only; the kill -9 test uses Full
  c.detector_id = kDetector;
  return c;
}

std::vector<EventKey> event_keys(const EventStoreReader& reader, std::uint32_t run, std::uint32_t from = 0,
                                 std::uint32_t to = UINT32_MAX) {
  std::vector<EventKey> keys;
  reader.for_each_event(run, from, to, [&](const EventKey& k, std::span<const std::uint8_t>) {
    keys.push_back(k);
    return true;
  });
  return keys;
}

}  // namespace

TEST(EventStore, CommitsSlicesAndReadsThemBack) {
  TempDir dir("store");
  EventStore store(small_config(dir.path()));
  for (std::uint32_t frame = 1; frame <= 5; ++frame) {
    const auto events = make_slice_events(kDetector, 7, frame, frame % 3);  // 1, 2, 0, 1, 2 events
    const auto summary = make_summary(kDetector, 7, frame);
    const auto r = store.commit_slice(7, frame, events, &summary);
    ASSERT_TRUE(r) << r.message;
    EXPECT_EQ(r.events, events.size());
    EXPECT_GT(r.committed_unix_ns, 0u);
  }
  const auto reader = store.reader();
  const auto keys = event_keys(reader, 7);
  ASSERT_EQ(keys.size(), 6u);
  EXPECT_EQ(keys.front(), (EventKey{7, 1, 0}));
  EXPECT_EQ(keys.back(), (EventKey{7, 5, 1}));
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  // Frame range.
  const auto middle = event_keys(reader, 7, 2, 4);
  EXPECT_EQ(middle, (std::vector<EventKey>{{7, 2, 0}, {7, 2, 1}, {7, 4, 0}}));
  EXPECT_TRUE(event_keys(reader, 8).empty());

  // Buffers decode to what was committed, with the commit stamp set.
  reader.for_each_event(7, 5, 5, [&](const EventKey& k, std::span<const std::uint8_t> bytes) {
    const auto decoded = dataflow::decode_event_fb(bytes);
    EXPECT_TRUE(decoded);
    EXPECT_EQ(decoded.value.event, make_slice_events(kDetector, 7, 5, 2)[k.event_number]);
    EXPECT_GT(decoded.value.committed_unix_ns, 0u);
    return true;
  });
  std::vector<std::uint32_t> summary_frames;
  reader.for_each_summary(7, 0, UINT32_MAX, [&](std::uint32_t run, std::uint32_t frame, std::span<const std::uint8_t> b) {
    EXPECT_EQ(run, 7u);
    const auto decoded = dataflow::decode_summary_slice_fb(b);
    EXPECT_TRUE(decoded);
    EXPECT_EQ(decoded.value, make_summary(kDetector, 7, frame));
    summary_frames.push_back(frame);
    return true;
  });
  EXPECT_EQ(summary_frames, (std::vector<std::uint32_t>{1, 2, 3, 4, 5}));

  const auto record = reader.run(7);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->counter(kCounterStoredEvents), 6u);
  EXPECT_EQ(record->counter(kCounterStoredSlices), 5u);
  EXPECT_EQ(record->counter(kCounterStoredSummaries), 5u);
  EXPECT_EQ(record->first_frame, 1u);
  EXPECT_EQ(record->last_frame, 5u);
  EXPECT_EQ(reader.detector_id(), kDetector);
  EXPECT_EQ(reader.schema_version(), kStoreSchemaVersion);
  const auto report = reader.verify();
  EXPECT_TRUE(report.ok()) << report.problems.front();
  EXPECT_EQ(report.events_checked, 6u);
  EXPECT_EQ(store.counters().commits, 5u);
  EXPECT_EQ(store.counters().events_committed, 6u);
  const auto stats = store.stats();
  EXPECT_EQ(stats.events, 6u);
  EXPECT_EQ(stats.summaries, 5u);
  EXPECT_EQ(stats.runs, 1u);
  EXPECT_GT(stats.used_bytes, 0u);
}

TEST(EventStore, BatchIsAllOrNothingAndDuplicatesAreRefused) {
  TempDir dir("store");
  EventStore store(small_config(dir.path()));
  const auto e1 = make_slice_events(kDetector, 3, 1, 2);
  const auto e2 = make_slice_events(kDetector, 3, 2, 2);
  const auto e3 = make_slice_events(kDetector, 3, 3, 2);
  const std::vector<SliceRecord> batch{{3, 1, e1, nullptr}, {3, 2, e2, nullptr}};
  ASSERT_TRUE(store.commit_slices(batch));
  // A batch holding a new slice and an already stored one: refused whole.
  const std::vector<SliceRecord> bad{{3, 3, e3, nullptr}, {3, 2, e2, nullptr}};
  const auto r = store.commit_slices(bad);
  EXPECT_EQ(r.status, CommitStatus::DuplicateKey);
  EXPECT_FALSE(r.message.empty());
  EXPECT_EQ(store.counters().slices_refused_duplicate, 2u);
  const auto reader = store.reader();
  EXPECT_EQ(event_keys(reader, 3).size(), 4u);  // frame 3 not stored
  EXPECT_TRUE(reader.verify().ok());
  EXPECT_TRUE(store.commit_slice(3, 3, e3));
}

TEST(EventStore, EventNumbersFollowTheKeyAndOlderRunsStillStore) {
  TempDir dir("store");
  EventStore store(small_config(dir.path()));
  auto events = make_slice_events(kDetector, 10, 1, 3);
  for (auto& e : events) e.event_number = 0;  // a producer that does not number them
  ASSERT_TRUE(store.commit_slice(10, 1, events));
  // A lower run number after a higher one: keys below the last, written without MDB_APPEND.
  ASSERT_TRUE(store.commit_slice(5, 1, make_slice_events(kDetector, 5, 1, 1)));
  EXPECT_EQ(store.counters().out_of_order_writes, 1u);
  const auto reader = store.reader();
  EXPECT_EQ(event_keys(reader, 10), (std::vector<EventKey>{{10, 1, 0}, {10, 1, 1}, {10, 1, 2}}));
  EXPECT_EQ(event_keys(reader, 5).size(), 1u);
  const auto report = reader.verify();
  EXPECT_TRUE(report.ok()) << report.problems.front();
}

TEST(EventStore, MapGrowsOnMapFull) {
  TempDir dir("store");
  auto config = small_config(dir.path());
  EventStore store(config);
  const std::size_t initial = store.stats().map_bytes;
  std::uint64_t events = 0;
  for (std::uint32_t frame = 0; frame < 400; ++frame) {
    const auto slice = make_slice_events(kDetector, 1, frame, 4, 100);  // ~4 x 1.4 KB
    const auto summary = make_summary(kDetector, 1, frame);
    const auto r = store.commit_slice(1, frame, slice, &summary);
    ASSERT_TRUE(r) << r.message;
    events += slice.size();
  }
  EXPECT_GT(store.counters().map_growths, 0u);
  EXPECT_GT(store.stats().map_bytes, initial);
  EXPECT_LE(store.stats().map_bytes, config.max_map_bytes);
  const auto report = store.reader().verify();
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.events_checked, events);
}

TEST(EventStore, CapReachedRefusesWithClearErrorAndKeepsData) {
  TempDir dir("store");
  auto config = small_config(dir.path());
  config.initial_map_bytes = 1 << 20;
  config.max_map_bytes = 2 << 20;
  std::uint32_t stored_frames = 0;
  {
    EventStore store(config);
    CommitResult last;
    for (std::uint32_t frame = 0; frame < 2000; ++frame) {
      const auto slice = make_slice_events(kDetector, 1, frame, 4, 100);
      last = store.commit_slice(1, frame, slice);
      if (!last) break;
      ++stored_frames;
    }
    ASSERT_EQ(last.status, CommitStatus::CapReached);
    EXPECT_NE(last.message.find("cap"), std::string::npos);
    EXPECT_GT(stored_frames, 10u);
    EXPECT_EQ(store.counters().slices_refused_cap, 1u);
    EXPECT_EQ(store.counters().events_refused, 4u);
    // Still refused, still counted; smaller data may still fit, the store stays consistent.
    EXPECT_EQ(store.commit_slice(1, 5000, make_slice_events(kDetector, 1, 5000, 50, 150)).status,
              CommitStatus::CapReached);
    EXPECT_EQ(store.counters().slices_refused_cap, 2u);
    const auto report = store.reader().verify();
    EXPECT_TRUE(report.ok()) << report.problems.front();
  }
  // Reopens clean with every committed slice.
  EventStore reopened(config);
  const auto reader = reopened.reader();
  EXPECT_TRUE(reader.verify().ok());
  EXPECT_EQ(reader.run(1)->counter(kCounterStoredSlices), stored_frames);
  EXPECT_EQ(event_keys(reader, 1).size(), stored_frames * 4u);
}

TEST(EventStore, DiskReserveRefusesNewData) {
  TempDir dir("store");
  auto config = small_config(dir.path());
  config.disk_reserve_bytes = UINT64_MAX;  // more than any disk has free
  EventStore store(config);
  const auto r = store.commit_slice(1, 1, make_slice_events(kDetector, 1, 1, 2));
  EXPECT_EQ(r.status, CommitStatus::DiskReserve);
  EXPECT_NE(r.message.find("reserve"), std::string::npos);
  EXPECT_EQ(store.counters().slices_refused_disk_reserve, 1u);
  EXPECT_EQ(store.stats().events, 0u);
}

TEST(EventStore, RetentionPrunesOnlyTransferredRuns) {
  TempDir dir("store");
  auto config = small_config(dir.path());
  std::set<std::uint32_t> transferred;  // the spool acknowledges runs only after they are sealed
  config.run_transferred = [&](std::uint32_t run) { return transferred.contains(run); };
  config.max_store_bytes = 1;  // always over: prune everything allowed
  EventStore store(config);
  for (std::uint32_t run = 1; run <= 4; ++run) {
    for (std::uint32_t frame = 0; frame < 20; ++frame) {
      const auto summary = make_summary(kDetector, run, frame);
      ASSERT_TRUE(store.commit_slice(run, frame, make_slice_events(kDetector, run, frame, 3), &summary));
    }
  }
  EXPECT_TRUE(store.apply_retention().empty());
  transferred = {1, 3};
  EXPECT_EQ(store.apply_retention(), (std::vector<std::uint32_t>{1, 3}));
  const auto reader = store.reader();
  EXPECT_TRUE(event_keys(reader, 1).empty());
  EXPECT_TRUE(event_keys(reader, 3).empty());
  EXPECT_FALSE(reader.run(1).has_value());
  EXPECT_EQ(event_keys(reader, 2).size(), 60u);
  EXPECT_EQ(event_keys(reader, 4).size(), 60u);
  EXPECT_TRUE(reader.run(2).has_value());
  EXPECT_EQ(store.counters().runs_pruned, 2u);
  EXPECT_TRUE(reader.verify().ok());
}

TEST(EventStore, RetentionStopsOnceBelowTheThreshold) {
  TempDir dir("store");
  auto config = small_config(dir.path());
  config.run_transferred = [](std::uint32_t) { return true; };
  std::uint64_t used = 0;
  {
    EventStore store(config);
    for (std::uint32_t run = 1; run <= 3; ++run) {
      for (std::uint32_t frame = 0; frame < 30; ++frame) {
        ASSERT_TRUE(store.commit_slice(run, frame, make_slice_events(kDetector, run, frame, 4, 80)));
      }
    }
    EXPECT_TRUE(store.apply_retention().empty());  // max_store_bytes 0: never prune
    used = store.stats().used_bytes;
  }
  // Threshold between two and three runs' worth: only the oldest run goes.
  config.max_store_bytes = used * 3 / 4;
  EventStore store(config);
  const auto pruned = store.apply_retention();
  EXPECT_EQ(pruned, (std::vector<std::uint32_t>{1}));
  EXPECT_EQ(store.reader().runs().size(), 2u);
  EXPECT_LE(store.stats().used_bytes, config.max_store_bytes);
}

TEST(EventStore, CapReachedPrunesTransferredRunAndContinues) {
  TempDir dir("store");
  auto config = small_config(dir.path());
  config.max_map_bytes = 2 << 20;
  bool run1_transferred = false;
  config.run_transferred = [&](std::uint32_t run) { return run == 1 && run1_transferred; };
  config.max_store_bytes = 1 << 20;
  EventStore store(config);
  std::uint32_t frame = 0;
  for (; frame < 2000; ++frame) {
    if (!store.commit_slice(1, frame, make_slice_events(kDetector, 1, frame, 4, 100))) break;
  }
  ASSERT_LT(frame, 2000u);
  // Run 2 refused while run 1 is not yet at Tier-0.
  EXPECT_EQ(store.commit_slice(2, 0, make_slice_events(kDetector, 2, 0, 4, 100)).status, CommitStatus::CapReached);
  run1_transferred = true;
  const auto r = store.commit_slice(2, 0, make_slice_events(kDetector, 2, 0, 4, 100));
  EXPECT_TRUE(r) << r.message;
  EXPECT_FALSE(store.reader().run(1).has_value());
  EXPECT_TRUE(store.reader().verify().ok());
}

TEST(EventStore, RunRecordKeepsStoreCounters) {
  TempDir dir("store");
  EventStore store(small_config(dir.path()));
  dataflow::RunRecord start;
  start.run = 9;
  start.detector_id = kDetector;
  start.start_unix_ns = 100;
  start.run_setup = "x";
  start.counters[kCounterStoredEvents] = 999;  // not the run control's to set
  ASSERT_TRUE(store.put_run_record(start));
  EXPECT_EQ(store.reader().run(9)->counter(kCounterStoredEvents), 0u);
  ASSERT_TRUE(store.commit_slice(9, 4, make_slice_events(kDetector, 9, 4, 2)));
  dataflow::RunRecord stop = start;
  stop.state = dataflow::RunOutcome::Stopped;
  stop.stop_unix_ns = 200;
  stop.counters = {{"slices", 1}, {"store.events", 5}};
  ASSERT_TRUE(store.put_run_record(stop));
  const auto record = store.reader().run(9);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->state, dataflow::RunOutcome::Stopped);
  EXPECT_EQ(record->start_unix_ns, 100u);
  EXPECT_EQ(record->stop_unix_ns, 200u);
  EXPECT_EQ(record->counter("slices"), 1u);
  EXPECT_EQ(record->counter(kCounterStoredEvents), 2u);
  EXPECT_EQ(record->first_frame, 4u);
  EXPECT_TRUE(store.reader().verify().ok());
}

TEST(EventStore, SecondWriterAndWrongDetectorAreRefused) {
  TempDir dir("store");
  auto config = small_config(dir.path());
  {
    EventStore store(config);
    EXPECT_THROW(EventStore second(config), StoreError);
  }
  config.detector_id = 50;
  EXPECT_THROW(EventStore other(config), StoreError);
  config.detector_id = 0;  // any
  EXPECT_NO_THROW(EventStore any(config));
  EXPECT_THROW(EventStoreReader::open(dir.path() / "nope"), StoreError);
}

TEST(EventStore, ReaderHoldingATransactionDoesNotBlockTheWriter) {
  TempDir dir("store");
  auto config = small_config(dir.path());
  config.initial_map_bytes = 16 << 20;  // no growth during this test
  EventStore store(config);
  ASSERT_TRUE(store.commit_slice(1, 0, make_slice_events(kDetector, 1, 0, 2)));
  std::mutex m;
  std::condition_variable cv;
  bool reader_inside = false, writer_done = false;
  std::size_t seen_by_reader = 0;
  std::thread reader_thread([&] {
    store.reader().for_each_event(1, 0, UINT32_MAX, [&](const EventKey&, std::span<const std::uint8_t>) {
      ++seen_by_reader;
      std::unique_lock lock(m);
      reader_inside = true;
      cv.notify_all();
      cv.wait_for(lock, std::chrono::seconds(20), [&] { return writer_done; });
      return false;  // stop: we only needed to hold the transaction open
    });
  });
  {
    std::unique_lock lock(m);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(20), [&] { return reader_inside; }));
  }
  for (std::uint32_t frame = 1; frame <= 50; ++frame) {
    ASSERT_TRUE(store.commit_slice(1, frame, make_slice_events(kDetector, 1, frame, 2)));
  }
  {
    std::lock_guard lock(m);
    writer_done = true;
  }
  cv.notify_all();
  reader_thread.join();
  EXPECT_EQ(seen_by_reader, 1u);
  EXPECT_EQ(event_keys(store.reader(), 1).size(), 102u);
}

TEST(EventStore, LongInProcessReaderBlocksGrowthOnlyBoundedly) {
  TempDir dir("store");
  auto config = small_config(dir.path());
  config.max_map_bytes = 16 << 20;
  config.growth_wait = std::chrono::milliseconds(50);
  EventStore store(config);
  ASSERT_TRUE(store.commit_slice(1, 0, make_slice_events(kDetector, 1, 0, 1)));
  std::mutex m;
  std::condition_variable cv;
  bool reader_inside = false, release = false;
  std::thread reader_thread([&] {
    store.reader().for_each_event(1, 0, UINT32_MAX, [&](const EventKey&, std::span<const std::uint8_t>) {
      std::unique_lock lock(m);
      reader_inside = true;
      cv.notify_all();
      cv.wait_for(lock, std::chrono::seconds(30), [&] { return release; });
      return false;
    });
  });
  {
    std::unique_lock lock(m);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(20), [&] { return reader_inside; }));
  }
  CommitResult r;
  std::uint32_t frame = 1;
  for (; frame < 5000; ++frame) {
    r = store.commit_slice(1, frame, make_slice_events(kDetector, 1, frame, 4, 100));
    if (!r) break;
  }
  EXPECT_EQ(r.status, CommitStatus::CapReached);
  EXPECT_NE(r.message.find("read transaction"), std::string::npos);
  EXPECT_EQ(store.counters().slices_refused_growth_blocked, 1u);
  {
    std::lock_guard lock(m);
    release = true;
  }
  cv.notify_all();
  reader_thread.join();
  const auto again = store.commit_slice(1, frame, make_slice_events(kDetector, 1, frame, 4, 100));
  EXPECT_TRUE(again) << again.message;
  EXPECT_TRUE(store.reader().verify().ok());
}

// The writer process dies (kill -9) in the middle of writing: every slice it reported as committed
// is there, the store verifies and opens clean (stale reader slot cleared, writer lock released).
TEST(EventStore, SurvivesWriterKilledMidWrite) {
  TempDir dir("store");
  auto config = small_config(dir.path());
  config.sync = SyncMode::Full;
  config.initial_map_bytes = 32 << 20;  // the child's pinned reader would block growth
  int acks[2];
  ASSERT_EQ(::pipe(acks), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(acks[0]);
    try {
      EventStore store(config);
      if (!store.commit_slice(1, 0, make_slice_events(kDetector, 1, 0, 3, 60))) ::_exit(3);
      std::uint32_t zero = 0;
      if (::write(acks[1], &zero, sizeof zero) != sizeof zero) ::_exit(4);
      // A reader slot held open by the dying process too (a stale slot for the next open).
      std::atomic<bool> reader_inside{false};
      std::thread([&] {
        store.reader().for_each_event(1, 0, UINT32_MAX, [&](const EventKey&, std::span<const std::uint8_t>) {
          reader_inside = true;
          ::pause();
          return false;
        });
      }).detach();
      while (!reader_inside) std::this_thread::yield();
      for (std::uint32_t frame = 1;; ++frame) {
        const auto summary = make_summary(kDetector, 1, frame);
        if (!store.commit_slice(1, frame, make_slice_events(kDetector, 1, frame, 3, 60), &summary)) ::_exit(3);
        if (::write(acks[1], &frame, sizeof frame) != sizeof frame) ::_exit(4);
      }
    } catch (...) {
      ::_exit(2);
    }
  }
  ::close(acks[1]);
  std::uint32_t last_acked = 0, acked = 0;
  while (acked < 60) {
    std::uint32_t frame = 0;
    ASSERT_EQ(::read(acks[0], &frame, sizeof frame), static_cast<ssize_t>(sizeof frame));
    last_acked = frame;
    ++acked;
  }
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status));
  // Acks already in the pipe are commits too.
  std::uint32_t frame = 0;
  while (::read(acks[0], &frame, sizeof frame) == static_cast<ssize_t>(sizeof frame)) last_acked = frame;
  ::close(acks[0]);

  EventStore reopened(config);
  const auto reader = reopened.reader();
  const auto report = reader.verify();
  EXPECT_TRUE(report.ok()) << report.problems.front();
  const auto record = reader.run(1);
  ASSERT_TRUE(record.has_value());
  EXPECT_GE(record->counter(kCounterStoredSlices), last_acked + 1);
  std::set<std::uint32_t> frames;
  for (const auto& k : event_keys(reader, 1)) frames.insert(k.frame);
  for (std::uint32_t f = 0; f <= last_acked; ++f) ASSERT_TRUE(frames.contains(f)) << "frame " << f;
  // And writing continues after the last stored frame.
  EXPECT_TRUE(reopened.commit_slice(1, record->last_frame + 1, make_slice_events(kDetector, 1, record->last_frame + 1, 1)));
}
