// StoreScrubber: a resumable checksum pass over the whole store in small steps.

#include "shoredaq/storage/store_scrubber.hpp"

#include <gtest/gtest.h>

#include "store_damage.hpp"

using namespace shoredaq;
using namespace shoredaq::storage;
using namespace shoredaq::storage::testing;
namespace fs = std::filesystem;

namespace {

constexpr std::int32_t kDetector = 14;
constexpr std::uint64_t kRecordsInShortRun = 2 + 1 + kShortRunFrames + kShortRunEvents;  // meta, run, summaries, events

EventStoreConfig config_for(const fs::path& dir) {
  EventStoreConfig c;
  c.directory = dir;
  c.initial_map_bytes = 1 << 20;
  c.max_map_bytes = 256 << 20;
  c.disk_reserve_bytes = 0;
  c.sync = SyncMode::NoSync;
  c.detector_id = kDetector;
  c.growth_wait = std::chrono::milliseconds(0);  // a reader in the way refuses at once: the test would see it
  return c;
}

// Steps with `budget` bytes until a pass completes; returns the steps taken.
std::vector<ScrubStep> one_pass(StoreScrubber& scrubber, std::uint64_t budget) {
  std::vector<ScrubStep> steps;
  for (int i = 0; i < 100'000; ++i) {
    steps.push_back(scrubber.scrub_step(budget));
    if (steps.back().pass_completed) return steps;
  }
  ADD_FAILURE() << "no pass completed";
  return steps;
}

}  // namespace

TEST(StoreScrubber, AFullPassOverACleanStoreReportsNothing) {
  TempDir dir("scrub");
  EventStore store(config_for(dir.path()));
  write_short_run(store, kDetector, 1);
  StoreScrubber scrubber(store.reader());
  const auto steps = one_pass(scrubber, 4096);  // a few records per step: it must resume
  EXPECT_GT(steps.size(), 5u);
  std::uint64_t records = 0, bytes = 0;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const ScrubStep& s = steps[i];
    EXPECT_TRUE(s.damaged.empty());
    EXPECT_EQ(s.damaged_count, 0u);
    // Only the step that finds the end may come back empty (the budget ran out on the last record).
    if (i + 1 < steps.size()) {
      EXPECT_GT(s.records_checked, 0u);
    }
    records += s.records_checked;
    bytes += s.bytes_checked;
  }
  EXPECT_EQ(records, kRecordsInShortRun);  // every record once
  const auto status = scrubber.status();
  EXPECT_EQ(status.passes_completed, 1u);
  EXPECT_EQ(status.records_checked, kRecordsInShortRun);
  EXPECT_EQ(status.bytes_checked, bytes);
  EXPECT_EQ(status.damaged_found, 0u);
  EXPECT_FALSE(status.damaged());
  EXPECT_EQ(status.pass_records_checked, 0u);  // the next pass has not begun
  // A step of 0 bytes still checks one record (progress whatever the budget).
  const auto tiny = scrubber.scrub_step(0);
  EXPECT_EQ(tiny.records_checked, 1u);
  const auto next = scrubber.status();
  EXPECT_EQ(next.pass_records_total, kRecordsInShortRun);
  EXPECT_EQ(next.position, "meta detector_id");  // the first key of the pass, in LMDB order
  EXPECT_GT(next.pass_fraction(), 0.0);
}

TEST(StoreScrubber, FindsEveryDamagedRecordPassAfterPass) {
  TempDir dir("scrub");
  {
    EventStore store(config_for(dir.path()));
    write_short_run(store, kDetector, 1);
  }
  const auto all = list_records(dir.path());
  // Damage some summaries and events (the writer keeps working on them) and the run record.
  std::vector<StoredRecord> candidates = records_of(all, StoreDatabase::Summaries);
  for (const auto& r : records_of(all, StoreDatabase::Events)) candidates.push_back(r);
  Damage damage = damage_random_bytes(dir.path(), candidates, 6, 11);
  const auto run = records_of(all, StoreDatabase::Runs).front();
  flip_byte(dir.path(), run.value_offset + run.value_size / 2, 0x40);
  damage.keys.emplace(StoreDatabase::Runs, "1");

  const auto reader = EventStoreReader::open(dir.path());
  StoreScrubber scrubber(reader);
  for (int pass = 1; pass <= 2; ++pass) {
    SCOPED_TRACE("pass " + std::to_string(pass));
    std::set<std::pair<StoreDatabase, std::string>> found;
    std::uint64_t counted = 0;
    for (const auto& step : one_pass(scrubber, 3000)) {
      for (const auto& d : step.damaged) EXPECT_TRUE(found.emplace(d.database, d.key).second) << d.describe();
      counted += step.damaged_count;
    }
    EXPECT_EQ(found, damage.keys);
    EXPECT_EQ(counted, damage.keys.size());
    const auto status = scrubber.status();
    EXPECT_TRUE(status.damaged());
    EXPECT_EQ(status.last_pass_damaged_count, damage.keys.size());
    EXPECT_EQ(keys_of(status.last_pass_damaged), damage.keys);
    EXPECT_EQ(status.damaged_found, pass * damage.keys.size());
  }
  // Scrubbing is not a query: the queries' counter stays untouched.
  EXPECT_EQ(reader.integrity().damaged_records_refused, 0u);
}

// LMDB's own pages damaged: the scrubber reports the database and goes on with the others.
TEST(StoreScrubber, ReportsADatabaseItCannotWalkAndGoesOn) {
  TempDir dir("scrub");
  {
    EventStore store(config_for(dir.path()));
    write_short_run(store, kDetector, 1);
  }
  break_database_root(dir.path(), "summaries");
  const auto reader = EventStoreReader::open(dir.path());
  StoreScrubber scrubber(reader);
  std::vector<DamagedRecord> found;
  std::uint64_t records = 0;
  for (const auto& step : one_pass(scrubber, 1 << 20)) {
    found.insert(found.end(), step.damaged.begin(), step.damaged.end());
    records += step.records_checked;
  }
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].database, StoreDatabase::Summaries);
  EXPECT_EQ(found[0].key, "(start)");
  EXPECT_EQ(found[0].reason.rfind("LMDB: MDB_", 0), 0u) << found[0].reason;  // PAGE_NOTFOUND, or BAD_TXN after it
  EXPECT_EQ(records, kRecordsInShortRun - kShortRunFrames);  // meta, the run and every event still checked
  EXPECT_TRUE(scrubber.status().damaged());
}

// Between steps the scrubber holds no transaction: the writer grows its map, commits and prunes
// while a pass is under way, and the pass resumes past whatever changed.
TEST(StoreScrubber, ResumesWhileTheWriterCommitsGrowsAndPrunes) {
  TempDir dir("scrub");
  auto config = config_for(dir.path());
  bool run1_transferred = false;
  config.max_store_bytes = 1;  // prune whatever is transferred
  config.run_transferred = [&](std::uint32_t run) { return run == 1 && run1_transferred; };
  EventStore store(config);
  write_short_run(store, kDetector, 1);
  StoreScrubber scrubber(store.reader());
  ASSERT_FALSE(scrubber.scrub_step(2000).pass_completed);
  const std::uint64_t growths_before = store.counters().map_growths;
  for (std::uint32_t frame = 0; frame < 300; ++frame) {
    const auto r = store.commit_slice(2, frame, make_slice_events(kDetector, 2, frame, 4, 100));
    ASSERT_TRUE(r) << r.message;  // never refused for a reader in the way
    if (frame % 20 == 0) scrubber.scrub_step(2000);
  }
  EXPECT_GT(store.counters().map_growths, growths_before);
  run1_transferred = true;
  EXPECT_EQ(store.apply_retention(), (std::vector<std::uint32_t>{1}));  // run 1 goes while the pass is in its records
  const auto steps = one_pass(scrubber, 1 << 20);
  EXPECT_FALSE(steps.empty());
  const auto status = scrubber.status();
  EXPECT_EQ(status.passes_completed, 1u);
  EXPECT_EQ(status.damaged_found, 0u);
  // The second pass sees exactly what is stored now.
  one_pass(scrubber, 1 << 20);
  const auto stats = store.stats();
  const std::uint64_t meta_values = 2;
  EXPECT_EQ(scrubber.status().records_checked - status.records_checked,
            stats.events + stats.summaries + stats.runs + meta_values);
}
